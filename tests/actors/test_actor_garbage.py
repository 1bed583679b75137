"""An actor that ends (completed, cancelled) or passivates leaves no reference cycle: reference counting frees it at
once, so a node may run Python's garbage collector rarely (runtime/collector.py) without holding the memory of
the executions it has let go of."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from procengine.actors.actor import ExecutionActor
from procengine.api.views import BatchStartRequest, ControlRequest, StartRequest
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, Gate, start, wait_status
from tests.support.polling import until
from tests.support.processes import definition

WAIT = definition({"key": "w", "type": "wait-signal", "signal": "s", "next": "done"}, {"key": "done", "type": "end"})
GATED = definition(
    {"key": "t", "type": "task", "handler": "gate", "input": {"n": "n"}, "output": "out", "next": "set"},
    {"key": "set", "type": "set-variable", "set": {"x": "1"}, "next": "done"},
    {"key": "done", "type": "end"},
    key="garbage-gated",
)
"""Its task waits for the test (the `gate` handler): the actor is live when the test takes hold of it."""


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cyclic collector off for the test: what is freed is freed by reference counting alone."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _gone(actor: weakref.ReferenceType[ExecutionActor]) -> None:
    await until(lambda: actor() is None, within=5)


def _actor(engine: Node, execution_id: int) -> weakref.ReferenceType[ExecutionActor]:
    live = engine.registry.get(execution_id)
    assert live is not None
    return weakref.ref(live)


@pytest.mark.usefixtures("no_collector")
async def test_a_passivated_actor_is_freed_without_the_collector(engine: Node) -> None:
    execution_id = await start(engine, WAIT)
    actor = _actor(engine, execution_id)

    await engine.pause(CALLER, execution_id, ControlRequest())

    await until(lambda: engine.registry.get(execution_id) is None)
    await _gone(actor)


@pytest.mark.usefixtures("no_collector")
async def test_a_cancelled_actor_is_freed_without_the_collector(engine: Node) -> None:
    execution_id = await start(engine, WAIT)
    actor = _actor(engine, execution_id)

    await engine.cancel(CALLER, execution_id, ControlRequest())

    await _gone(actor)


@pytest.mark.usefixtures("no_collector")
async def test_a_completed_actor_is_freed_without_the_collector(engine: Node) -> None:
    execution_id = await start(engine, WAIT)
    actor = _actor(engine, execution_id)

    await engine.signal(CALLER, execution_id, "s", {"ok": True})

    assert await wait_status(engine, execution_id, "completed") == "completed"
    await _gone(actor)


@pytest.mark.usefixtures("no_collector")
async def test_an_actor_that_ran_a_task_to_completion_is_freed_without_the_collector(engine: Node, gate: Gate) -> None:
    execution_id = await start(engine, GATED, {"n": 1})
    actor = _actor(engine, execution_id)

    gate.release.set()

    assert await wait_status(engine, execution_id, "completed") == "completed"
    await _gone(actor)


@pytest.mark.usefixtures("no_collector")
async def test_an_actor_whose_task_failed_for_good_is_freed_without_the_collector(
    engine: Node, handlers: HandlerRegistry
) -> None:
    release = asyncio.Event()

    async def fail_when_released(task_input: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        raise RuntimeError("no")

    handlers.register("fail-when-released", fail_when_released)
    failing = definition(
        {"key": "t", "type": "task", "handler": "fail-when-released", "next": "done"},
        {"key": "done", "type": "end"},
        key="garbage-fail",
    )
    execution_id = await start(engine, failing)
    actor = _actor(engine, execution_id)

    release.set()

    assert await wait_status(engine, execution_id, "failed") == "failed"
    await _gone(actor)


async def test_a_parked_execution_holds_few_objects_for_the_collector(engine: Node) -> None:
    """A full collection walks every object a node holds, so what a live execution holds is what it costs (92 before
    issue 21's starts work, 70 after: runtime/collector.py)."""
    summary, _ = await engine.register_process(CALLER, WAIT)
    request = BatchStartRequest(items=[StartRequest(processID=summary.processID) for _ in range(200)])
    await engine.start_many(CALLER, BatchStartRequest(items=request.items[:10]))  # every code path once
    await until(lambda: _all_parked(engine))
    gc.collect()
    before = len(gc.get_objects())

    await engine.start_many(CALLER, request)

    await until(lambda: len(engine.registry) == 210 and _all_parked(engine))
    gc.collect()
    assert (len(gc.get_objects()) - before) / 200 <= 75


def _all_parked(engine: Node) -> bool:
    actors = [engine.registry.get(execution_id) for execution_id in engine.registry.ids()]
    return all(actor is not None and bool(actor.lanes._idle_lanes) and actor.lanes._all_idle() for actor in actors)
