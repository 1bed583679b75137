"""The executions of a node that have a task in flight, kept as each task starts and ends.

The node's lease check (`Node.check_leases`, every heartbeat) asks Redis whether another node took any of them;
it used to find them by looking at every actor, which with 50,000 actors held the event loop for ~10 ms a
second whatever ran. This is O(tasks in flight) instead, counted per execution (an actor that is stopping and
its successor may both have one).
"""

from __future__ import annotations

__all__ = ["InFlight"]


class InFlight:
    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def began(self, execution_id: int) -> None:
        self._counts[execution_id] = self._counts.get(execution_id, 0) + 1

    def ended(self, execution_id: int) -> None:
        left = self._counts.get(execution_id, 0) - 1
        if left > 0:
            self._counts[execution_id] = left
        else:
            self._counts.pop(execution_id, None)

    def ids(self) -> list[int]:
        """The executions with at least one task in flight now."""
        return list(self._counts)

    def __len__(self) -> int:
        return len(self._counts)
