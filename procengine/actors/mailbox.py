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
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
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
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
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
