"""Every transition, legal and illegal, against a real Redis."""

from __future__ import annotations

import asyncio

import pytest

from procengine.api.views import ControlRequest
from procengine.errors import InvalidTransition
from procengine.node.node import Node
from procengine.runtime.clock import parse_iso
from tests.support.clock import ShiftedClock
from tests.support.nodes import CALLER, EngineFactory, Gate, events, start, wait_element, wait_status
from tests.support.polling import until
from tests.support.processes import definition

WAIT = definition(
    {"key": "first", "type": "set-variable", "set": {"a": "1"}, "next": "approve"},
    {"key": "approve", "type": "wait-signal", "signal": "go", "into": "go", "next": "done"},
    {"key": "done", "type": "end"},
)


async def waiting_execution(engine: Node) -> int:
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "approve")
    return execution_id


async def test_pause_then_resume_then_complete(engine: Node) -> None:
    execution_id = await waiting_execution(engine)

    paused = await engine.pause(CALLER, execution_id, ControlRequest(reason="lunch"))
    assert (paused.status, paused.completedNodes, paused.totalNodes) == ("paused", 1, 3)
    status = await engine.status(CALLER, execution_id)
    assert status.status == "paused" and status.isActive

    resumed = await engine.resume(CALLER, execution_id, ControlRequest())
    assert resumed.status == "running" and resumed.pendingNodes == 1

    await engine.signal(CALLER, execution_id, "go", {"ok": 1})
    assert await wait_status(engine, execution_id, "completed") == "completed"
    final = await engine.status(CALLER, execution_id)
    assert final.progress.percentage == 100.0 and not final.isActive

    log = (await engine.log(CALLER, execution_id)).items
    paused_entry = next(e for e in log if e.event == "paused")
    assert paused_entry.detail["from"] == "running" and paused_entry.detail["to"] == "paused"
    assert paused_entry.detail["by"] == "default" and paused_entry.detail["reason"] == "lunch"
    assert paused_entry.detail["requestId"] == "req-test"
    assert [e.event for e in log if e.event in ("started", "paused", "resumed", "completed")] == [
        "started",
        "paused",
        "resumed",
        "completed",
    ]


@pytest.mark.parametrize("source", ["running", "paused"])
async def test_cancel_clears_stack_and_memory_but_keeps_the_log(engine: Node, source: str) -> None:
    execution_id = await waiting_execution(engine)
    if source == "paused":
        await engine.pause(CALLER, execution_id, ControlRequest())

    cancelled = await engine.cancel(CALLER, execution_id, ControlRequest(reason="no longer needed"))

    assert cancelled.status == "cancelled"
    state = await engine.state(CALLER, execution_id)
    assert (state.active, state.stack, state.memory) == (False, None, None)
    status = await engine.status(CALLER, execution_id)
    assert status.status == "cancelled" and not status.isActive and status.timing.stoppedAt is not None
    assert [t.status for t in status.threads] == ["cancelled"]
    entry = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "cancelled"]
    assert len(entry) == 1 and entry[0].detail["from"] == source


async def test_cancel_of_a_paused_execution_ends_the_pause(make_engine, engine: Node) -> None:  # type: ignore[no-untyped-def]
    """Found by the model (tests/test_model.py): a paused execution that was cancelled still said `pausedAt`, and its
    pause was missing from `pausedDurationMs`."""
    execution_id = await waiting_execution(engine)
    paused = await engine.pause(CALLER, execution_id, ControlRequest())

    cancelled = await engine.cancel(CALLER, execution_id, ControlRequest())

    pause_ms = parse_iso(cancelled.cancelledAt) - parse_iso(paused.pausedAt)
    other = await make_engine()  # reads Redis, where this engine answers from its actor's copy
    for node in (engine, other):
        timing = (await node.status(CALLER, execution_id)).timing
        assert (timing.pausedAt, timing.pausedDurationMs) == (None, pause_ms)
        assert timing.stoppedAt == cancelled.cancelledAt


@pytest.mark.parametrize("source", ["running", "paused"])
async def test_a_wait_cut_short_by_a_cancel_reads_interrupted(engine: Node, source: str) -> None:
    """Found by the model (tests/test_model.py): the record of a wait (or delay) under way at a cancel said `running`
    for good."""
    execution_id = await waiting_execution(engine)
    paused_at = None
    if source == "paused":
        paused_at = (await engine.pause(CALLER, execution_id, ControlRequest())).pausedAt

    cancelled = await engine.cancel(CALLER, execution_id, ControlRequest())

    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    # a wait frozen by the pause stopped running then (issue 19 point 6), not at the cancel
    stopped = paused_at or cancelled.cancelledAt
    assert (records["approve"].status, records["approve"].stoppedAt) == ("interrupted", stopped)
    assert records["first"].status == "completed"


async def test_a_wait_in_another_thread_reads_interrupted_when_the_execution_fails(engine: Node) -> None:
    threads = [
        {"key": "waits", "elements": [{"key": "approve", "type": "wait-signal", "signal": "go", "next": "done"},
                                      {"key": "done", "type": "end"}]},
        {"key": "fails", "elements": [{"key": "nap", "type": "delay", "durationMs": 50, "next": "boom"},
                                      {"key": "boom", "type": "task", "handler": "fail"}]},
    ]  # fmt: skip
    execution_id = await start(engine, definition(threads=threads))

    assert await wait_status(engine, execution_id, "failed") == "failed"

    records = {e.key: e.status for e in (await engine.elements(CALLER, execution_id)).items}
    assert records == {"approve": "interrupted", "nap": "completed", "boom": "failed"}


