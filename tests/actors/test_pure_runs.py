"""Pure runs (docs/architecture.md, "Pure runs"): consecutive set-variable, if-condition and switch elements of one
lane share one checkpoint, and the execution reads exactly as if each had had its own."""

from __future__ import annotations

from functools import partial
from typing import Any

from procengine.api.views import ControlRequest
from procengine.errors import InvalidTransition
from procengine.node.node import Node
from procengine.store.executions import Commit, WriteResult
from tests.support.nodes import CALLER, EngineFactory, Gate, start, wait_status
from tests.support.polling import poll
from tests.support.processes import definition


def chain(count: int, *, then: str = "end", fail_at: int | None = None) -> list[dict[str, Any]]:
    """`count` set-variable elements s1..sN, each adding 1 to `x` (s`fail_at` reads a variable there is not), an
    if-condition in the middle, then `then`."""
    elements: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        source = "missing + 1" if i == fail_at else "x + 1"
        elements.append({"key": f"s{i}", "type": "set-variable", "set": {"x": source}, "next": f"s{i + 1}"})
    elements[-1]["next"] = then
    middle = count // 2
    elements.insert(
        middle,
        {"key": "test", "type": "if-condition", "condition": "x >= 0", "then": f"s{middle + 1}", "else": "end"},
    )
    elements[middle - 1]["next"] = "test"
    elements.append({"key": "end", "type": "end"})
    return elements


def spy_commits(engine: Node) -> list[list[str]]:
    """The element completions each write of the engine carried, write by write."""
    writes: list[list[str]] = []
    commit = engine.store.commit

    async def spied(execution_id: int, change: Commit, **kwargs: Any) -> WriteResult:
        writes.append([entry.element_key or "" for entry in change.log if entry.event == "element-completed"])
        return await commit(execution_id, change, **kwargs)

    engine.store.commit = spied  # type: ignore[method-assign]
    return writes


async def history(engine: Node, execution_id: int) -> tuple[Any, ...]:
    """What the execution reads as, times left out: status, variables, log and element records."""
    status = await engine.status(CALLER, execution_id)
    state = await engine.state(CALLER, execution_id)
    log = [
        (e.event, e.elementKey, {k: v for k, v in e.detail.items() if k != "durationMs"})
        for e in (await engine.log(CALLER, execution_id)).items
    ]
    records = sorted(
        (r.key, r.status, r.attempts, repr(r.output), r.error, r.errorType)
        for r in (await engine.elements(CALLER, execution_id, limit=1000)).items
    )
    return status.status, status.progress, state.memory["variables"], log, records


async def test_a_run_of_pure_elements_is_written_in_one_checkpoint(make_engine: EngineFactory) -> None:
    engine = await make_engine(checkpoint_coalesce=8)
    writes = spy_commits(engine)
    execution_id = await start(engine, definition(*chain(20)), {"x": 0})
    assert await wait_status(engine, execution_id, "completed") == "completed"

    runs = [keys for keys in writes if keys]
    assert max(len(keys) for keys in runs) == 8  # up to 8 elements a write, the cap
    assert [key for keys in runs for key in keys] == [f"s{i}" for i in range(1, 11)] + ["test"] + [
        f"s{i}" for i in range(11, 21)
    ] + ["end"]
    assert runs[-1] == ["end"]  # not pure: a checkpoint of its own
    assert (await engine.state(CALLER, execution_id)).memory["variables"] == {"x": 20}


async def test_with_coalescing_off_each_element_has_its_own_checkpoint(make_engine: EngineFactory) -> None:
    engine = await make_engine(checkpoint_coalesce=1)
    writes = spy_commits(engine)
    execution_id = await start(engine, definition(*chain(10)), {"x": 0})
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert all(len(keys) <= 1 for keys in writes)


async def test_an_execution_reads_the_same_with_and_without_coalescing(make_engine: EngineFactory) -> None:
    """The same status, variables, log (every element's entry, in order) and element records, for a run that ends
    well and for one whose element fails (an expression error ends the run and is written as today)."""
    coalescing, alone = await make_engine(checkpoint_coalesce=32), await make_engine(checkpoint_coalesce=1)
    for process in (definition(*chain(30), key="ok"), definition(*chain(30, fail_at=17), key="bad")):
        seen = []
        for engine in (coalescing, alone):
            execution_id = await start(engine, process, {"x": 0})
            await wait_status(engine, execution_id, "completed", "failed")
            seen.append(await history(engine, execution_id))
        assert seen[0] == seen[1]
    assert seen[0][0] == "failed" and seen[0][2] == {"x": 16}


async def test_a_task_after_a_run_starts_in_a_checkpoint_of_its_own(make_engine: EngineFactory, gate: Gate) -> None:
    """Elements that are not pure are never folded into a run: the run is written before the task starts."""
    engine = await make_engine(checkpoint_coalesce=32)
    writes = spy_commits(engine)
    elements = chain(6, then="work")
    elements.insert(-1, {"key": "work", "type": "task", "handler": "gate", "next": "end"})
    execution_id = await start(engine, definition(*elements), {"x": 0})
    await gate.entered.wait()
    assert [keys for keys in writes if keys] == [["s1", "s2", "s3", "test", "s4", "s5", "s6"]]
    gate.release.set()
    assert await wait_status(engine, execution_id, "completed") == "completed"


async def test_the_memory_limit_stops_a_run_at_the_same_element(make_engine: EngineFactory) -> None:
    """A value is checked against the memory as the element before left it, as with a checkpoint after each: the
    same element fails (LimitExceeded) with and without coalescing."""
    elements = [
        {"key": f"v{i}", "type": "set-variable", "set": {f"v{i}": "'" + "z" * 9000 + "'"}, "next": f"v{i + 1}"}
        for i in range(1, 10)
    ]
    elements[-1]["next"] = "end"
    elements.append({"key": "end", "type": "end"})
    seen = []
    for cap in (32, 1):
        engine = await make_engine(checkpoint_coalesce=cap, max_snapshot_bytes=65_536)
        execution_id = await start(engine, definition(*elements, key="big"))
        assert await wait_status(engine, execution_id, "failed") == "failed"
        seen.append(await history(engine, execution_id))
    assert seen[0] == seen[1]
    assert seen[0][3][-2][:2] == ("element-failed", "v7")


async def test_a_pause_during_a_run_applies_at_its_end(make_engine: EngineFactory) -> None:
    """A pause asked while runs go on (once the first is written) finds the execution as a run's checkpoint left
    it: the snapshot, the progress and the log agree on how many elements completed, and that many end a run."""
    engine = await make_engine(checkpoint_coalesce=8)
    for attempt in range(3):
        execution_id = await start(engine, definition(*chain(200), key=f"p{attempt}"), {"x": 0})
        await poll(partial(engine.status, CALLER, execution_id), lambda found: found.progress.completedNodes > 0)
        try:
            answer = await engine.pause(CALLER, execution_id, ControlRequest())
        except InvalidTransition:  # it had ended: no point inside it to look at
            continue
        status = await engine.status(CALLER, execution_id)
        done = status.progress.completedNodes
        variables = (await engine.state(CALLER, execution_id)).memory["variables"]
        completions = [
            key for event, key, _ in (await history(engine, execution_id))[3] if event == "element-completed"
        ]
        assert len(completions) == done == answer.completedNodes
        assert variables == {"x": min(done, 201) - (1 if done > 100 else 0)}  # `test` and `end` add nothing
        assert done % 8 == 0 or done in (201, 202), done
        await engine.cancel(CALLER, execution_id, ControlRequest())
