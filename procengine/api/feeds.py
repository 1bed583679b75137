"""What an event stream of the service protocol yields: batches of items, closed to give its slot back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

__all__ = ["Feed"]

T = TypeVar("T")


class Feed(Generic[T]):
    """Batches of items, None for a while without any (a heartbeat); close it to give its slot back."""

    def __init__(self, items: AsyncIterator[T], release: Callable[[], None]) -> None:
        self._items = items
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> Feed[T]:
        return self

    async def __anext__(self) -> T:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        try:
            closer = getattr(self._items, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
