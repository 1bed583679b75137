"""`python -m procengine serve` as child processes, for tests that kill, drain and restart real servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from tests.support.api import BASE
from tests.support.paths import REPO
from tests.support.polling import poll


class Server:
    """One `procengine serve` child process on a free port."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)


ServerFactory = Callable[..., Awaitable[Server]]


@contextlib.asynccontextmanager
async def serving(redis_url: str, prefix: str) -> AsyncIterator[ServerFactory]:
    """A factory of servers on `redis_url` under `prefix` (extra CLI flags as arguments); all stopped at the end."""
    started: list[Server] = []
    env = {**os.environ, "PROCENGINE_RECONCILE_INTERVAL_MS": "100", "PROCENGINE_NODE_HEARTBEAT_MS": "100"}

    async def start(*extra: str, stderr: int | None = None) -> Server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "procengine",
            "serve",
            "--redis-url",
            redis_url,
            "--prefix",
            prefix,
            "--port",
            "0",
            "--node-ttl-ms",
            "1000",
            "--log-level",
            "WARNING",
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=REPO,  # where `--handlers examples.handlers` and `--register examples/...` are found
        )
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        assert "serving on http://" in line, line
        server = Server(process, line.strip().split("serving on ")[1])
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.process.returncode is None:
                server.process.terminate()
            await server.process.wait()


async def call(session: aiohttp.ClientSession, server: Server, method: str, path: str, **kwargs: Any) -> Any:
    """The `data` of a successful answer (asserted)."""
    async with session.request(method, server.url + BASE + path, **kwargs) as response:
        body = await response.json()
        assert body["success"], body
        return body["data"]


async def element_status(
    session: aiohttp.ClientSession, server: Server, execution_id: int, key: str, status: str
) -> None:
    """Wait until the element `key` of the execution shows `status`."""

    async def items() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await call(session, server, "GET", f"/executions/processes/{execution_id}/elements")
        )["items"]
        return found

    await poll(
        items, lambda found: any(e["key"] == key and e["status"] == status for e in found), within=30, every=0.05
    )


async def final_status(session: aiohttp.ClientSession, server: Server, execution_id: int) -> dict[str, Any]:
    """Wait until the execution is neither running nor paused; its status answer."""

    async def status() -> dict[str, Any]:
        found: dict[str, Any] = await call(session, server, "GET", f"/executions/processes/{execution_id}/status")
        return found

    return await poll(status, lambda found: found["status"] not in ("running", "paused"), within=30, every=0.05)
