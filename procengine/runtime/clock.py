"""Time: one injectable clock, and the one ISO-8601 format the API and the store use."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in epoch milliseconds (durable timers, timestamps)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


_LATEST_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest time ISO-8601 (and Python's datetime) can write."""
_EARLIEST_MS = -30_610_224_000_000
"""1000-01-01T00:00:00.000Z (strftime writes earlier years with fewer than four digits)."""


@lru_cache(maxsize=4096)
def iso(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with a `Z`, millisecond precision; a time past what it can write (a timer
    due in the year 11533 from a huge timeout) is written as the latest (or earliest) it can."""
    ms = min(max(ms, _EARLIEST_MS), _LATEST_MS)
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@lru_cache(maxsize=4096)
def parse_iso(text: str) -> int:
    """The inverse of `iso`."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
