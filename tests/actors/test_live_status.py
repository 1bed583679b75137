"""The status of a live actor: rendered in one pass for a running execution (node/live_status.py), the same bytes
as the general rendering and as Redis's; kept until the execution changes, and never shown to another tenant."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.actors.actor import ExecutionActor
from procengine.api.rendered import RenderedStatus
from procengine.api.service import Caller
from procengine.api.views import ControlRequest, ExecutionStatusView, SkipRequest
from procengine.errors import NotFound
from procengine.node.blocked import live_blocked_on
from procengine.node.live_status import render_running
from procengine.node.node import Node
from procengine.node.queries import status_doc
from procengine.store.executions import BUFFERED_SIGNALS
from tests.support.clock import ShiftedClock
from tests.support.nodes import CALLER, EngineFactory, Gate, child_of, start, wait_element
from tests.support.polling import poll
from tests.support.processes import KYC, definition, parent

STRANGER = Caller(tenant="someone-else", by="x", request_id="r")


def _actor(engine: Node, execution_id: int) -> ExecutionActor:
    actor = engine.registry.get(execution_id)
    assert actor is not None, "the execution's actor should be live here"
    return actor


def _general(actor: ExecutionActor) -> RenderedStatus | None:
    """The rendering the node made before the one pass (and still makes for everything else)."""
    blocked = live_blocked_on(actor)
    if blocked is None:
        return None
    doc = status_doc(actor.execution_id, actor.fields, actor.thread_records.values())
    return RenderedStatus.of({**doc, "blockedOn": blocked})


async def _one_pass_is_the_general_one(engine: Node, execution_id: int) -> bytes:
    """The one pass renders it, to the bytes of the general path and of a read from Redis; those bytes."""
    actor = _actor(engine, execution_id)
    fast, general = render_running(actor), _general(actor)
    assert fast is not None, "a running execution of this kind should be rendered in one pass"
    assert general is not None
    from_redis = await engine.queries.status(CALLER.tenant, execution_id)
    for now in (engine.clock.now_ms(), fast.started_ms + 1234):
        assert fast.json(now) == general.json(now) == from_redis.json(now)
    body = fast.json(engine.clock.now_ms())
    assert body == ExecutionStatusView.model_validate_json(body).model_dump_json().encode()
    return body


async def _answer(engine: Node, execution_id: int) -> dict[str, Any]:
    """The node's answer, checked equal to Redis's at the same moment."""
    now = engine.clock.now_ms()
    live = engine._live_status(CALLER, execution_id)
    assert live is not None
    assert live.json(now) == (await engine.queries.status(CALLER.tenant, execution_id)).json(now)
    return ExecutionStatusView.model_validate_json(live.json(now)).model_dump(mode="json")


async def test_a_waiting_signal_with_a_timeout_and_others_buffered(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    clock.advance(3_600_000)
    execution_id = await start(
        engine,
        definition(
            {"key": "approve", "type": "wait-signal", "signal": "go", "timeoutMs": 60_000, "next": "again"},
            {"key": "again", "type": "wait-signal", "signal": "again"},
        ),
        {"who": 'a "quoted" name, ünïcode'},
    )
    await wait_element(engine, execution_id, "approve")
    await _one_pass_is_the_general_one(engine, execution_id)
    await engine.signal(CALLER, execution_id, "again", {"n": 1})

    async def buffered() -> str:
        return _actor(engine, execution_id).fields.get(BUFFERED_SIGNALS, "")

    await poll(buffered)
    body = await _one_pass_is_the_general_one(engine, execution_id)
    assert b'"timeoutAt":"' in body


async def test_a_delay_a_running_task_and_parallel_lanes(engine: Node, gate: Gate) -> None:
    process = definition(
        {
            "key": "both",
            "type": "parallel",
            "branches": [
                {"key": "a", "elements": [{"key": "nap", "type": "delay", "durationMs": 600_000}]},
                {"key": "b", "elements": [{"key": "work", "type": "task", "handler": "gate", "timeoutMs": 90_000}]},
                {"key": "c", "elements": [{"key": "hear", "type": "wait-signal", "signal": "s"}]},
            ],
        }
    )
    execution_id = await start(engine, process)
    await gate.entered.wait()
    await wait_element(engine, execution_id, "nap")
    await wait_element(engine, execution_id, "hear")
    body = await _one_pass_is_the_general_one(engine, execution_id)
    for kind in (b'"kind":"delay"', b'"kind":"task"', b'"kind":"signal"'):
        assert kind in body
    gate.release.set()


async def test_threads_and_a_child_that_knows_its_parent(engine: Node, gate: Gate) -> None:
    threads = [
        {"key": "second", "elements": [{"key": "w2", "type": "wait-signal", "signal": "two"}]},
        {"key": "first", "elements": [{"key": "w1", "type": "wait-signal", "signal": "one"}]},
    ]
    execution_id = await start(engine, definition(threads=threads))
    await wait_element(engine, execution_id, "w1")
    await wait_element(engine, execution_id, "w2")
    await _one_pass_is_the_general_one(engine, execution_id)

    await engine.register_process(CALLER, KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "ada"}})
    child_id = await child_of(engine, parent_id)
    await gate.entered.wait()
    await wait_element(engine, child_id, "check")
    body = await _one_pass_is_the_general_one(engine, child_id)
    assert b'"parentExecutionID":%d' % parent_id in body
    # the parent waits for its child: what only Redis holds (its status), left to the general path
    assert render_running(_actor(engine, parent_id)) is None
    gate.release.set()


async def test_what_the_one_pass_leaves_to_the_general_path(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    backoff = definition(
        {
            "key": "charge",
            "type": "task",
            "handler": "fail",
            "input": {"message": "'no'"},
            "retry": {"maxAttempts": 3, "backoffMs": 600_000},
        }
    )
    retrying = await start(engine, backoff)
    await wait_element(engine, retrying, "charge", "retrying")
    assert render_running(_actor(engine, retrying)) is None
    await _answer(engine, retrying)  # still answered live, by the general path

    waiting = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "go"}))
    await wait_element(engine, waiting, "w")
    await engine.pause(CALLER, waiting, ControlRequest(reason="look"))
    assert render_running(_actor(engine, waiting)) is None
    assert (await _answer(engine, waiting))["status"] == "paused"


async def test_a_kept_answer_changes_with_the_execution_and_stays_with_its_tenant(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {"key": "first", "type": "wait-signal", "signal": "go", "next": "note"},
            {"key": "note", "type": "set-variable", "set": {"seen": "true"}, "next": "second"},
            {"key": "second", "type": "wait-signal", "signal": "again", "next": "last"},
            {"key": "last", "type": "wait-signal", "signal": "end"},
        ),
    )
    await wait_element(engine, execution_id, "first")
    actor = _actor(engine, execution_id)
    first = await _answer(engine, execution_id)
    kept = actor.rendered_status
    assert kept is not None and engine._live_status(CALLER, execution_id) is kept  # a lookup, not a rendering

    # another tenant: 404 as if it did not exist, the kept answer notwithstanding
    with pytest.raises(NotFound):
        await engine.status_json(STRANGER, execution_id)
    assert engine._live_status(STRANGER, execution_id) is None

    # a step (and the set-variable after it)
    await engine.signal(CALLER, execution_id, "go", None)
    await wait_element(engine, execution_id, "second")
    stepped = await _answer(engine, execution_id)
    assert stepped["progress"]["completedNodes"] > first["progress"]["completedNodes"]
    assert stepped["blockedOn"][0]["elementKey"] == "second" and first["blockedOn"][0]["elementKey"] == "first"

    # a pause
    await engine.pause(CALLER, execution_id, ControlRequest(reason="look"))
    paused = await _answer(engine, execution_id)
    assert paused["status"] == "paused" and paused["blockedOn"][0]["kind"] == "paused"

    # a variable set while paused: the write drops the kept answer; the next read renders what Redis holds
    kept = actor.rendered_status
    assert kept is not None
    await engine.edit_variables(CALLER, execution_id, {"seen": False})
    assert actor.rendered_status is None
    await _answer(engine, execution_id)

    # a step control: the wait skipped, the next one waits
    await engine.skip_element(CALLER, execution_id, "second", SkipRequest(reason="by hand"))
    skipped = await _answer(engine, execution_id)
    assert skipped["progress"]["completedNodes"] > paused["progress"]["completedNodes"]
    assert skipped["blockedOn"][0]["elementKey"] == "last"  # not started yet: it waits for nothing but resume

    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_element(engine, execution_id, "last")
    resumed = await _answer(engine, execution_id)
    assert resumed["status"] == "running" and resumed["blockedOn"][0]["kind"] == "signal"
    await _one_pass_is_the_general_one(engine, execution_id)  # a resumed execution is rendered in one pass again
    with pytest.raises(NotFound):
        await engine.status_json(STRANGER, execution_id)
