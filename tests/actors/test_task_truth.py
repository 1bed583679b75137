"""The log and the element records tell the truth about tasks that a pause, a cancel or a retry meets:
a task is logged as started only if its handler runs; one cut short says so; attempts count attempts run."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from procengine.api.views import ControlRequest, LogEntry
from procengine.node.node import Node
from procengine.store.executions import Commit, WriteResult
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, Gate, start, wait_element, wait_status
from tests.support.processes import definition


class HeldCheckpoint:
    """Holds the first write whose log has `event` for `element` until released: a checkpoint in flight."""

    def __init__(self, engine: Node, event: str, element: str) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        commit_write = engine.store.commit

        async def commit(
            execution_id: int, commit: Commit, *, epoch: int | None, expect: str, not_after_ms: int | None = None
        ) -> WriteResult:
            if not self.reached.is_set() and any((e.event, e.element_key) == (event, element) for e in commit.log):
                self.reached.set()
                await self.release.wait()
            return await commit_write(execution_id, commit, epoch=epoch, expect=expect, not_after_ms=not_after_ms)

        engine.store.commit = commit  # type: ignore[method-assign]


async def _log(engine: Node, execution_id: int) -> list[LogEntry]:
    return (await engine.log(CALLER, execution_id)).items


async def _halted(engine: Node, execution_id: int) -> None:
    """Wait until the pause has reached the actor (it stops scheduling first)."""
    actor = engine.registry.get(execution_id)
    assert actor is not None
    async with asyncio.timeout(5):
        await actor._halt.wait()


async def test_a_pause_meeting_a_task_start_being_written_waits_for_that_task(engine: Node, gate: Gate) -> None:
    # given a task whose start is being checkpointed when the pause comes
    held = HeldCheckpoint(engine, "element-started", "work")
    execution_id = await start(
        engine,
        definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, {"key": "e", "type": "end"}),
    )
    await held.reached.wait()
    pause = asyncio.create_task(engine.pause(CALLER, execution_id, ControlRequest()))
    await _halted(engine, execution_id)
    # when the start lands, then the task runs (it was started) and the pause waits for it
    held.release.set()
    await gate.entered.wait()
    assert not pause.done()
    gate.release.set()
    paused = await pause

    assert paused.inflightNodes == 1 and paused.completedNodes == 1
    log = await _log(engine, execution_id)
    assert [(e.event, e.elementKey) for e in log] == [
        ("started", None),
        ("element-started", "work"),
        ("element-completed", "work"),
        ("paused", None),
    ]
    assert log[-1].detail["inflight"] == 1 and "interrupted" not in log[-1].detail
    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "completed")
    assert gate.calls == 1
    assert [(e.event, e.elementKey) for e in await _log(engine, execution_id)].count(("element-started", "work")) == 1


async def test_a_pause_before_a_task_starts_writes_no_start_for_it(engine: Node, gate: Gate) -> None:
    # given the element before the task being checkpointed when the pause comes
    held = HeldCheckpoint(engine, "element-completed", "first")
    execution_id = await start(
        engine,
        definition(
            {"key": "first", "type": "set-variable", "set": {"a": "1"}, "next": "work"},
            {"key": "work", "type": "task", "handler": "gate"},
        ),
    )
    await held.reached.wait()
    pause = asyncio.create_task(engine.pause(CALLER, execution_id, ControlRequest()))
    await _halted(engine, execution_id)
    held.release.set()
    paused = await pause

    # then the task never started: no start in the log, nothing in flight, no record of it
    assert paused.inflightNodes == 0 and gate.calls == 0
    log = await _log(engine, execution_id)
    assert [(e.event, e.elementKey) for e in log] == [
        ("started", None),
        ("element-completed", "first"),
        ("paused", None),
    ]
    assert log[-1].detail["inflight"] == 0
    assert [e.key for e in (await engine.elements(CALLER, execution_id)).items] == ["first"]
    # and it starts once after resume
    gate.release.set()
    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "completed")
    assert gate.calls == 1


async def test_every_logged_start_is_a_handler_run_whenever_the_pause_comes(
    make_engine: EngineFactory, handlers: HandlerRegistry
) -> None:
    # the input: a 100 ms task first, paused 0-4 ms after the start answered, then resumed
    runs: Counter[int] = Counter()

    async def nap(task_input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        runs[ctx.execution_id] += 1
        await asyncio.sleep(0.1)
        return {}

    handlers.register("nap", nap)
    engine = await make_engine()
    process = definition({"key": "work", "type": "task", "handler": "nap", "next": "e"}, {"key": "e", "type": "end"})
    for delay_ms in [0, 1, 2, 3, 4] * 2:
        execution_id = await start(engine, process)
        await asyncio.sleep(delay_ms / 1000)  # the input under test, not synchronisation
        paused = await engine.pause(CALLER, execution_id, ControlRequest())
        await engine.resume(CALLER, execution_id, ControlRequest())
        await wait_status(engine, execution_id, "completed")

        log = await _log(engine, execution_id)
        events = [(e.event, e.elementKey) for e in log]
        starts_before_pause = events[: events.index(("paused", None))].count(("element-started", "work"))
        ended_before_pause = ("element-completed", "work") in events[: events.index(("paused", None))]
        assert events.count(("element-started", "work")) == runs[execution_id], (delay_ms, events)
        assert paused.inflightNodes == starts_before_pause, (delay_ms, events)
        assert ended_before_pause == (starts_before_pause == 1), (delay_ms, events)
        assert events.count(("element-completed", "work")) == 1


async def test_a_task_cut_short_by_the_grace_is_marked_interrupted_and_runs_again(
    make_engine: EngineFactory, gate: Gate
) -> None:
    engine = await make_engine(pause_grace_ms=50)
    execution_id = await start(engine, definition({"key": "work", "type": "task", "handler": "gate"}))
    await gate.entered.wait()

    paused = await engine.pause(CALLER, execution_id, ControlRequest())

    assert paused.inflightNodes == 1 and gate.finished == 0
    pause_entry = (await _log(engine, execution_id))[-1]
    assert (pause_entry.event, pause_entry.detail["inflight"], pause_entry.detail["interrupted"]) == (
        "paused",
        1,
        ["work"],
    )
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert (record.status, record.attempts) == ("interrupted", 1) and record.stoppedAt is not None
    gate.release.set()
    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "completed")
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert (record.status, record.attempts) == ("completed", 1)
    starts = [e.detail for e in await _log(engine, execution_id) if e.event == "element-started"]
    assert [detail.get("rerun") for detail in starts] == [None, True]  # the second start says it is a re-run


async def test_cancel_marks_a_running_task_interrupted(engine: Node, gate: Gate) -> None:
    execution_id = await start(engine, definition({"key": "work", "type": "task", "handler": "gate"}))
    await gate.entered.wait()

    await engine.cancel(CALLER, execution_id, ControlRequest(reason="stop"))

    last = (await _log(engine, execution_id))[-1]
    assert (last.event, last.detail["interrupted"]) == ("cancelled", ["work"])
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert record.status == "interrupted"


async def test_during_the_backoff_attempts_counts_the_attempts_that_ran(
    make_engine: EngineFactory, handlers: HandlerRegistry, gate: Gate
) -> None:
    calls = 0

    async def flaky(task_input: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first try fails")
        return await gate.run(task_input)

    handlers.register("flaky", flaky)
    engine = await make_engine()
    execution_id = await start(
        engine,
        definition({"key": "t", "type": "task", "handler": "flaky", "retry": {"maxAttempts": 2, "backoffMs": 300}}),
    )
    # during the backoff: one attempt has run
    await wait_element(engine, execution_id, "t", "retrying")
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert (record.attempts, record.error) == (1, "RuntimeError: first try fails")
    retry = (await _log(engine, execution_id))[-1]
    assert retry.event == "element-retry" and "attempt" not in retry.detail and "retryAt" in retry.detail
    # once attempt 2 runs: two
    await gate.entered.wait()
    await wait_element(engine, execution_id, "t", "running")
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert record.attempts == 2
    gate.release.set()
    await wait_status(engine, execution_id, "completed")
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert (record.status, record.attempts) == ("completed", 2)
