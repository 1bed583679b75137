"""`EventStream`: what `AsyncClient.events` and `status_events` give, an async iterator that can also be
entered, to be sure the stream is open before acting.

    async with client.status_events() as changes:   # connected once this line is done
        await client.start("approval")               # so its `running` is not missed
        async for change in changes: ...

`async for` alone works too (it connects at the first item). Leaving early closes the connection when the
block ends, or at `aclose()`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

__all__ = ["OPENED", "EventStream", "Opened"]

T = TypeVar("T")


class Opened:
    """What the stream's generator gives when a connection is open (before any event): never shown to
    the stream's reader, only used by `__aenter__` to wait for it."""


OPENED: Final = Opened()


class EventStream(Generic[T]):
    def __init__(self, items: AsyncGenerator[T | Opened, None]) -> None:
        self._items = items
        self._waiting: list[T] = []

    async def open(self) -> None:
        """Wait until the stream is connected (or raise what prevents it)."""
        while True:
            item = await anext(self._items)
            if isinstance(item, Opened):
                return
            self._waiting.append(item)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._waiting:
            return self._waiting.pop(0)
        while True:
            item = await anext(self._items)
            if not isinstance(item, Opened):
                return item

    async def aclose(self) -> None:
        """Close the connection; the stream gives nothing more."""
        await self._items.aclose()
