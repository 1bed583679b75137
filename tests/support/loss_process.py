"""The process the Redis loss and outage tests run (the chaos run's before issue 17, which now uses a handler
of its own that records side effects): built-in handlers only, and the check that no element completed more
often than it can have run."""

from __future__ import annotations

from collections import Counter
from typing import Any

LOOP = ("work", "nap", "count", "more")


def loss_definition(rounds: int) -> dict[str, Any]:
    """A loop of a task, a delay and a counter (`rounds` times), then a wait for the signal `go` and a last task;
    beside it a thread with a delay and a task. Every element but the loop's completes once."""
    return {
        "key": "chaos",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "work", "type": "task", "handler": "sleep", "input": {"ms": "50"}, "next": "nap"},
                    {"key": "nap", "type": "delay", "durationMs": 100, "next": "count"},
                    {"key": "count", "type": "set-variable", "set": {"n": "n + 1"}, "next": "more"},
                    {"key": "more", "type": "if-condition", "condition": f"n < {rounds}", "then": "work", "else": "go"},
                    {"key": "go", "type": "wait-signal", "signal": "go", "into": "got", "next": "last"},
                    {"key": "last", "type": "task", "handler": "echo", "input": {"n": "n"}, "next": "done"},
                    {"key": "done", "type": "end"},
                ],
            },
            {
                "key": "side",
                "elements": [
                    {"key": "side_nap", "type": "delay", "durationMs": 300, "next": "side_work"},
                    {"key": "side_work", "type": "task", "handler": "sleep", "input": {"ms": "80"}, "next": "side_end"},
                    {"key": "side_end", "type": "end"},
                ],
            },
        ],
    }  # fmt: skip


def completed_twice(execution_id: int, log: list[dict[str, Any]], rounds: int, outcome: str) -> list[str]:
    """Elements that completed more often than they can have run: the loop's at most `rounds` times (exactly, once
    the execution completed), every other element at most once."""
    done = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
    problems = []
    for key, times in done.items():
        most = rounds if key in LOOP else 1
        if times > most:
            problems.append(f"{execution_id}: {key} completed {times} times (at most {most})")
    if outcome == "completed" and done["count"] != rounds:
        problems.append(f"{execution_id}: the loop's counter completed {done['count']} times, not {rounds}")
    return problems
