"""The migration plan (engine/migration.py), pure: each stack entry's target, and every problem listed at once."""

from __future__ import annotations

from typing import Any

from procengine.engine.compiled import CompiledProcess, compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.migration import apply_plan, plan_migration, variables_read
from procengine.engine.state import ExecutionState, FanOutProgress, Memory, StackEntry, ThreadProgress


def _process(*threads: dict[str, Any]) -> CompiledProcess:
    return compile_process(ProcessDefinition.model_validate({"key": "p", "threads": list(threads)}))


def _entry(process: CompiledProcess, key: str, lane: str, **more: Any) -> StackEntry:
    element = process.elements[key]
    thread = lane.split("/", 1)[0]
    return StackEntry(process.element_ids[key], key, element.type, 1, thread, path=lane, **more)


def _state(
    process: CompiledProcess, entries: list[StackEntry], variables: dict[str, Any] | None = None
) -> ExecutionState:
    threads = {
        t.key: ThreadProgress(t.key, i + 1, t.process_thread_id, t.total_nodes) for i, t in enumerate(process.threads)
    }
    return ExecutionState(stack=entries, memory=Memory(variables=dict(variables or {})), threads=threads)


PARALLEL = {
    "key": "checks",
    "type": "parallel",
    "branches": [
        {"key": "credit", "elements": [{"key": "c", "type": "wait-signal", "signal": "credit"}]},
        {"key": "stock", "elements": [{"key": "s", "type": "wait-signal", "signal": "stock"}]},
    ],
    "next": "ship",
}
FOR_EACH = {
    "key": "ship",
    "type": "for-each",
    "items": "orders",
    "body": {"elements": [{"key": "pack", "type": "task", "handler": "echo", "input": {"x": "item"}}]},
}
ALONE = {k: v for k, v in PARALLEL.items() if k != "next"}
OLD = _process({"key": "main", "elements": [PARALLEL, FOR_EACH]})


def test_identical_keys_map_and_the_plan_covers_every_lane() -> None:
    state = _state(
        OLD,
        [
            _entry(OLD, "checks", "main", fanout=FanOutProgress(2, 2)),
            _entry(OLD, "c", "main/checks[credit]"),
            _entry(OLD, "s", "main/checks[stock]"),
        ],
    )
    intro = {"key": "intro", "type": "set-variable", "set": {"a": "1"}, "next": "checks"}
    new = _process({"key": "main", "elements": [intro, PARALLEL, FOR_EACH]})

    plan = plan_migration(state, OLD, new)

    assert plan.problems == []
    assert plan.to_docs() == [
        {"lane": "main", "from": "checks", "to": "checks", "type": "parallel"},
        {"lane": "main/checks[credit]", "from": "c", "to": "c", "type": "wait-signal"},
        {"lane": "main/checks[stock]", "from": "s", "to": "s", "type": "wait-signal"},
    ]
    apply_plan(state, new, plan)
    assert [(e.element_key, e.element_id) for e in state.stack] == [
        ("checks", new.element_ids["checks"]),
        ("c", new.element_ids["c"]),
        ("s", new.element_ids["s"]),
    ]
    assert state.threads["main"].total_nodes == new.thread("main").total_nodes


def test_every_kind_of_problem_is_listed_at_once() -> None:
    old = _process({"key": "main", "elements": [ALONE]}, {"key": "side", "elements": [FOR_EACH]})
    parked = _entry(old, "pack", "side/ship[0]")
    state = _state(
        old,
        [
            _entry(old, "checks", "main", fanout=FanOutProgress(2, 2)),
            _entry(old, "c", "main/checks[credit]"),
            _entry(old, "s", "main/checks[stock]"),
            _entry(old, "ship", "side", fanout=FanOutProgress(1, 1, failure={"error": "x"}, parked=[parked])),
        ],
    )
    new = _process(
        {
            "key": "main",
            "elements": [
                {
                    "key": "checks",
                    "type": "parallel",
                    "branches": [
                        {"key": "credit", "elements": [{"key": "c", "type": "wait-signal", "signal": "other"}]},
                        {"key": "fraud", "elements": [{"key": "f", "type": "task", "handler": "echo"}]},
                    ],
                    "next": "s",
                },
                {"key": "s", "type": "task", "handler": "echo", "input": {"x": "nowhere"}},
            ],
        },
        {"key": "extra", "elements": [{"key": "e", "type": "end"}]},
    )

    plan = plan_migration(state, old, new, {"ghost": "c", "pack": "missing"}, breakpoints=("s", "gone"))

    assert plan.problems == [
        "mapping: 'ghost' names no element of process 'p'",
        "mapping: 'pack' -> 'missing': process 'p' has no element 'missing'",
        "thread 'side': process 'p' has no thread 'side'",
        "thread 'extra' of process 'p' is not in process 'p': it would never start",
        "lane 'main': parallel 'checks': its branches ['credit', 'stock'] are under way; 'checks' has branches "
        "['credit', 'fraud'] in process 'p'",
        "lane 'main/checks[credit]': wait-signal 'c': 'c' waits for signal 'other', not 'credit' (the signal it waits "
        "for stays)",
        "lane 'main/checks[stock]': wait-signal 's': 's' is a task in process 'p'; only an element of the same type "
        "can take its place",
        "lane 'side': for-each 'ship': process 'p' has no element 'ship'; map it to one (mapping: {'ship': ...})",
        "breakpoint before 'gone': process 'p' has no element 'gone' (change the breakpoints)",
    ]
    assert [(s.lane, s.parked) for s in plan.steps][-1] == ("side/ship[0]", True)


def test_a_target_must_stand_where_the_lane_runs_and_read_what_memory_holds() -> None:
    old = _process(
        {
            "key": "main",
            "elements": [{**FOR_EACH, "next": "after"}, {"key": "after", "type": "task", "handler": "echo"}],
        }
    )
    state = _state(old, [_entry(old, "after", "main")], {"orders": [1]})
    new = _process(
        {
            "key": "main",
            "elements": [
                {
                    **FOR_EACH,
                    "body": {"elements": [{"key": "after", "type": "task", "handler": "echo"}]},
                    "next": "later",
                },
                {
                    "key": "later",
                    "type": "task",
                    "handler": "echo",
                    "input": {"x": "size(orders) + total", "y": "[1].map(v, v)"},
                },
            ],
        }
    )

    plan = plan_migration(state, old, new, {"after": "later"})
    assert plan.problems == [
        "lane 'main': task 'after': 'later' reads variable 'total', which the execution does not hold"
    ]
    placed = plan_migration(state, old, new)
    assert placed.problems == [
        "lane 'main': task 'after': 'after' must stand at the top of thread 'main' in process 'p'"
    ]


def test_a_fan_out_with_lanes_under_way_keeps_its_key() -> None:
    state = _state(OLD, [_entry(OLD, "checks", "main", fanout=FanOutProgress(2, 2))])
    renamed = {**PARALLEL, "key": "verify"}
    new = _process({"key": "main", "elements": [renamed, FOR_EACH]})

    plan = plan_migration(state, OLD, new, {"checks": "verify"})

    assert plan.problems == [
        "lane 'main': parallel 'checks': its lanes are under way and their paths name it; it cannot be renamed to "
        "'verify'"
    ]


def test_the_variables_an_expression_reads() -> None:
    assert variables_read("size(orders) > 0 && customer.tier == 'gold'") == {"orders", "customer"}
    assert variables_read("items.map(x, x * rate)") == {"items", "rate"}
    assert variables_read("has(a.b) || true || null == c") == {"a", "c"}
