"""Status reads of a live actor are served from its copy of the execution hash; that copy must be what Redis
holds after every write, and the answer the same as one built from Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from procengine.api.rendered import RenderedStatus
from procengine.api.service import Caller
from procengine.api.views import ControlRequest, ExecutionStatusView
from procengine.errors import NotFound
from procengine.node.node import Node
from procengine.node.queries import status_doc
from procengine.runtime.clock import parse_iso
from procengine.statuses import Status
from procengine.store.codec import decode
from procengine.store.executions import Commit
from procengine.store.stored_records import thread_doc
from tests.support.nodes import CALLER, start, wait_element, wait_status
from tests.support.processes import definition


def _without_duration(view: ExecutionStatusView) -> dict[str, Any]:
    """The view without what is counted up to the moment of reading (the run so far, and a pause under way)."""
    doc = view.model_dump()
    doc["timing"].pop("durationMs")
    doc["timing"].pop("pausedDurationMs")
    return doc


async def _same_as_redis(engine: Node, execution_id: int) -> ExecutionStatusView:
    actor = engine.registry.get(execution_id)
    assert actor is not None, "the execution's actor should be live here"
    stored = await engine.store.load(execution_id, with_state=False)
    assert stored is not None
    written_by_the_script = {"lastCommit"}  # commit.lua's retry token, not part of the execution
    assert actor.fields == {k: v for k, v in stored.fields.items() if k not in written_by_the_script}
    assert actor.thread_records == {key: thread_doc(key, decode(raw)) for key, raw in stored.threads.items()}
    from_actor = await engine.status(CALLER, execution_id)
    from_redis = await engine.queries.status(CALLER.tenant, execution_id)
    redis_view = ExecutionStatusView.model_validate_json(from_redis.json(engine.clock.now_ms()))
    assert _without_duration(from_actor) == _without_duration(redis_view)
    # the actor's rendering and the one built from Redis are the same bytes at the same moment
    live = engine._live_status(CALLER, execution_id)
    assert live is not None
    now = engine.clock.now_ms()
    assert live.json(now) == from_redis.json(now)
    # and the front door's bytes are what the model renders
    rendered = await engine.status_json(CALLER, execution_id)
    as_model = ExecutionStatusView.model_validate_json(rendered)
    assert _without_duration(as_model) == _without_duration(redis_view)
    assert rendered == as_model.model_dump_json().encode()
    assert abs(as_model.timing.durationMs - redis_view.timing.durationMs) < 1000
    assert abs(as_model.timing.pausedDurationMs - redis_view.timing.pausedDurationMs) < 1000
    return from_actor


async def test_a_live_actors_status_is_what_redis_holds_after_every_transition(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {"key": "init", "type": "set-variable", "set": {"x": "1"}, "next": "approve"},
            {"key": "approve", "type": "wait-signal", "signal": "go"},
        ),
    )
    await wait_element(engine, execution_id, "approve")
    running = await _same_as_redis(engine, execution_id)
    assert (running.status, running.progress.completedNodes) == ("running", 1)

    await engine.pause(CALLER, execution_id, ControlRequest(reason="look"))
    paused = await _same_as_redis(engine, execution_id)
    assert paused.status == "paused" and paused.timing.pausedAt is not None

    await engine.resume(CALLER, execution_id, ControlRequest())
    resumed = await _same_as_redis(engine, execution_id)
    assert resumed.status == "running" and resumed.timing.pausedAt is None

    await engine.signal(CALLER, execution_id, "go", None)
    await wait_status(engine, execution_id, "completed")
    done = await engine.status(CALLER, execution_id)  # the actor has stopped: from Redis
    assert engine.registry.get(execution_id) is None
    assert (done.status, done.progress.percentage, done.threads[0].status) == ("completed", 100.0, "completed")


async def test_another_tenant_gets_404_from_a_live_actor_too(engine: Node) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    assert engine.registry.get(execution_id) is not None
    with pytest.raises(NotFound):
        await engine.status(Caller(tenant="someone-else", by="x", request_id="r"), execution_id)


def test_a_rendered_status_puts_in_the_duration_up_to_now_or_to_the_stop() -> None:
    doc = status_doc(
        9,
        {
            "status": "running",
            "processID": "1",
            "processKey": "p",
            "processVersion": "1",
            "startedAt": "2026-11-29T04:50:52.000Z",
            "stoppedAt": "",
            "totalNodes": "2",
            "completedNodes": "1",
            # an error text that looks like the field must not confuse the rendering
            "error": '{"element": "x", "error": "\\"durationMs\\":-7777777", "attempts": 1}',
        },
        [],
    )
    rendered = RenderedStatus.of(doc)
    started = parse_iso("2026-11-29T04:50:52.000Z")

    running = ExecutionStatusView.model_validate_json(rendered.json(started + 1_500))
    assert running.timing.durationMs == 1_500
    assert running.error == {"element": "x", "error": '"durationMs":-7777777', "attempts": 1}
    stopped = RenderedStatus.of({**doc, "timing": {**doc["timing"], "stoppedAt": "2026-11-29T04:50:53.250Z"}})
    assert ExecutionStatusView.model_validate_json(stopped.json(started + 99_999)).timing.durationMs == 1_250


async def test_after_a_write_cancelled_in_flight_status_is_read_from_redis(engine: Node) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    actor = engine.registry.get(execution_id)
    assert actor is not None
    write = asyncio.create_task(actor._write(Commit(execution={"totalNodes": 42}), expect=Status.RUNNING))
    await asyncio.sleep(0)  # handed over, waiting for its answer
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    await engine.store.aclose()  # the handed-over write lands

    assert not actor.copy_known
    assert actor.fields["totalNodes"] != "42"  # the copy never saw it...
    assert (await engine.status(CALLER, execution_id)).progress.totalNodes == 42  # ...reads go to Redis
    assert b'"totalNodes":42' in await engine.status_json(CALLER, execution_id)
