"""The store watch: a request that has run for STORE_CHECK_S while Redis does not answer is cut short with 503.

A hung Redis (a stopped server, a network that drops packets) accepts connections and answers nothing, and each
command waits for the socket timeout on every retry: 20 s with the defaults. Shortening those timeouts would cut
slow but healthy work too (a pause's grace, a forwarded request, the blocking reads of event streams), so the
front door asks instead. One ticker per app looks at the requests in flight every TICK_S; when some have run for
STORE_CHECK_S (any, while the last probe found Redis silent) it asks the engine whether Redis answers a PING
(store/probe.py, at most 0.4 s) and cancels them if not, and the middleware turns that cancellation into 503
UNAVAILABLE: a client hears within a second. A request costs a dict entry, not a timer: timers per request took
11 µs, a tenth of a status read.

An event stream that has started (STREAMING_KEY) is left alone: its answer can no longer be an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from procengine.api.service import NodeService
from procengine.errors import Unavailable
from procengine.http import context

__all__ = ["STORE_CHECK_S", "TICK_S", "WATCH_KEY", "StoreWatch"]

STORE_CHECK_S = 0.4
"""How long a request runs before the watch asks whether Redis answers (a probe of at most as long)."""
TICK_S = 0.05
"""How often the watch looks at the requests in flight."""


@dataclass(eq=False, slots=True)
class _Running:
    task: asyncio.Task[object]
    started: float
    request: web.Request
    gave_up: bool = field(default=False)


class StoreWatch:
    def __init__(self, engine: NodeService) -> None:
        self._engine = engine
        self._running: dict[_Running, None] = {}
        """In flight, oldest first (a dict keeps insertion order)."""

    async def serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """`handler(request)`, or Unavailable once the watch has given up on it."""
        task = asyncio.current_task()
        assert task is not None
        running = _Running(task, asyncio.get_running_loop().time(), request)
        self._running[running] = None
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if running.gave_up and task.uncancel() == 0:  # ours, and nobody else's: answer it
                raise Unavailable("the store did not answer a PING while this request waited; try again") from None
            raise
        finally:
            del self._running[running]

    async def ticking(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: the ticker runs while the app serves."""
        ticker = asyncio.create_task(self._tick_forever(), name="store-watch")
        yield
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            if not self._running:
                continue
            older_than = 0.0 if self._engine.store_silent() else STORE_CHECK_S
            now = loop.time()
            slow = []
            for running in self._running:
                if now - running.started < older_than:
                    break  # the rest came later
                if not running.gave_up and not running.request.get(context.STREAMING_KEY, False):
                    slow.append(running)
            if slow and not await self._engine.store_answers():
                for running in slow:
                    if running in self._running:  # not ended while the probe was out
                        running.gave_up = True
                        running.task.cancel()


WATCH_KEY: web.AppKey[StoreWatch] = web.AppKey("watch")
"""The store watch every request runs under."""
