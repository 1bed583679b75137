"""A task's element record keeps the input its latest attempt was called with and every attempt, each with its
start, stop, duration and error (issue 19, point 5): a retried task no longer reads "took 1 ms" for the last of
several attempts, across a pause, a takeover by another node, and a loop back to the same task."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.actors.records import MAX_ATTEMPTS_KEPT
from procengine.api.views import ControlRequest, ElementView
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry, TaskFailed
from tests.support.nodes import CALLER, EngineFactory, Gate, crash, start, wait_element, wait_status
from tests.support.processes import definition


async def _record(engine: Node, execution_id: int, key: str) -> ElementView:
    [record] = [e for e in (await engine.elements(CALLER, execution_id)).items if e.key == key]
    return record


def _ms(iso: str | None) -> int:
    assert iso is not None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Flaky:
    """Fails its first `failures` calls (after `nap_s`), then waits at `gate` (if given) and returns its input."""

    def __init__(self, failures: int, nap_s: float = 0.0, gate: Gate | None = None) -> None:
        self.failures = failures
        self.nap_s = nap_s
        self.gate = gate
        self.calls = 0

    async def run(self, task_input: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.nap_s)  # the attempt's own work: what durationMs measures
        if self.calls <= self.failures:
            raise TaskFailed(f"card declined (call {self.calls})")
        if self.gate is not None:
            return await self.gate.run(task_input)
        return {"charged": task_input["amount"]}


CHARGE = {
    "key": "charge",
    "type": "task",
    "handler": "flaky",
    "input": {"amount": "price * 2", "card": "'4000'"},
    "retry": {"maxAttempts": 3, "backoffMs": 50},
    "next": "done",
}


async def test_a_retried_task_keeps_each_attempt_and_its_input(engine: Node, handlers: HandlerRegistry) -> None:
    # given a task that fails twice, 60 ms each time, and then succeeds, with 50 ms between attempts
    flaky = Flaky(failures=2, nap_s=0.06)
    handlers.register("flaky", flaky.run)
    execution_id = await start(engine, definition(CHARGE, {"key": "done", "type": "end"}), {"price": 21})
    await wait_status(engine, execution_id, "completed")

    record = await _record(engine, execution_id, "charge")
    # then its record has the evaluated input and all three attempts, oldest first
    assert record.input == {"amount": 42, "card": "4000"}
    assert record.attemptHistory is not None
    history = [a.model_dump() for a in record.attemptHistory]
    assert [(a["attempt"], a["status"], a["error"], a["errorType"]) for a in history] == [
        (1, "failed", "TaskFailed: card declined (call 1)", "TaskFailed"),
        (2, "failed", "TaskFailed: card declined (call 2)", "TaskFailed"),
        (3, "completed", None, None),
    ]
    for attempt in history:
        assert attempt["durationMs"] == _ms(attempt["stoppedAt"]) - _ms(attempt["startedAt"]) >= 60
    for before, after in itertools.pairwise(history):  # the backoff lies between two attempts
        assert _ms(after["startedAt"]) - _ms(before["stoppedAt"]) >= 50
    # the record's own fields are the latest attempt's, as before
    assert (record.attempts, record.startedAt, record.stoppedAt) == (
        3,
        history[2]["startedAt"],
        history[2]["stoppedAt"],
    )
    # and an element that is not a task has neither
    done = await _record(engine, execution_id, "done")
    assert (done.input, done.attemptHistory) == (None, None)


async def test_while_it_backs_off_the_record_shows_the_failed_attempt(engine: Node, handlers: HandlerRegistry) -> None:
    flaky = Flaky(failures=1)
    handlers.register("flaky", flaky.run)
    slow = {**CHARGE, "retry": {"maxAttempts": 2, "backoffMs": 60_000}}
    execution_id = await start(engine, definition(slow, {"key": "done", "type": "end"}), {"price": 1})
    await wait_element(engine, execution_id, "charge", "retrying")

    record = await _record(engine, execution_id, "charge")
    assert record.input == {"amount": 2, "card": "4000"}
    assert record.attemptHistory is not None
    [attempt] = record.attemptHistory
    assert (attempt.attempt, attempt.status, attempt.errorType) == (1, "failed", "TaskFailed")
    assert attempt.stoppedAt is not None and attempt.durationMs is not None
    await engine.cancel(CALLER, execution_id, ControlRequest())


async def test_a_task_cut_short_by_a_pause_keeps_the_interrupted_attempt(engine: Node, gate: Gate) -> None:
    # given a task held by its handler past the pause's grace (500 ms in the suite's settings)
    execution_id = await start(
        engine,
        definition(
            {"key": "work", "type": "task", "handler": "gate", "input": {"n": "1 + 1"}, "next": "done"},
            {"key": "done", "type": "end"},
        ),
    )
    await gate.entered.wait()
    gate.entered.clear()
    await engine.pause(CALLER, execution_id, ControlRequest())
    interrupted = await _record(engine, execution_id, "work")
    assert interrupted.status == "interrupted"
    assert interrupted.input == {"n": 2}
    assert [(a.attempt, a.status) for a in interrupted.attemptHistory or []] == [(1, "interrupted")]

    # when it is resumed and runs again (same attempt number)
    await engine.resume(CALLER, execution_id, ControlRequest())
    await gate.entered.wait()
    gate.release.set()
    await wait_status(engine, execution_id, "completed")

    # then both runs of attempt 1 are there: the one cut short and the one that completed
    record = await _record(engine, execution_id, "work")
    assert [(a.attempt, a.status) for a in record.attemptHistory or []] == [(1, "interrupted"), (1, "completed")]
    assert record.input == {"n": 2}


async def test_a_node_that_takes_over_goes_on_with_the_history_in_redis(
    make_engine: EngineFactory, handlers: HandlerRegistry, redis: Redis
) -> None:
    # given a task whose first attempt failed on node a and whose second runs there when a dies
    gate = Gate()
    flaky = Flaky(failures=1, gate=gate)
    handlers.register("flaky", flaky.run)
    a = await make_engine()
    execution_id = await start(
        a, definition({**CHARGE, "retry": {"maxAttempts": 2}}, {"key": "done", "type": "end"}), {"price": 5}
    )
    await gate.entered.wait()
    await crash(a)
    await redis.delete(a.keys.node(a.node_id))

    # when node b adopts it and the second attempt runs again there
    b = await make_engine()
    await b.reconcile()
    gate.release.set()
    await wait_status(b, execution_id, "completed")

    # then b's record has attempt 1 from a's records, and the input
    record = await _record(b, execution_id, "charge")
    assert [(a.attempt, a.status) for a in record.attemptHistory or []] == [(1, "failed"), (2, "completed")]
    assert record.input == {"amount": 10, "card": "4000"}


async def test_a_task_run_again_by_a_loop_starts_a_new_history(engine: Node, handlers: HandlerRegistry) -> None:
    # given a task in a loop: the second pass is a new run of the element, not a fourth attempt of the first
    flaky = Flaky(failures=1)
    handlers.register("flaky", flaky.run)
    execution_id = await start(
        engine,
        definition(
            {**CHARGE, "input": {"amount": "n"}, "retry": {"maxAttempts": 2}, "next": "count"},
            {"key": "count", "type": "set-variable", "set": {"n": "n + 1"}, "next": "again"},
            {"key": "again", "type": "if-condition", "condition": "n < 3", "then": "charge", "else": "done"},
            {"key": "done", "type": "end"},
        ),
        {"n": 1},
    )
    await wait_status(engine, execution_id, "completed")

    record = await _record(engine, execution_id, "charge")
    assert record.input == {"amount": 2}
    assert [(a.attempt, a.status) for a in record.attemptHistory or []] == [(1, "completed")]


async def test_the_history_keeps_the_latest_attempts(engine: Node, handlers: HandlerRegistry) -> None:
    attempts = MAX_ATTEMPTS_KEPT + 5
    flaky = Flaky(failures=attempts)
    handlers.register("flaky", flaky.run)
    execution_id = await start(
        engine,
        definition({**CHARGE, "retry": {"maxAttempts": attempts}}, {"key": "done", "type": "end"}),
        {"price": 1},
    )
    await wait_status(engine, execution_id, "failed")

    record = await _record(engine, execution_id, "charge")
    history = record.attemptHistory or []
    assert [a.attempt for a in history] == list(range(6, attempts + 1))
    assert history[-1].error == f"TaskFailed: card declined (call {attempts})"


@pytest.mark.parametrize("limit", [64 * 1024])
async def test_an_input_over_the_memory_limit_is_not_kept(
    make_engine: EngineFactory, handlers: HandlerRegistry, limit: int
) -> None:
    # given an input of two copies of a 40 kB variable: the memory holds it once, the input twice (over 64 kB)
    engine = await make_engine(max_snapshot_bytes=limit)
    handlers.register("flaky", Flaky(failures=0).run)
    execution_id = await start(
        engine,
        definition(
            {**CHARGE, "input": {"amount": "1", "a": "blob", "b": "blob"}},
            {"key": "done", "type": "end"},
        ),
        {"blob": "x" * 40_000},
    )
    await wait_status(engine, execution_id, "completed")

    record = await _record(engine, execution_id, "charge")
    assert isinstance(record.input, str) and record.input.startswith("(not kept: the input is over")


async def test_each_iteration_of_a_for_each_keeps_its_own_attempts(engine: Node) -> None:
    # given a for-each whose body task fails twice in each of its three iterations, run side by side
    execution_id = await start(
        engine,
        definition(
            {
                "key": "loop",
                "type": "for-each",
                "items": "[1, 2, 3]",
                "as": "n",
                "maxConcurrency": 3,
                "body": {
                    "elements": [
                        {
                            "key": "charge",
                            "type": "task",
                            "handler": "fail",
                            "input": {"message": "'declined ' + string(n)"},
                            "retry": {"maxAttempts": 2},
                        }
                    ]
                },
            }
        ),
    )
    await wait_status(engine, execution_id, "failed")

    # then each iteration's record has its own input and attempts, not the others' mixed in
    records = [e for e in (await engine.elements(CALLER, execution_id)).items if e.key == "charge"]
    records = sorted(records, key=lambda r: r.path or "")
    assert [r.path for r in records] == ["main/loop[0]", "main/loop[1]", "main/loop[2]"]
    assert sorted(r.status for r in records) == ["failed", "interrupted", "interrupted"]  # the first to fail twice
    for index, record in enumerate(records):
        assert record.input == {"message": f"declined {index + 1}"}
        history = record.attemptHistory or []
        # its own attempts, once each: the failed ones, then (a sibling stopped by the failure) the one cut short
        assert [a.attempt for a in history] == list(range(1, len(history) + 1))
        assert all(a.error is None or a.error == f"TaskFailed: declined {index + 1}" for a in history)
