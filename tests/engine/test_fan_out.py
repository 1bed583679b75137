"""parallel and for-each in the pure interpreter: lanes per branch and iteration, variables of their own until the
join, at most maxConcurrency iterations at a time, a failed lane failing its fan-out (catchable), pause and
restart from the stack snapshot in the middle of a fan-out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from procengine.engine.outcomes import (
    AwaitLanes,
    ElementFailed,
    LaneEnded,
    Outcome,
    Progressed,
    RunTask,
    Sleep,
    ThreadEnded,
)
from procengine.engine.restart import reset, restorable, restore
from procengine.engine.state import state_from_docs
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed
from tests.support.interpreter import Run, definition, start

Handler = Callable[[dict[str, Any]], Any]


class Scheduler:
    """Drives every lane of a Run the way the actor does, one step at a time, tasks answered by `handler`
    (an exception it raises is the task's failure, typed by its class name)."""

    def __init__(self, run: Run, handler: Handler) -> None:
        self.run = run
        self.handler = handler
        self.ready: list[str] = [thread.key for thread in run.process.threads]
        self.waiting: set[str] = set()
        self.ended: list[str] = []
        self.failed: ElementFailed | None = None
        self.most_lanes = 0

    def apply(self, outcome: Outcome) -> None:
        self.ready.extend(outcome.started)
        for lane in outcome.woken:
            if lane in self.waiting:
                self.waiting.discard(lane)
                self.ready.append(lane)
        for lane in outcome.stopped:
            self.waiting.discard(lane)
            if lane in self.ready:
                self.ready.remove(lane)

    def step(self, lane: str) -> None:
        outcome = self.run.begin(lane)
        self.apply(outcome)
        step = outcome.step
        if isinstance(step, RunTask):
            interpreter, state = self.run.interpreter, self.run.state
            try:
                result = interpreter.task_succeeded(state, lane, self.handler(step.input), 0)
            except Exception as exc:  # the handler's failure is the task's
                result = interpreter.task_failed(state, lane, str(exc), 0, type(exc).__name__)
            self.run._keep(result)
            self.apply(result)
            step = result.step
        if isinstance(step, ElementFailed):
            self.failed = step
        elif isinstance(step, ThreadEnded | LaneEnded):
            self.ended.append(lane)
        elif isinstance(step, AwaitLanes):
            self.waiting.add(lane)
        else:
            assert isinstance(step, Progressed), step
            self.ready.append(lane)

    def run_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            lanes_now = {e.path for e in self.run.state.stack if "/" in e.path}
            self.most_lanes = max(self.most_lanes, len(lanes_now))
            if not self.ready or self.failed is not None:
                return
            self.step(self.ready.pop(0))
        raise AssertionError("never settled")


def _task(key: str, next_: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"key": key, "type": "task", "handler": "h", **({"next": next_} if next_ else {}), **fields}


SHIP_EACH = {
    "key": "ship",
    "type": "for-each",
    "items": "order.lines",
    "as": "line",
    "maxConcurrency": 3,
    "output": "shipments",
    "body": {"elements": [_task("label", input={"sku": "line.sku"}, output="parcel")]},
    "next": "invoice",
}
INVOICE = {"key": "invoice", "type": "set-variable", "set": {"count": "size(shipments)"}}


def test_a_for_each_runs_its_body_per_item_and_collects_results_in_item_order() -> None:
    lines = [{"sku": f"s{i}"} for i in range(10)]
    run = start(definition(SHIP_EACH, INVOICE), {"order": {"lines": lines}})
    scheduler = Scheduler(run, lambda task: {"for": task["sku"]})

    scheduler.run_all()

    assert scheduler.failed is None and run.state.stack == []
    assert run.variables["shipments"] == [{"parcel": {"for": f"s{i}"}} for i in range(10)]
    assert run.variables["count"] == 10
    assert "parcel" not in run.variables and "line" not in run.variables  # an iteration's variables are its own
    assert 1 < scheduler.most_lanes <= 3  # in parallel, never more than maxConcurrency
    assert run.state.memory.scopes == {} and run.state.memory.fanouts == {}
    assert run.state.threads["main"].completed_nodes == run.process.total_nodes  # each element counted once


def test_iterations_have_paths_below_the_thread_and_their_events_say_so() -> None:
    run = start(definition(SHIP_EACH, INVOICE), {"order": {"lines": [{"sku": "a"}, {"sku": "b"}]}})
    outcome = run.begin()
    assert isinstance(outcome.step, AwaitLanes)
    assert outcome.started == ["main/ship[0]", "main/ship[1]"]
    assert [(e.path, e.element_key) for e in run.state.stack] == [
        ("main", "ship"),
        ("main/ship[0]", "label"),
        ("main/ship[1]", "label"),
    ]
    doc = run.state.to_stack_doc("now")["execution_stack"]
    assert doc[0]["branches"] == {"total": 2, "started": 2, "ended": 0}
    assert [d["path"] for d in doc] == ["main", "main/ship[0]", "main/ship[1]"]
    assert all(d["thread_key"] == "main" for d in doc)  # the seed's fields are kept
    task = run.begin("main/ship[1]")
    assert isinstance(task.step, RunTask) and task.step.input == {"sku": "b"}
    assert task.events[0].path == "main/ship[1]"


def test_a_result_expression_picks_what_an_iteration_gives() -> None:
    each = {**SHIP_EACH, "result": "parcel.for + '!'"}
    run = start(definition(each, INVOICE), {"order": {"lines": [{"sku": "a"}, {"sku": "b"}]}})
    scheduler = Scheduler(run, lambda task: {"for": task["sku"]})
    scheduler.run_all()
    assert run.variables["shipments"] == ["a!", "b!"]


def test_an_empty_list_completes_the_for_each_at_once() -> None:
    run = start(definition(SHIP_EACH, INVOICE), {"order": {"lines": []}})
    assert isinstance(run.drive(), ThreadEnded)
    assert run.variables["shipments"] == [] and run.variables["count"] == 0


@pytest.mark.parametrize(
    ("items", "kind"),
    [("'not a list'", "ExpressionError"), ("missing.field", "ExpressionError"), ("[1, 2, 3]", "LimitExceeded")],
)
def test_items_that_are_no_list_or_too_many_fail_the_element(items: str, kind: str) -> None:
    run = start(definition({**SHIP_EACH, "items": items}, INVOICE))
    run.interpreter.max_items = 2
    step = run.drive()
    assert isinstance(step, ElementFailed) and step.error_type == kind


PARALLEL = {
    "key": "checks",
    "type": "parallel",
    "output": "checked",
    "branches": [
        {"key": "credit", "elements": [_task("score", input={"who": "'credit'"}, output="score")]},
        {
            "key": "stock",
            "start": "count",
            "elements": [
                {"key": "count", "type": "set-variable", "set": {"available": "7"}, "next": "reserve"},
                _task("reserve", input={"who": "'stock'", "n": "available"}, output="reserved"),
            ],
        },
    ],
    "next": "done",
}
DONE = {"key": "done", "type": "set-variable", "set": {"summary": "string(score) + '/' + string(reserved)"}}


def test_parallel_branches_run_their_own_lanes_and_merge_their_variables_at_the_join() -> None:
    run = start(definition(PARALLEL, DONE))
    scheduler = Scheduler(run, lambda task: task.get("n", 42))

    scheduler.run_all()

    assert scheduler.failed is None
    assert run.variables["score"] == 42 and run.variables["available"] == 7 and run.variables["reserved"] == 7
    assert run.variables["summary"] == "42/7"
    assert run.variables["checked"] == {"credit": {"score": 42}, "stock": {"available": 7, "reserved": 7}}
    assert {e.path for e in run.events if e.path} == {"main/checks[credit]", "main/checks[stock]"}


def test_a_branch_does_not_see_what_another_branch_writes_before_the_join() -> None:
    peek = {
        "key": "par",
        "type": "parallel",
        "branches": [
            {"key": "a", "elements": [{"key": "wa", "type": "set-variable", "set": {"x": "1"}}]},
            {"key": "b", "elements": [{"key": "wb", "type": "set-variable", "set": {"y": "x"}}]},
        ],
    }
    run = start(definition(peek), {"x": 0})
    scheduler = Scheduler(run, lambda task: None)
    scheduler.step("main")  # both branches are pushed
    scheduler.step("main/par[a]")  # a writes x ...
    scheduler.step("main/par[b]")  # ... and b still reads the thread's x
    assert run.state.memory.fanouts["main"]["results"] == {"a": {"x": 1}, "b": {"y": 0}}
    assert run.variables == {"x": 0}  # nothing of a branch reaches the thread before the join
    scheduler.run_all()
    assert run.variables == {"x": 1, "y": 0}


def test_a_failed_iteration_stops_the_others_and_fails_the_for_each() -> None:
    def handler(task: dict[str, Any]) -> Any:
        if task["sku"] == "s1":
            raise OutOfStock("no s1 left")
        return "ok"

    run = start(definition(SHIP_EACH, INVOICE), {"order": {"lines": [{"sku": f"s{i}"} for i in range(6)]}})
    scheduler = Scheduler(run, handler)
    scheduler.run_all()

    assert scheduler.failed is not None
    assert scheduler.failed.entry.element_key == "ship"
    assert scheduler.failed.error_type == "OutOfStock"
    assert scheduler.failed.error == "label in main/ship[1]: no s1 left"
    assert [e.path for e in run.state.stack] == ["main"]  # the other iterations left the stack
    # ... kept aside for a retry (issue 20): the lanes under way, their variables, the results so far
    fan = run.state.stack[0].fanout
    assert fan is not None and fan.parked is not None
    assert sorted(e.path for e in fan.parked) == sorted(run.state.memory.scopes)
    assert "main/ship[1]" in run.state.memory.scopes and "main" in run.state.memory.fanouts
    assert run.state.threads["main"].status == "failed"


class OutOfStock(Exception):
    pass


def test_a_catch_on_the_for_each_takes_the_failure_of_an_iteration() -> None:
    each = {**SHIP_EACH, "catch": [{"errors": ["OutOfStock"], "next": "sorry", "into": "why"}]}
    sorry = {"key": "sorry", "type": "set-variable", "set": {"apology": "why.error"}}

    def handler(task: dict[str, Any]) -> Any:
        raise OutOfStock(task["sku"])

    run = start(definition(each, INVOICE, sorry), {"order": {"lines": [{"sku": "a"}]}})
    scheduler = Scheduler(run, handler)
    scheduler.run_all()
    assert scheduler.failed is None
    assert run.variables["apology"] == "label in main/ship[0]: a"
    assert run.state.threads["main"].status == "completed"


def test_a_catch_inside_the_body_keeps_the_iteration_going() -> None:
    body = {
        "elements": [
            _task("label", input={"sku": "line.sku"}, output="parcel", catch=[{"errors": ["*"], "next": "skip"}]),
            {"key": "skip", "type": "set-variable", "set": {"parcel": "'skipped'"}},
        ]
    }
    each = {**SHIP_EACH, "body": body, "result": "parcel"}

    def handler(task: dict[str, Any]) -> Any:
        if task["sku"] == "b":
            raise OutOfStock("b")
        return task["sku"]

    run = start(definition(each, INVOICE), {"order": {"lines": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}})
    Scheduler(run, handler).run_all()
    assert run.variables["shipments"] == ["a", "skipped", "c"]


def test_nested_fan_outs_see_the_variables_of_every_enclosing_lane() -> None:
    inner = {
        "key": "inner",
        "type": "for-each",
        "items": "row",
        "as": "cell",
        "result": "cell * factor",
        "output": "cells",
        "body": {"elements": [{"key": "noop", "type": "set-variable", "set": {"seen": "cell"}}]},
    }
    outer = {
        "key": "outer",
        "type": "for-each",
        "items": "grid",
        "as": "row",
        "result": "cells",
        "output": "rows",
        "body": {"elements": [inner]},
    }
    run = start(definition(outer), {"grid": [[1, 2], [3]], "factor": 10})
    scheduler = Scheduler(run, lambda task: None)
    scheduler.run_all()
    assert run.variables["rows"] == [[10, 20], [30]]
    assert run.state.stack == []


def test_pause_in_the_middle_of_a_fan_out_is_a_snapshot_a_new_interpreter_goes_on_from() -> None:
    lines = [{"sku": f"s{i}"} for i in range(5)]
    run = start(definition(SHIP_EACH, INVOICE), {"order": {"lines": lines}})
    scheduler = Scheduler(run, lambda task: task["sku"])
    for _ in range(4):  # the fan-out opens, two iterations end
        scheduler.step(scheduler.ready.pop(0))
    stack_doc = run.state.to_stack_doc("t")
    memory_doc = run.state.to_memory_doc("t")
    assert stack_doc["execution_stack"][0]["branches"]["ended"] >= 1

    rebuilt = state_from_docs(stack_doc, memory_doc, run.state.threads)
    again = Run(run.process, run.interpreter, rebuilt)
    resumed = Scheduler(again, lambda task: task["sku"])
    resumed.ready = list(dict.fromkeys(e.path for e in rebuilt.stack))  # what the actor starts: one runner per lane
    resumed.run_all()
    assert again.variables["shipments"] == [{"parcel": f"s{i}"} for i in range(5)]


def test_timers_in_lanes_freeze_and_thaw_with_the_rest() -> None:
    each = {
        **SHIP_EACH,
        "body": {"elements": [{"key": "wait", "type": "delay", "durationMs": 1000}]},
    }
    run = start(definition(each, INVOICE), {"order": {"lines": [1, 2]}})
    run.begin(now=0)
    assert isinstance(run.begin("main/ship[0]", now=0).step, Sleep)
    run.interpreter.freeze_timers(run.state, 400)
    assert run.state.entry("main/ship[0]").remaining_ms == 600  # type: ignore[union-attr]
    run.interpreter.thaw_timers(run.state, 10_000)
    assert run.state.entry("main/ship[0]").due_at_ms == 10_600  # type: ignore[union-attr]


def _problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document)
    return list(caught.value.details or [])


