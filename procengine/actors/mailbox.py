"""A bounded, closable mailbox with statistics (after anyio's memory object streams)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from procengine.errors import MailboxClosed, MailboxFull

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    queued: int
    capacity: int
    delivered: int
    closed: bool


class Mailbox(Generic[T]):
    """Read by one task (its actor): a waiting `get` is one future, made when it waits, not an `asyncio.Event` kept
    for the mailbox's life (a parked execution holds fewer objects for the garbage collector to walk)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._delivered = 0

    def put(self, item: T) -> None:
        """Enqueue from outside: refused when full or closed."""
        if self._closed:
            raise MailboxClosed()
        if len(self._items) >= self._capacity:
            raise MailboxFull()
        self._push(item)

    def put_internal(self, item: T) -> None:
        """Enqueue from the actor's own tasks: never refused for size, so progress is never lost."""
        self._push(item)

    def _push(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("a mailbox has one reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._delivered += 1
        return self._items.popleft()

    def get_nowait(self) -> T | None:
        if not self._items:
            return None
        self._delivered += 1
        return self._items.popleft()

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(len(self._items), self._capacity, self._delivered, self._closed)
