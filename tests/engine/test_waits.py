"""What each lane waits for, read from the stack alone (engine/waits.py): the pure half of the status's blockedOn."""

from __future__ import annotations

from procengine.engine.compiled import compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.state import FanOutProgress, StackEntry
from procengine.engine.waits import lane_waits, signal_names
from tests.support.processes import definition

PROCESS = compile_process(
    ProcessDefinition.model_validate(
        definition(
            {
                "key": "charge",
                "type": "task",
                "handler": "h",
                "retry": {"maxAttempts": 3, "backoffMs": 1000},
                "next": "nap",
            },
            {"key": "nap", "type": "delay", "durationMs": 5000, "next": "go"},
            {
                "key": "go",
                "type": "wait-signal",
                "signal": "go",
                "timeoutMs": 9000,
                "onTimeout": "call",
                "next": "call",
            },
            {"key": "call", "type": "call-process", "process": "other", "next": "fan"},
            {
                "key": "fan",
                "type": "for-each",
                "items": "[1]",
                "as": "n",
                "body": {"elements": [{"key": "inner", "type": "wait-signal", "signal": "deep"}]},
            },
        )
    )
)


def _entry(key: str, kind: str, lane: str = "main", **fields: object) -> StackEntry:
    return StackEntry(PROCESS.element_ids[key], key, kind, 1, "main", path=lane, **fields)  # type: ignore[arg-type]


def test_each_kind_of_wait_from_its_stack_entry() -> None:
    stack = [
        _entry("charge", "task", "main", attempt=2, due_at_ms=10_000),
        _entry("charge", "task", "t2", started_at_ms=50),
        _entry("nap", "delay", "t3", started_at_ms=100, due_at_ms=5100),
        _entry("go", "wait-signal", "t4", started_at_ms=200, remaining_ms=700),
        _entry("call", "call-process", "t5", started_at_ms=300, child_id=42),
        _entry("nap", "delay", "t6"),  # not started yet: ready
    ]
    found = [(w.lane, w.kind, w.since_ms, w.until_ms, w.remaining_ms) for w in lane_waits(PROCESS, stack)]
    assert found == [
        ("main", "backoff", 9_000, 10_000, None),  # since: the retry time less the delay before attempt 2
        ("t2", "task", 50, None, None),
        ("t3", "delay", 100, 5100, None),
        ("t4", "signal", 200, None, 700),  # frozen by a pause: what is left
        ("t5", "child", 300, None, None),
        ("t6", "ready", None, None, None),
    ]
    assert lane_waits(PROCESS, stack)[3].signal == "go" and lane_waits(PROCESS, stack)[4].child_id == 42


def test_a_fan_out_with_open_lanes_is_left_to_its_lanes() -> None:
    stack = [
        _entry("fan", "for-each", fanout=FanOutProgress(total=1, started=1)),
        _entry("inner", "wait-signal", "main/fan[0]", started_at_ms=1),
    ]
    assert [(w.lane, w.kind, w.signal) for w in lane_waits(PROCESS, stack)] == [("main/fan[0]", "signal", "deep")]


def test_the_signals_a_definition_can_take_include_those_of_bodies_and_branches() -> None:
    assert signal_names(PROCESS) == ["deep", "go"]


def test_a_policy_changed_for_this_run_is_the_one_a_backoff_and_a_task_are_read_with() -> None:
    """`PATCH …/elements/{elementKey}` keeps a retry policy and timeout on the entry: blockedOn reads those."""
    policy = {"retry": {"maxAttempts": 5, "backoffMs": 4000}, "timeoutMs": 700}
    stack = [
        _entry("charge", "task", "main", attempt=2, due_at_ms=10_000, policy=policy),
        _entry("charge", "task", "t2", started_at_ms=50, policy=policy),
    ]
    found = [(w.lane, w.kind, w.since_ms, w.until_ms) for w in lane_waits(PROCESS, stack)]
    assert found == [("main", "backoff", 6_000, 10_000), ("t2", "task", 50, 750)]