def test_branches_that_write_one_variable_are_refused_at_registration() -> None:
    clash = {
        "key": "par",
        "type": "parallel",
        "branches": [
            {"key": "a", "elements": [{"key": "wa", "type": "set-variable", "set": {"x": "1"}}]},
            {"key": "b", "elements": [_task("tb", output="x")]},
        ],
    }
    problems = _problems({"key": "p", "threads": [{"key": "main", "elements": [clash]}]})
    assert problems == [
        "element 'par': branches 'a' and 'b' both write 'x'; the join merges each branch's variables, so give them "
        "different names"
    ]


def test_every_problem_of_nested_bodies_is_listed_at_once() -> None:
    bad = {
        "key": "par",
        "type": "parallel",
        "branches": [
            {"key": "a", "elements": [{"key": "wa", "type": "set-variable", "set": {"x": "1 +"}, "next": "nowhere"}]},
            {
                "key": "b",
                "elements": [
                    {"key": "spin", "type": "set-variable", "set": {"y": "1"}, "next": "spin2"},
                    {"key": "spin2", "type": "set-variable", "set": {"z": "1"}, "next": "spin"},
                ],
            },
        ],
        "next": "outside",
    }
    problems = _problems({"key": "p", "threads": [{"key": "main", "elements": [bad]}]})
    assert "threads.0 (main): element 'par' points to missing element 'outside'" in problems
    assert "threads.0 (main) > par[a]: element 'wa' points to missing element 'nowhere'" in problems
    assert "threads.0 (main) > par[b]: element 'spin' is in a cycle with no way out" in problems
    assert any(p.startswith("element 'wa': bad CEL '1 +'") for p in problems)


