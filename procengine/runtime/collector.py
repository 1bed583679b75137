"""Python's cyclic garbage collector, set for a node that holds many live executions.

Each live execution keeps a few dozen container objects (its state, records, the tasks and futures its lanes
wait on: 70 in a parked one, tests/actors/test_actor_garbage.py). With Python's default thresholds (700, 10, 10)
a node that starts executions at a few thousand a second runs a full (oldest generation) collection every second
or so, and a full collection walks every object the node holds: at 20,000 parked executions one took up to 1.7 s
of the event loop, which every request waited behind, and full collections were 60-70% of a start's CPU (issue
21, bench --only starts and --only flat, py-spy, gc.callbacks). THRESHOLDS make the young collections rarer and
the full ones much rarer. `procengine_gc_pause_seconds` shows what the collector still takes.

What rare full collections could cost is memory: garbage in reference cycles waits for one. An actor leaves none
(it holds no cycle through itself: actors/actor.py `StateBox`), so a passivated or ended execution is freed by
reference counting at once, and THRESHOLDS are `serve`'s default: engine RSS per 10,000 paused and passivated
executions 7.07 MiB with them, 6.9 with Python's (bench --only memory), where before the actors were made
cycle-free it grew 35-46 MiB with them. PROCENGINE_GC_THRESHOLDS=default keeps Python's own.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

THRESHOLDS = (20_000, 20, 20)
"""`serve`'s default: a young collection every 20,000 net allocations (not 700), an oldest-generation one after
20 x 20 of those (still subject to CPython's own rule that it waits until a quarter of the long-lived objects
are new)."""


def parse_thresholds(text: str) -> tuple[int, int, int] | None:
    """`PROCENGINE_GC_THRESHOLDS`: "default" keeps Python's own; else three positive integers, "20000,20,20"."""
    if text.strip().lower() == "default":
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"gc thresholds: 'default' or three positive integers such as 20000,20,20, not {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def set_thresholds(thresholds: tuple[int, int, int] | None) -> None:
    """Process-wide: called once by `serve`, not by a node (tests run many nodes in one process)."""
    if thresholds is not None:
        gc.set_threshold(*thresholds)


def observe_pauses(observe: Callable[[int, float], None]) -> Callable[[], None]:
    """Call `observe(generation, seconds)` after every collection; returns what stops it (the node's exit)."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            observe(int(info.get("generation", 0)), time.perf_counter() - started.pop())

    gc.callbacks.append(callback)

    def stop() -> None:
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)

    return stop
