"""A clock a test moves forward: the system clock plus what the test added. What the engine times by its clock
(a pause's duration, a paused timer's remaining time, a start's rate window) then moves without a real wait; what
runs on the event loop's timers or on Redis's own clock (TTLs, leases) still takes real time."""

from __future__ import annotations

import time


class ShiftedClock:
    """`procengine.runtime.clock.Clock`: the system's time, `ahead_ms` later."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.ahead_ms

    def advance(self, ms: int) -> None:
        """As if `ms` milliseconds had passed, at once."""
        self.ahead_ms += ms
