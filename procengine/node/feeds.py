"""Event feeds: an execution's log entries and a tenant's status changes, read from their Redis streams with
blocking reads, as the front door's server-sent events need them.

A node serves at most `max_event_streams` feeds at once. Each feed holds its slot from the moment it is opened
(so that a 503 can be answered before a stream starts) until it is closed, whether or not it was ever read:
`Feed.aclose` gives the slot back exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from procengine.api.feeds import Feed
from procengine.api.views import LogEntry, StatusEvent
from procengine.errors import Unavailable
from procengine.statuses import FINAL_STATUSES, Status
from procengine.store.executions import ExecutionStore

__all__ = ["Feed", "Feeds"]

T = TypeVar("T")
_FINAL_EVENTS = frozenset(status.value for status in Status if status.is_final)
"""The log events of the transitions that end an execution (completed, failed, cancelled)."""


class Feeds:
    def __init__(self, store: ExecutionStore, limit: int, block_ms: int, draining: Callable[[], bool]) -> None:
        self.store = store
        self.limit = limit
        self.block_ms = block_ms
        """How long one blocking read waits: under the Redis socket timeout, which would end it."""
        self.draining = draining
        self.open = 0

    def log(self, execution_id: int, after: str) -> Feed[list[LogEntry] | None]:
        """The log entries after `after`, as they are written; ends after the final transition."""
        return self._feed(self._log(execution_id, after))

    def status(self, tenant: str, after: str) -> Feed[list[StatusEvent] | None]:
        """The tenant's status changes after `after`, as they happen; does not end."""
        return self._feed(self._status(tenant, after))

    def _feed(self, items: AsyncIterator[T]) -> Feed[T]:
        if self.open >= self.limit:
            raise Unavailable(
                f"this node serves {self.open} event streams, its most (--max-event-streams); try another node or later"
            )
        self.open += 1
        return Feed(items, self._release)

    def _release(self) -> None:
        self.open -= 1

    async def _log(self, execution_id: int, after: str) -> AsyncIterator[list[LogEntry] | None]:
        while True:
            entries = await self.store.log_after(execution_id, after, count=100, block_ms=self.block_ms)
            if self.draining():  # the node is shutting down: the client reconnects elsewhere with its last id
                return
            if not entries:
                fields = await self.store.fields(execution_id)
                if not fields or fields.get("status") in FINAL_STATUSES:  # its final entry came in the same write
                    return
                yield None
                continue
            after = entries[-1][0]
            yield [LogEntry(id=entry_id, **doc) for entry_id, doc in entries]
            if any(doc["event"] in _FINAL_EVENTS for _, doc in entries):
                return

    async def _status(self, tenant: str, after: str) -> AsyncIterator[list[StatusEvent] | None]:
        while True:
            found = await self.store.status_events_after(tenant, after, count=100, block_ms=self.block_ms)
            if self.draining():
                return
            if not found:
                yield None
                continue
            after = found[-1][0]
            yield [StatusEvent(id=event_id, **doc) for event_id, doc in found]
