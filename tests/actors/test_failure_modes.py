"""Failure modes between writes: crashes before the final write, requests whose actor dies, activation
races, corrupted paused snapshots, failed starts, handlers that ignore cancellation, a slow heartbeat."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from procengine.actors import lanes
from procengine.actors.actor import ExecutionActor
from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import StateCorrupted, Unavailable, ValidationFailed
from procengine.node.node import Node
from procengine.node.ownership import Ownership
from procengine.statuses import Status
from procengine.store.executions import ExecutionStore
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, events, start, wait_element, wait_status
from tests.support.processes import definition


@pytest.mark.parametrize(
    ("elements", "final"),
    [
        ([{"key": "a", "type": "set-variable", "set": {"x": "1"}}], "completed"),
        ([{"key": "a", "type": "task", "handler": "fail"}], "failed"),
    ],
)
async def test_a_crash_before_the_final_write_is_finished_by_the_adopter(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch, elements: list[dict[str, Any]], final: str
) -> None:
    first = await make_engine()
    real_finish = ExecutionActor._finish

    async def crash_instead(self: ExecutionActor, status: Status) -> None:
        raise ConnectionError("the node lost Redis just before writing the end")

    monkeypatch.setattr(ExecutionActor, "_finish", crash_instead)
    execution_id = await start(first, definition(*elements))
    actor = first.registry.get(execution_id)
    assert actor is not None
    await actor.stopped.wait()
    assert (await first.status(CALLER, execution_id)).status == "running"
    await first.__aexit__(None, None, None)  # the node goes away (its heartbeat with it)

    monkeypatch.setattr(ExecutionActor, "_finish", real_finish)
    second = await make_engine()
    assert await wait_status(second, execution_id, final) == final
    assert [e for e, _ in await events(second, execution_id)].count(final) == 1


async def test_a_request_whose_actor_dies_gets_503_not_a_hang(engine: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())

    async def unreachable(self: ExecutionStore, execution_id: int) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(ExecutionStore, "load", unreachable)
    with pytest.raises((Unavailable, ConnectionError)):  # both answer 503 at the front door
        async with asyncio.timeout(10):
            await engine.resume(CALLER, execution_id, ControlRequest())


async def test_concurrent_requests_activate_a_passivated_execution_once(engine: Node) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    actor = engine.registry.get(execution_id)
    assert actor is not None
    await actor.stopped.wait()  # passivated: owner released
    epoch = int((await engine.store.fields(execution_id))["epoch"])

    await asyncio.gather(*(engine.signal(CALLER, execution_id, "s", i) for i in range(20)))

    assert int((await engine.store.fields(execution_id))["epoch"]) == epoch + 1
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None and sorted(memory["signals"]["s"]) == list(range(20))


async def test_a_corrupted_paused_snapshot_refuses_signals_and_keeps_its_memory(engine: Node, redis: Redis) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}), {"keep": "me"})
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    actor = engine.registry.get(execution_id)
    assert actor is not None
    await actor.stopped.wait()
    state_key = engine.keys.execution(execution_id).state
    await redis.hset(state_key, "stack", b"\xc1")
    memory_before = await redis.hget(state_key, "memory")

    with pytest.raises(StateCorrupted):
        await engine.signal(CALLER, execution_id, "s", 1)

    assert await redis.hget(state_key, "memory") == memory_before
    assert (await engine.cancel(CALLER, execution_id, ControlRequest())).status == "cancelled"


async def test_a_failed_start_gives_its_idempotency_key_back(engine: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, _ = await engine.register_process(CALLER, definition({"key": "e", "type": "end"}))
    request = StartRequest(processID=summary.processID, idempotencyKey="once")
    real_commit = ExecutionStore.commit

    async def lost(self: ExecutionStore, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(ExecutionStore, "commit", lost)
    with pytest.raises(ConnectionError):
        await engine.start_execution(CALLER, request)
    monkeypatch.setattr(ExecutionStore, "commit", real_commit)

    result, created = await engine.start_execution(CALLER, request)
    assert created and (await engine.status(CALLER, result.executionID)).processID == summary.processID
    listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=10, cursor=None)
    assert [e.executionID for e in listed.items] == [result.executionID]


@pytest.mark.slow
async def test_a_handler_that_ignores_cancellation_does_not_hang_pause(
    engine: Node, handlers: HandlerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the actor leaves a task behind that has not ended REAP_S after its cancel (an event loop timer, 5 s): a
    # shorter one here, still far below the 9 s this handler would hold a pause that waited for it
    monkeypatch.setattr(lanes, "REAP_S", 0.5)
    stubborn_started = asyncio.Event()
    test_over = asyncio.Event()

    async def stubborn(task_input: dict[str, Any]) -> str:
        stubborn_started.set()
        for _ in range(3):
            try:
                await asyncio.sleep(3)
            except asyncio.CancelledError:
                if test_over.is_set():  # the loop's own clean-up, after the test: not seconds of teardown
                    raise
                continue  # a badly written handler
        return "finally"

    handlers.register("stubborn", stubborn)
    execution_id = await start(engine, definition({"key": "t", "type": "task", "handler": "stubborn"}))
    await stubborn_started.wait()

    began = time.monotonic()
    paused = await engine.pause(CALLER, execution_id, ControlRequest())
    assert paused.status == "paused" and time.monotonic() - began < 8
    await engine.cancel(CALLER, execution_id, ControlRequest())
    test_over.set()


async def test_a_slow_heartbeat_stops_the_nodes_actors_before_the_ttl(redis: Redis, prefix: str) -> None:
    from procengine.store.keys import Keys

    ownership = Ownership(redis, Keys(prefix), "slow-node", heartbeat_ms=50, ttl_ms=500)
    lost = asyncio.Event()

    async def on_lost() -> None:
        lost.set()

    async def hangs() -> None:
        await asyncio.sleep(60)

    ownership.renew = hangs  # type: ignore[method-assign]
    task = asyncio.create_task(ownership.heartbeat_forever(on_lost))
    began = time.monotonic()
    try:
        await asyncio.wait_for(lost.wait(), 5)
        assert time.monotonic() - began < 0.5
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cursor_that_is_not_ours_is_422(engine: Node) -> None:
    with pytest.raises(ValidationFailed):
        await engine.list_executions(CALLER, status=None, process_id=None, limit=5, cursor="²")
