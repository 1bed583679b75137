"""Waiting for something no event tells of: ask again until it holds, within a deadline. The one place tests poll, so
that a wait always has a deadline and a test says what it waits for, not how often it looks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _truthy(value: Any) -> bool:
    return bool(value)


async def poll(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool] = _truthy,
    *,
    within: float = 10.0,
    every: float = 0.01,
) -> T:
    """Await `probe()` every `every` seconds until `until` holds for what it gives; that value. TimeoutError after
    `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            found = await probe()
            if until(found):
                return found
            await asyncio.sleep(every)


async def until(condition: Callable[[], bool], *, within: float = 10.0, every: float = 0.01) -> None:
    """`poll` for a condition read without awaiting (an event loop's object, a counter): until it holds, TimeoutError
    after `within` seconds."""

    async def read() -> bool:
        return condition()

    await poll(read, within=within, every=every)


def poll_sync(
    probe: Callable[[], T], until: Callable[[T], bool] = _truthy, *, within: float = 30.0, every: float = 0.02
) -> T:
    """`poll` for a thread without an event loop (the model's state machine): blocks between looks."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if until(found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within} s: {found!r}")
        time.sleep(every)
