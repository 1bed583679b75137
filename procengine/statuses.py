"""The execution status table (seed: Process_ExecutionStatuses)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def id(self) -> int:
        return _IDS[self]

    @property
    def is_final(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    @property
    def is_success(self) -> bool:
        return self is Status.COMPLETED

    @property
    def is_active(self) -> bool:
        return not self.is_final


_IDS = {
    Status.RUNNING: 1,
    Status.PAUSED: 2,
    Status.COMPLETED: 3,
    Status.FAILED: 4,
    Status.CANCELLED: 5,
}

FINAL_STATUSES = frozenset(status.value for status in Status if status.is_final)
"""The final statuses as stored (a status read from Redis is tested against this before it is trusted)."""
