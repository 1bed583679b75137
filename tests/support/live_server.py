"""A real procengine server (the front door over an Node on the suite's redis-server) in a thread of its own.

Its own thread and event loop, so that blocking code under test (the sync `Client`, the CLI's `main`, which
runs `asyncio.run`) can talk to it from the test's thread, and async tests from theirs, over real TCP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers
from tests.support.api import TOKENS


def tenant_settings(settings: Settings, **changes: Any) -> Settings:
    """The suite's settings with two tenants' tokens (and any other changes)."""
    return settings.model_copy(update={"api_tokens": TOKENS, "max_body_bytes": 64 * 1024, **changes})


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve an engine with `settings` on a free loopback port; its root URL while the block runs."""
    started = threading.Event()
    found: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        found["stop"] = (asyncio.get_running_loop(), stop)
        # the client `serve` makes (a blocking pool of store.connection.MAX_CONNECTIONS): redis-py's default pool
        # refuses the 101st connection at once, where the engine's waits for a free one (a batch of 1,000 starts
        # finishing together)
        redis = connect(str(settings.redis_url), timeout_s=settings.redis_timeout_s, retries=settings.redis_retries)
        try:
            async with Node(redis, settings, builtin_handlers()) as engine:
                runner = web.AppRunner(create_app(engine, settings), access_log=None, shutdown_timeout=0.1)
                await runner.setup()
                try:
                    site = web.TCPSite(runner, "127.0.0.1", 0)
                    await site.start()
                    found["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
                    started.set()
                    await stop.wait()
                finally:
                    await runner.cleanup()
        finally:
            await redis.aclose()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # shown to the test below rather than lost in this thread
            found["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=run, name="live-server", daemon=True)
    thread.start()
    started.wait(30)
    if "url" not in found:
        thread.join(5)
        raise RuntimeError(f"the server did not start: {found.get('error')!r}")
    try:
        yield found["url"]
    finally:
        loop, stop = found["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        if "error" in found:
            raise found["error"]
