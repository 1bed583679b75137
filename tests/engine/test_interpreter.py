"""The pure interpreter: what a thread does next, given a compiled definition, the state and the time."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.definitions import ProcessDefinition
from procengine.engine.outcomes import AwaitSignal, ElementFailed, Progressed, RunTask, Sleep, ThreadEnded
from tests.support.interpreter import definition, start


def _task(key: str, next_: str | None = None, **fields: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"key": key, "type": "task", "handler": "work", **fields}
    if next_ is not None:
        element["next"] = next_
    return element


def _set(key: str, next_: str | None = None, **values: str) -> dict[str, Any]:
    element: dict[str, Any] = {"key": key, "type": "set-variable", "set": values or {"x": "1"}}
    if next_ is not None:
        element["next"] = next_
    return element


def _delay(key: str, ms: int, next_: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"key": key, "type": "delay", "durationMs": ms}
    if next_ is not None:
        element["next"] = next_
    return element


def _wait(key: str, signal: str, into: str | None = None, next_: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"key": key, "type": "wait-signal", "signal": signal}
    if into is not None:
        element["into"] = into
    if next_ is not None:
        element["next"] = next_
    return element


# --- set-variable chains, events and counters --------------------------------------------------


def test_a_linear_set_variable_chain_runs_to_the_end() -> None:
    # given a -> b -> c -> end, each setting a variable from the ones before
    run = start(
        definition(
            _set("a", "b", x="1"),
            _set("b", "c", y="x + 1", label="'n' + string(x)"),
            _set("c", "fin", z="x + y"),
            {"key": "fin", "type": "end"},
        ),
        {"seed": True},
    )
    # when the thread is driven
    step = run.drive(now=5)
    # then it ended with every variable set
    assert step == ThreadEnded()
    assert run.variables == {"seed": True, "x": 1, "y": 2, "label": "n1", "z": 3}
    # and each element's outcome is recorded in the seed's shape; a set-variable's values are the variables,
    # not kept a second time as its output
    assert run.state.memory.node_outputs == {
        "a": {"status": "success"},
        "b": {"status": "success"},
        "c": {"status": "success"},
        "fin": {"status": "success"},
    }
    # and the thread counted four completed elements, nothing failed, and finished
    progress = run.state.threads["main"]
    assert (progress.completed_nodes, progress.failed_nodes, progress.status) == (4, 0, "completed")
    assert run.state.stack == []
    # and the events say completed for each element (each ended as it started: no separate start), in order,
    # at the time given, with the start time
    assert run.trail() == [
        ("element-completed", "a"),
        ("element-completed", "b"),
        ("element-completed", "c"),
        ("element-completed", "fin"),
    ]
    assert {(e.at_ms, e.started_at_ms, e.attempt, e.thread_key) for e in run.events} == {(5, 5, 1, "main")}
    assert run.events[0].output is None


def test_set_values_are_evaluated_against_the_variables_before_the_element() -> None:
    # given a swap written as one element
    run = start(definition(_set("swap", a="b", b="a")), {"a": 1, "b": 2})
    run.drive()
    assert run.variables == {"a": 2, "b": 1}


def test_each_step_is_one_element_and_execution_order_grows() -> None:
    run = start(definition(_set("a", "b", x="1"), _set("b", y="2")))
    assert [(e.element_key, e.execution_order, e.element_id) for e in run.state.stack] == [("a", 1, 1)]
    assert run.begin().step == Progressed()
    assert [(e.element_key, e.execution_order, e.element_id) for e in run.state.stack] == [("b", 2, 2)]
    assert run.begin().step == Progressed()
    assert run.state.stack == []
    assert run.begin().step == ThreadEnded()


# --- if-condition ------------------------------------------------------------------------------


@pytest.mark.parametrize(("total", "branch", "premium"), [(599.99, "premium", True), (100.0, "standard", False)])
def test_if_condition_picks_then_or_else_by_cel_over_variables(
    order_definition: ProcessDefinition, total: float, branch: str, premium: bool
) -> None:
    # given an order that the task has already fetched
    run = start(order_definition, {"order_id": "ORD-12345", "order_total": total})
    assert isinstance(run.drive(), RunTask)
    run.succeed({"id": "ORD-12345"})
    # when the thread goes on
    step = run.drive()
    # then the branch chosen by the condition ran, the other did not, and the thread waits for approval
    assert isinstance(step, AwaitSignal)
    assert run.variables["is_premium"] is premium
    assert run.state.memory.node_outputs["verify"]["data"] == {"result": total > 500.0, "next": branch}
    assert branch in run.state.memory.node_outputs
    assert ({"premium", "standard"} - {branch}).isdisjoint(run.state.memory.node_outputs)


def test_an_if_condition_without_the_branch_taken_ends_the_thread() -> None:
    run = start(definition({"key": "c", "type": "if-condition", "condition": "go", "then": "s"}, _set("s", x="1")))
    run.variables["go"] = False
    assert run.drive() == ThreadEnded()
    assert "s" not in run.state.memory.node_outputs
    assert run.state.threads["main"].completed_nodes == 1


def test_a_cel_runtime_error_in_a_condition_fails_the_element() -> None:
    # given a condition over a variable nobody set
    run = start(definition({"key": "c", "type": "if-condition", "condition": "missing > 1", "then": "s"}, _set("s")))
    # when the thread reaches it
    step = run.drive(now=7)
    # then the element fails for good, naming the expression, and stays on the stack
    assert isinstance(step, ElementFailed)
    assert "missing > 1" in step.error
    assert step.entry.element_key == "c"
    assert run.trail() == [("element-failed", "c")]  # it failed as it started: one event, with the start time
    assert run.events[-1].started_at_ms == 7
    assert run.events[-1].error == step.error
    progress = run.state.threads["main"]
    assert (progress.status, progress.failed_nodes, progress.completed_nodes) == ("failed", 1, 0)
    assert [e.element_key for e in run.state.stack] == ["c"]
    assert run.state.memory.node_outputs["c"] == {"status": "failed", "error": step.error, "type": "ExpressionError"}
    assert step.error_type == "ExpressionError"


def test_a_condition_that_is_not_a_bool_fails_the_element() -> None:
    run = start(definition({"key": "c", "type": "if-condition", "condition": "1 + 1", "then": "s"}, _set("s")))
    step = run.drive()
    assert isinstance(step, ElementFailed)
    assert "must give a bool" in step.error


def test_a_set_value_cel_cannot_store_fails_the_element_instead_of_breaking_the_checkpoint() -> None:
    # given a set-variable whose CEL gives a timestamp, which is not plain data
    run = start(definition(_set("now", "after", t="timestamp('2026-02-02T10:30:00Z')"), _set("after", x="1")))
    # when the thread reaches it
    step = run.drive()
    # then the element fails with a clear message, and nothing unstorable lands in memory
    assert isinstance(step, ElementFailed)
    assert "timestamp" in step.error
    assert "t" not in run.variables
    # a string made from the same timestamp is fine
    ok = start(definition(_set("now", t="string(timestamp('2026-02-02T10:30:00Z'))")))
    assert ok.drive() == ThreadEnded()
    assert ok.variables["t"] == "2026-02-02T10:30:00+00:00"


# --- task --------------------------------------------------------------------------------------


def test_a_task_begins_with_its_input_evaluated_and_stores_its_output(order_definition: ProcessDefinition) -> None:
    # given the example with an order id
    run = start(order_definition, {"order_id": "ORD-12345", "order_total": 599.99})
    # when the thread begins
    outcome = run.begin(now=1_000)
    # then the task is to run with its CEL-evaluated input, handler and timeout
    step = outcome.step
    assert isinstance(step, RunTask)
    assert (step.handler, step.input, step.timeout_ms) == ("echo", {"id": "ORD-12345"}, 30000)
    assert step.entry.attempt == 1
    assert [(e.event, e.at_ms, e.attempt) for e in outcome.events] == [("element-started", 1_000, 1)]
    assert run.state.stack[0].started_at_ms == 1_000
    # when the handler succeeds
    done = run.succeed({"id": "ORD-12345", "total": 599.99}, now=1_050)
    # then its output lands in variables[output] and node_outputs, and the thread moves on
    assert done.step == Progressed()
    assert run.variables["order"] == {"id": "ORD-12345", "total": 599.99}
    assert run.state.memory.node_outputs["fetch_order"] == {
        "status": "success",
        "data": {"id": "ORD-12345", "total": 599.99},
    }
    assert [(e.event, e.at_ms, e.started_at_ms) for e in done.events] == [("element-completed", 1_050, 1_000)]
    assert [e.element_key for e in run.state.stack] == ["verify"]
    assert run.state.threads["main"].completed_nodes == 1


def test_a_task_input_that_fails_to_evaluate_fails_the_element() -> None:
    run = start(definition(_task("t", input={"v": "nope.field"})))
    step = run.drive()
    assert isinstance(step, ElementFailed)
    assert run.trail() == [("element-failed", "t")]


def test_a_task_without_output_leaves_variables_alone() -> None:
    run = start(definition(_task("t")), {"a": 1})
    run.drive()
    run.succeed({"ignored": True})
    assert run.variables == {"a": 1}
    assert run.state.memory.node_outputs["t"]["data"] == {"ignored": True}


def test_a_failing_task_is_retried_with_backoff_then_fails_for_good() -> None:
    # given a task with 3 attempts, 100 ms backoff doubling each time
    run = start(
        definition(
            _task("t", "after", retry={"maxAttempts": 3, "backoffMs": 100, "backoffMultiplier": 2.0}),
            _set("after", x="1"),
        )
    )
    first = run.drive(now=0)
    assert isinstance(first, RunTask)
    assert first.entry.attempt == 1

    # when attempt 1 fails at t=10
    retry = run.fail("boom 1", now=10)
    # then it sleeps until t=110 and will run attempt 2; the event is of attempt 1, the one that ran, since t=0
    assert retry.step == Sleep(run.state.stack[0], 110)
    assert run.state.stack[0].attempt == 2
    assert [(e.event, e.error, e.retry_at_ms, e.attempt, e.started_at_ms) for e in retry.events] == [
        ("element-retry", "boom 1", 110, 1, 0)
    ]
    # and asking early only says to keep sleeping, with no events
    early = run.begin(now=109)
    assert early.step == Sleep(run.state.stack[0], 110)
    assert early.events == []

    # when the backoff is over, attempt 2 starts
    second = run.begin(now=110)
    assert isinstance(second.step, RunTask)
    assert second.step.entry.attempt == 2
    assert [(e.event, e.attempt, e.at_ms) for e in second.events] == [("element-started", 2, 110)]

    # when attempt 2 fails at t=120, the next backoff is 100 * 2 = 200 ms
    assert run.fail("boom 2", now=120).step == Sleep(run.state.stack[0], 320)
    assert run.begin(now=319).step == Sleep(run.state.stack[0], 320)
    third = run.begin(now=400)  # late wake-ups are fine
    assert isinstance(third.step, RunTask)
    assert third.step.entry.attempt == 3

    # when the last attempt fails, the element fails for good
    final = run.fail("boom 3", now=410)
    assert isinstance(final.step, ElementFailed)
    assert final.step.error == "boom 3"
    assert final.step.entry.attempt == 3
    assert [(e.event, e.attempt, e.error) for e in final.events] == [("element-failed", 3, "boom 3")]
    progress = run.state.threads["main"]
    assert (progress.status, progress.failed_nodes, progress.completed_nodes) == ("failed", 1, 0)
    # and its entry stays on the stack so that a retry can start from it
    assert [(e.element_key, e.attempt) for e in run.state.stack] == [("t", 3)]
    assert run.state.memory.node_outputs["t"] == {"status": "failed", "error": "boom 3", "type": "TaskFailed"}
    assert "after" not in run.state.memory.node_outputs


def test_a_task_with_the_default_policy_fails_on_its_first_error() -> None:
    run = start(definition(_task("t")))
    run.drive()
    outcome = run.fail("no")
    assert isinstance(outcome.step, ElementFailed)
    assert outcome.step.entry.attempt == 1


def test_backoff_is_capped_by_max_backoff() -> None:
    policy = {"maxAttempts": 5, "backoffMs": 1000, "backoffMultiplier": 10.0, "maxBackoffMs": 5000}
    run = start(definition(_task("t", retry=policy)))
    run.drive(now=0)
    assert run.fail("x", now=0).step == Sleep(run.state.stack[0], 1000)
    run.begin(now=1000)
    assert run.fail("x", now=1000).step == Sleep(run.state.stack[0], 6000)  # 10_000 capped to 5_000


def test_requeue_makes_a_cut_short_task_start_again_with_the_same_attempt() -> None:
    # given a task on its second attempt, in flight
    run = start(definition(_task("t", retry={"maxAttempts": 3, "backoffMs": 0})))
    run.drive(now=0)
    run.fail("first", now=1)
    in_flight = run.begin(now=1).step
    assert isinstance(in_flight, RunTask)
    assert in_flight.entry.attempt == 2
    # when a pause cuts it short and it is requeued
    run.interpreter.requeue(run.state, "main")
    # then the next begin starts it again, same attempt, with a fresh element-started
    again = run.begin(now=50)
    assert isinstance(again.step, RunTask)
    assert again.step.entry.attempt == 2
    assert [(e.event, e.attempt, e.at_ms) for e in again.events] == [("element-started", 2, 50)]
    assert run.state.stack[0].started_at_ms == 50


def test_requeue_leaves_other_element_types_alone() -> None:
    run = start(definition(_delay("d", 1000)))
    run.drive(now=0)
    run.interpreter.requeue(run.state, "main")
    assert run.state.stack[0].started_at_ms == 0
    assert run.begin(now=10).events == []  # no second element-started for the same delay


def test_task_results_for_a_thread_with_nothing_pending_are_refused() -> None:
    run = start(definition(_set("s", x="1")))
    run.drive()
    with pytest.raises(LookupError):
        run.succeed({})
    with pytest.raises(LookupError):
        run.fail("late")


# --- delay and timers --------------------------------------------------------------------------


def test_a_delay_sleeps_until_due_and_completes_at_or_after_due() -> None:
    # given a delay of 1000 ms
    run = start(definition(_delay("d", 1000, "s"), _set("s", x="1")))
    # when the thread begins at t=200
    first = run.begin(now=200)
    # then it sleeps until t=1200, having started once
    assert first.step == Sleep(run.state.stack[0], 1200)
    assert [e.event for e in first.events] == ["element-started"]
    # and a wake-up before due sleeps again, to the same deadline, with no events
    assert run.begin(now=1199).step == Sleep(run.state.stack[0], 1200)
    assert run.trail() == [("element-started", "d")]
    # when woken at due, it completes
    done = run.begin(now=1200)
    assert done.step == Progressed()
    assert [(e.event, e.started_at_ms) for e in done.events] == [("element-completed", 200)]
    assert run.state.memory.node_outputs["d"] == {"status": "success", "data": {"delayedMs": 1000}}
    assert [e.element_key for e in run.state.stack] == ["s"]


def test_a_zero_delay_completes_at_once() -> None:
    run = start(definition(_delay("d", 0)))
    assert run.drive(now=5) == ThreadEnded()


def test_freeze_and_thaw_keep_the_remaining_time_of_a_delay() -> None:
    # given a 1000 ms delay started at t=0
    run = start(definition(_delay("d", 1000)))
    assert run.begin(now=0).step == Sleep(run.state.stack[0], 1000)
    # when paused at t=400
    run.interpreter.freeze_timers(run.state, 400)
    entry = run.state.stack[0]
    assert (entry.due_at_ms, entry.remaining_ms) == (None, 600)
    # and resumed at t=10_000
    run.interpreter.thaw_timers(run.state, 10_000)
    # then it is due at 10_600, not before
    assert (entry.due_at_ms, entry.remaining_ms) == (10_600, None)
    assert run.begin(now=10_599).step == Sleep(entry, 10_600)
    assert run.begin(now=10_600).step == Progressed()
    assert run.trail() == [("element-started", "d"), ("element-completed", "d")]


def test_freezing_an_overdue_timer_keeps_zero_not_a_negative_time() -> None:
    run = start(definition(_delay("d", 100)))
    run.begin(now=0)
    run.interpreter.freeze_timers(run.state, 500)
    assert run.state.stack[0].remaining_ms == 0
    run.interpreter.thaw_timers(run.state, 900)
    assert run.begin(now=900).step == Progressed()


def test_freeze_and_thaw_keep_the_remaining_backoff_of_a_retry() -> None:
    # given a task whose first attempt failed at t=0, retry due at t=1000
    run = start(definition(_task("t", retry={"maxAttempts": 2, "backoffMs": 1000})))
    run.drive(now=0)
    run.fail("x", now=0)
    # when paused at t=250 and resumed at t=5000
    run.interpreter.freeze_timers(run.state, 250)
    run.interpreter.thaw_timers(run.state, 5000)
    # then the retry is due at 5750
    assert run.begin(now=5749).step == Sleep(run.state.stack[0], 5750)
    step = run.begin(now=5750).step
    assert isinstance(step, RunTask)
    assert step.entry.attempt == 2


def test_timers_not_yet_started_are_untouched_by_freeze_and_thaw() -> None:
    run = start(definition(_delay("d", 1000)))
    run.interpreter.freeze_timers(run.state, 400)
    run.interpreter.thaw_timers(run.state, 900)
    entry = run.state.stack[0]
    assert (entry.due_at_ms, entry.remaining_ms) == (None, None)
    assert run.begin(now=2000).step == Sleep(entry, 3000)


# --- wait-signal -------------------------------------------------------------------------------


def test_a_wait_with_no_signal_returns_await_signal_until_one_arrives() -> None:
    # given a thread at a wait
    run = start(definition(_wait("w", "approval", into="approval", next_="s"), _set("s", ok="approval.ok")))
    step = run.drive(now=0)
    assert isinstance(step, AwaitSignal)
    assert (step.signal, step.entry.element_key) == ("approval", "w")
    # and asking again changes nothing
    assert run.begin(now=5).step == AwaitSignal(run.state.stack[0], "approval")
    assert run.trail() == [("element-started", "w")]
    # when the signal arrives
    run.interpreter.signal_arrived(run.state, "approval", {"ok": True})
    # then the wait completes with the payload in `into` and the thread goes on
    assert run.drive(now=10) == ThreadEnded()
    assert run.variables == {"approval": {"ok": True}, "ok": True}
    assert run.state.memory.node_outputs["w"] == {"status": "success", "data": {"ok": True}}
    assert run.state.memory.signals == {}


def test_a_signal_delivered_before_the_wait_is_kept_and_consumed() -> None:
    # given a signal that arrives while the thread is still running a task
    run = start(definition(_task("t", "w"), _wait("w", "go", into="got")))
    assert isinstance(run.drive(), RunTask)
    run.interpreter.signal_arrived(run.state, "go", [1, 2, 3])
    assert run.state.memory.signals == {"go": [[1, 2, 3]]}
    # when the thread reaches the wait
    run.succeed(None)
    # then it does not wait: the kept signal is consumed
    assert run.drive() == ThreadEnded()
    assert run.variables["got"] == [1, 2, 3]
    assert run.state.memory.signals == {}


def test_two_buffered_signals_are_consumed_in_order() -> None:
    run = start(
        definition(
            _wait("w1", "s", into="first", next_="w2"),
            _wait("w2", "s", into="second", next_="w3"),
            _wait("w3", "s", into="third"),
        )
    )
    run.interpreter.signal_arrived(run.state, "s", "one")
    run.interpreter.signal_arrived(run.state, "s", "two")
    step = run.drive()
    assert isinstance(step, AwaitSignal)
    assert step.entry.element_key == "w3"
    assert (run.variables["first"], run.variables["second"]) == ("one", "two")
    assert "s" not in run.state.memory.signals


def test_a_signal_of_another_name_does_not_release_the_wait() -> None:
    run = start(definition(_wait("w", "approval")))
    run.interpreter.signal_arrived(run.state, "rejection", None)
    assert isinstance(run.drive(), AwaitSignal)
    assert run.state.memory.signals == {"rejection": [None]}


def test_a_null_payload_still_counts_as_a_signal() -> None:
    run = start(definition(_wait("w", "go", into="v")))
    run.interpreter.signal_arrived(run.state, "go", None)
    assert run.drive() == ThreadEnded()
    assert run.variables == {"v": None}


# --- threads -----------------------------------------------------------------------------------


def test_two_threads_progress_independently() -> None:
    # given a thread that sleeps and one that sets variables
    run = start(
        definition(
            slow=[_delay("nap", 1000, "woke"), _set("woke", woke="true")],
            fast=[_set("f1", "f2", a="1"), _set("f2", b="a + 1")],
        )
    )
    # then both start at once, each with its own stack entry
    assert [(e.thread_key, e.element_key) for e in run.state.stack] == [("slow", "nap"), ("fast", "f1")]
    assert [(t.thread_execution_id, t.process_thread_id) for t in run.state.threads.values()] == [(100, 1), (101, 2)]
    # when the slow one sleeps, the fast one runs to its end
    assert isinstance(run.drive("slow", now=0), Sleep)
    assert run.drive("fast", now=10) == ThreadEnded()
    assert run.state.threads["fast"].status == "completed"
    assert run.state.threads["slow"].status == "running"
    assert (run.state.threads["fast"].completed_nodes, run.state.threads["slow"].completed_nodes) == (2, 0)
    assert run.state.completed_nodes == 2
    # and the slow one then finishes on its own
    assert run.drive("slow", now=1000) == ThreadEnded()
    assert run.variables == {"a": 1, "b": 2, "woke": True}
    assert run.state.completed_nodes == 4
    assert run.trail("slow") == [
        ("element-started", "nap"),
        ("element-completed", "nap"),
        ("element-completed", "woke"),
    ]


def test_a_failure_in_one_thread_leaves_the_other_thread_running() -> None:
    run = start(definition(bad=[_set("boom", x="nope + 1")], good=[_delay("d", 10)]))
    assert isinstance(run.drive("bad"), ElementFailed)
    assert isinstance(run.drive("good"), Sleep)
    assert run.state.failed_nodes == 1
    assert (run.state.threads["bad"].status, run.state.threads["good"].status) == ("failed", "running")


# --- the contract's example, end to end ------------------------------------------------------


def test_the_contract_example_runs_end_to_end(order_definition: ProcessDefinition) -> None:
    run = start(order_definition, {"order_id": "ORD-12345", "order_total": 599.99})
    # fetch the order
    task = run.drive(now=0)
    assert isinstance(task, RunTask)
    run.succeed(task.input, now=5)
    # verify, premium, then wait for approval (approval came early)
    run.interpreter.signal_arrived(run.state, "approval", {"by": "ops"})
    cool = run.drive(now=10)
    assert cool == Sleep(run.state.stack[0], 1_010)
    # after the cool-off, done
    assert run.drive(now=1_010) == ThreadEnded()
    assert [key for event, key in run.trail() if event == "element-completed"] == [
        "fetch_order",
        "verify",
        "premium",
        "approve",
        "cool_off",
        "done",
    ]
    assert run.variables == {
        "order_id": "ORD-12345",
        "order_total": 599.99,
        "order": {"id": "ORD-12345"},
        "is_premium": True,
        "approval": {"by": "ops"},
    }
    progress = run.state.threads["main"]
    assert (progress.completed_nodes, progress.total_nodes, progress.status) == (6, 7, "completed")


def test_a_loop_counts_each_element_once_toward_progress() -> None:
    # given a counter loop that runs its body three times
    run = start(
        definition(
            _set("init", "body", n="0"),
            _set("body", "check", n="n + 1"),
            {"key": "check", "type": "if-condition", "condition": "n < 3", "then": "body", "else": "done"},
            {"key": "done", "type": "end"},
        )
    )
    assert run.drive() == ThreadEnded()
    assert run.variables["n"] == 3
    assert [key for event, key in run.trail() if event == "element-completed"].count("body") == 3
    # then progress never passes the number of elements (percentage stays <= 100)
    progress = run.state.threads["main"]
    assert progress.completed_nodes == progress.total_nodes == 4


def test_a_retry_whose_input_no_longer_evaluates_fails() -> None:
    # given a task whose input reads `order.id`, on its first attempt
    run = start(
        definition(_task("t", input={"id": "order.id"}, retry={"maxAttempts": 2, "backoffMs": 100})),
        {"order": {"id": 1}},
    )
    assert isinstance(run.drive(now=0), RunTask)
    run.fail("flaky", now=10)
    # when the variable changes before the retry (another thread could do this)
    run.variables["order"] = {}
    step = run.begin(now=110).step
    # then attempt 2 is recorded as failed as it started, like any element that fails on its input
    assert isinstance(step, ElementFailed)
    assert [(e.event, e.attempt) for e in run.events] == [
        ("element-started", 1),
        ("element-retry", 1),
        ("element-failed", 2),
    ]