@pytest.mark.parametrize(
    ("setup", "verb", "current"),
    [
        ("running", "resume", "running"),
        ("paused", "pause", "paused"),
        ("completed", "pause", "completed"),
        ("completed", "resume", "completed"),
        ("completed", "cancel", "completed"),
        ("cancelled", "pause", "cancelled"),
        ("cancelled", "resume", "cancelled"),
        ("cancelled", "cancel", "cancelled"),
        ("failed", "pause", "failed"),
        ("failed", "resume", "failed"),
        ("failed", "cancel", "failed"),
    ],
)
async def test_illegal_transitions_are_refused_and_logged(engine: Node, setup: str, verb: str, current: str) -> None:
    if setup == "failed":
        execution_id = await start(engine, definition({"key": "boom", "type": "task", "handler": "fail"}))
        await wait_status(engine, execution_id, "failed")
    elif setup == "completed":
        execution_id = await start(engine, definition({"key": "only", "type": "end"}))
        await wait_status(engine, execution_id, "completed")
    else:
        execution_id = await waiting_execution(engine)
        if setup == "paused":
            await engine.pause(CALLER, execution_id, ControlRequest())
        elif setup == "cancelled":
            await engine.cancel(CALLER, execution_id, ControlRequest())

    with pytest.raises(InvalidTransition) as refused:
        await getattr(engine, verb)(CALLER, execution_id, ControlRequest(reason="try"))

    assert refused.value.current_status == current
    assert (await engine.status(CALLER, execution_id)).status == current
    log = (await engine.log(CALLER, execution_id)).items
    assert log[-1].event == "refused" and log[-1].detail["command"] == verb and log[-1].detail["from"] == current


async def test_concurrent_resumes_exactly_one_wins(engine: Node) -> None:
    execution_id = await waiting_execution(engine)
    await engine.pause(CALLER, execution_id, ControlRequest())

    results = await asyncio.gather(
        *(engine.resume(CALLER, execution_id, ControlRequest()) for _ in range(10)), return_exceptions=True
    )

    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, InvalidTransition) for r in results if isinstance(r, BaseException))
    assert [e for e, _ in await events(engine, execution_id)].count("resumed") == 1


async def test_concurrent_pauses_on_two_nodes_exactly_one_wins(make_engine, engine: Node) -> None:  # type: ignore[no-untyped-def]
    other = await make_engine()
    execution_id = await waiting_execution(engine)

    results = await asyncio.gather(
        *(node.pause(CALLER, execution_id, ControlRequest()) for node in (engine, other, engine, other)),
        return_exceptions=True,
    )

    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert [e for e, _ in await events(engine, execution_id)].count("paused") == 1


async def test_pause_lets_a_running_task_finish_before_answering(engine: Node, gate: Gate) -> None:
    execution_id = await start(
        engine,
        definition(
            {"key": "work", "type": "task", "handler": "gate", "next": "after"},
            {"key": "after", "type": "set-variable", "set": {"b": "2"}},
        ),
    )
    await gate.entered.wait()

    pause = asyncio.create_task(engine.pause(CALLER, execution_id, ControlRequest()))
    actor = engine.registry.get(execution_id)
    assert actor is not None
    await until(actor.lanes.halt.is_set)  # the pause has reached the actor and stopped its lanes
    assert not pause.done(), "pause must wait for the running task"
    gate.release.set()
    paused = await pause

    assert paused.inflightNodes == 1 and paused.completedNodes == 1
    elements = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert elements["work"].status == "completed" and "after" not in elements
    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "completed")
    assert gate.calls == 1


async def test_pause_cuts_a_task_short_after_the_grace_period_and_reruns_it(engine: Node, gate: Gate) -> None:
    execution_id = await start(engine, definition({"key": "work", "type": "task", "handler": "gate"}))
    await gate.entered.wait()

    paused = await engine.pause(CALLER, execution_id, ControlRequest())

    assert paused.completedNodes == 0 and gate.finished == 0
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    assert [e["element_key"] for e in state.stack["execution_stack"]] == ["work"]
    gate.release.set()
    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "completed")
    assert gate.calls == 2
    assert [e for e in await events(engine, execution_id)].count(("element-completed", "work")) == 1


async def test_pause_freezes_a_delay_and_resume_continues_it(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    execution_id = await start(engine, definition({"key": "nap", "type": "delay", "durationMs": 2000}))
    await wait_element(engine, execution_id, "nap")

    await engine.pause(CALLER, execution_id, ControlRequest())
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    entry = state.stack["execution_stack"][0]
    assert "due_at_ms" not in entry and 1000 < entry["remaining_ms"] <= 2000

    clock.advance(300)  # time passes while paused, by the engine's clock
    state_later = await engine.state(CALLER, execution_id)
    assert state_later.stack is not None
    assert state_later.stack["execution_stack"][0]["remaining_ms"] == entry["remaining_ms"]
    resumed = await engine.resume(CALLER, execution_id, ControlRequest())
    assert resumed.pausedDurationMs >= 300
    await engine.cancel(CALLER, execution_id, ControlRequest())
