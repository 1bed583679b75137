"""Python's cyclic garbage collector, set for a node that holds many live executions.

Each live execution keeps a few hundred container objects (its state, records, parked futures). With Python's
default thresholds (700, 10, 10) a node that starts executions at a few thousand a second runs a full (oldest
generation) collection every second or so, and a full collection walks every object the node holds: at 20,000
parked executions one took up to 1.7 s of the event loop, which every request waited behind (issue 21, bench
--only starts and --only flat, py-spy). Higher thresholds make the young collections rarer and the full ones
much rarer; the memory they let wait is bounded (cyclic garbage only: reference counting still frees the rest at
once). `procengine_gc_pause_seconds` shows what the collector still takes.

The price, measured (bench --only memory): a passivated execution leaves cyclic garbage that only a full
collection frees, so with THRESHOLDS a node's RSS grew 46 MiB per 10,000 passivated executions instead of 7.3 MiB.
So `serve` keeps Python's thresholds unless PROCENGINE_GC_THRESHOLDS says otherwise: a node that starts many
executions and passivates few chooses THRESHOLDS (batch starts 3,093/s instead of 1,511/s on 2 cores).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

THRESHOLDS = (20_000, 20, 20)
"""The starts-heavy choice: a young collection every 20,000 net allocations (not 700), an oldest-generation one after
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