def test_a_branch_cannot_jump_to_an_element_outside_it() -> None:
    out = {
        "key": "par",
        "type": "parallel",
        "branches": [
            {"key": "a", "elements": [{"key": "wa", "type": "set-variable", "set": {"x": "1"}, "next": "after"}]}
        ],
        "next": "after",
    }
    after = {"key": "after", "type": "end"}
    problems = _problems({"key": "p", "threads": [{"key": "main", "elements": [out, after]}]})
    assert problems == ["threads.0 (main) > par[a]: element 'wa' points to missing element 'after'"]


def test_fan_outs_nested_over_the_limit_are_refused() -> None:
    body: dict[str, Any] = {"elements": [{"key": "leaf", "type": "end"}]}
    for depth in range(4):
        body = {"elements": [{"key": f"f{depth}", "type": "for-each", "items": "[]", "body": body}]}
    problems = _problems({"key": "p", "threads": [{"key": "main", "elements": body["elements"]}]})
    assert problems == ["element 'f0': parallel and for-each nest 4 deep; at most 3"]


def test_duplicate_keys_across_bodies_are_refused() -> None:
    each = {**SHIP_EACH, "body": {"elements": [{"key": "invoice", "type": "end"}]}}
    problems = _problems({"key": "p", "threads": [{"key": "main", "elements": [each, INVOICE]}]})
    assert any("duplicate element key 'invoice'" in p for p in problems)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("maxConcurrency", 0, "maxConcurrency: Input should be greater than 0"),
        ("maxConcurrency", 1001, "maxConcurrency: Input should be less than or equal to 1000"),
        ("maxConcurrency", True, "maxConcurrency: Input should be a valid integer"),
        ("items", "", "items: String should have at least 1 character"),
    ],
)
def test_bad_for_each_fields_are_named(field: str, value: Any, problem: str) -> None:
    problems = _problems({"key": "p", "threads": [{"key": "main", "elements": [{**SHIP_EACH, field: value}, INVOICE]}]})
    assert f"threads.0.elements.0.{problem}" in problems


