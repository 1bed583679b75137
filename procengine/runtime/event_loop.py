"""The event loop procengine runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For `asyncio.Runner(loop_factory=...)`: uvloop (libuv; about 10% more status reads and element steps
    per core in bench/) unless asyncio's own is asked for ("asyncio") or, for "auto", uvloop is not installed.
    None means asyncio's default loop. ImportError if "uvloop" is asked for and not installed."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