def test_an_element_caught_in_one_iteration_and_completed_in_others_counts_once() -> None:
    body = {
        "elements": [
            _task("label", input={"sku": "line.sku"}, output="parcel", catch=[{"errors": ["*"], "next": "skip"}]),
            {"key": "skip", "type": "set-variable", "set": {"parcel": "'skipped'"}},
        ]
    }
    each = {**SHIP_EACH, "body": body, "result": "parcel", "maxConcurrency": 1}

    def handler(task: dict[str, Any]) -> Any:
        if task["sku"] == "b":
            raise OutOfStock("b")
        return task["sku"]

    run = start(definition(each, INVOICE), {"order": {"lines": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}})
    Scheduler(run, handler).run_all()
    progress = run.state.threads["main"]
    assert progress.completed_nodes == run.process.total_nodes == 4  # label, skip, ship, invoice: each once
    assert run.state.memory.node_outputs["label"]["status"] == "success"


def test_a_retry_restores_nested_fan_outs_from_the_lane_that_failed() -> None:
    """Issue 20: a failure inside a parallel inside a for-each keeps every lane (through a round trip of the stored
    documents); restoring goes on from the failed task, and nothing that had ended runs again."""
    branches = [
        {"key": br, "elements": [_task(f"t{br}", input={"i": "item", "br": f"'{br}'"}, output=f"out{br}")]}
        for br in ("a", "b")
    ]
    nested = {
        "key": "each",
        "type": "for-each",
        "items": "[0, 1, 2]",
        "maxConcurrency": 3,
        "output": "all",
        "body": {"elements": [{"key": "both", "type": "parallel", "branches": branches}]},
    }
    calls: dict[tuple[int, str], int] = {}
    broken = {"value": True}

    def handler(task: dict[str, Any]) -> Any:
        calls[(task["i"], task["br"])] = calls.get((task["i"], task["br"]), 0) + 1
        if task["i"] == 1 and task["br"] == "b" and broken["value"]:
            raise OutOfStock("b of 1")
        return task["br"]

    run = start(definition(nested), {})
    scheduler = Scheduler(run, handler)
    scheduler.run_all()
    assert scheduler.failed is not None and scheduler.failed.entry.element_key == "each"

    stored = state_from_docs(run.state.to_stack_doc(""), run.state.to_memory_doc(""), run.state.threads)
    [outer] = stored.stack
    assert restorable(outer)
    restored = restore(stored, outer)
    assert [e.element_key for e in restored.failed] == ["tb"]
    assert [e.element_key for e in restored.fanouts] == ["each", "both"]
    for entry in restored.failed:
        reset(stored, entry)
    stored.threads["main"].status = "running"
    run.state = stored
    broken["value"] = False
    again = Scheduler(run, handler)
    again.ready = [entry.path for entry in stored.stack]
    again.run_all()

    assert again.failed is None and run.state.stack == []
    assert calls == {(i, br): 2 if (i, br) == (1, "b") else 1 for i in range(3) for br in ("a", "b")}
    assert run.variables["all"] == [{"outa": "a", "outb": "b"}] * 3
