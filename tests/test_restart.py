"""Chaos: kill -9 the server in the middle of a delay and then of a task; a restarted server adopts the
execution and finishes it from its last checkpoint, with no element completed twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from procengine.redis_server import RedisServer

BASE = "/api/v1/process-engine"
PROCESS = {
    "key": "chaos",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "before", "type": "set-variable", "set": {"a": "1"}, "next": "nap"},
                {"key": "nap", "type": "delay", "durationMs": 1500, "next": "work"},
                {"key": "work", "type": "task", "handler": "sleep", "input": {"ms": "1500"}, "next": "after"},
                {"key": "after", "type": "set-variable", "set": {"b": "a + 1"}, "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}


class Server:
    """`python -m procengine serve` as a child process on a free port."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve(redis_server: RedisServer, prefix: str) -> AsyncIterator[ServerFactory]:
    started: list[Server] = []
    env = {**os.environ, "PROCENGINE_RECONCILE_INTERVAL_MS": "100", "PROCENGINE_NODE_HEARTBEAT_MS": "100"}

    async def start(*extra: str, stderr: int | None = None) -> Server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "procengine",
            "serve",
            "--redis-url",
            redis_server.url,
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
        )
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        assert "serving on http://" in line, line
        server = Server(process, line.strip().split("serving on ")[1])
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.returncode is None:
            server.process.terminate()
        await server.process.wait()


async def call(session: aiohttp.ClientSession, server: Server, method: str, path: str, **kwargs: Any) -> Any:
    async with session.request(method, server.url + BASE + path, **kwargs) as response:
        body = await response.json()
        assert body["success"], body
        return body["data"]


async def element_status(
    session: aiohttp.ClientSession, server: Server, execution_id: int, key: str, status: str
) -> None:
    async with asyncio.timeout(30):
        while True:
            items = (await call(session, server, "GET", f"/executions/processes/{execution_id}/elements"))["items"]
            if any(e["key"] == key and e["status"] == status for e in items):
                return
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_kill_9_in_a_delay_and_in_a_task_then_restart_completes_once(serve: ServerFactory) -> None:
    async with aiohttp.ClientSession() as session:
        first = await serve()
        await call(session, first, "POST", "/processes", json=PROCESS)
        execution_id = (await call(session, first, "POST", "/executions/processes", json={"processKey": "chaos"}))[
            "executionID"
        ]
        await element_status(session, first, execution_id, "nap", "running")
        first.kill9()

        second = await serve()
        await element_status(session, second, execution_id, "work", "running")
        second.kill9()

        third = await serve()
        async with asyncio.timeout(30):
            while True:
                status = await call(session, third, "GET", f"/executions/processes/{execution_id}/status")
                if status["status"] != "running":
                    break
                await asyncio.sleep(0.05)

        assert status["status"] == "completed" and status["progress"]["completedNodes"] == 5
        log = (await call(session, third, "GET", f"/executions/processes/{execution_id}/log"))["items"]
        completed = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
        assert completed == {"before": 1, "nap": 1, "work": 1, "after": 1, "end": 1}
        assert [e["event"] for e in log].count("adopted") == 2
        started = Counter(e["elementKey"] for e in log if e["event"] == "element-started")
        assert started["work"] == 2, "the task cut short by the crash runs again (at least once)"
        state = await call(session, third, "GET", f"/executions/processes/{execution_id}/state")
        assert state["memory"]["variables"] == {"a": 1, "b": 2}


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigterm_drains_and_another_server_adopts_at_once(serve: ServerFactory) -> None:
    # heartbeats that outlive the test: only the drain's word on the nodes channel can explain a quick adoption
    slow = ("--node-ttl-ms", "60000")
    async with aiohttp.ClientSession() as session:
        first = await serve(*slow, stderr=asyncio.subprocess.PIPE)
        second = await serve(*slow)
        await call(session, first, "POST", "/processes", json=PROCESS)
        execution_id = (await call(session, first, "POST", "/executions/processes", json={"processKey": "chaos"}))[
            "executionID"
        ]
        await element_status(session, first, execution_id, "nap", "running")

        first.terminate()
        async with asyncio.timeout(15):
            assert await first.process.wait() == 0
        assert first.process.stderr is not None
        errors = (await first.process.stderr.read()).decode()
        assert "Traceback" not in errors and "was destroyed but it is pending" not in errors, errors

        async with asyncio.timeout(10):  # adopted and finished long before the 60 s heartbeat would expire
            while True:
                status = await call(session, second, "GET", f"/executions/processes/{execution_id}/status")
                if status["status"] != "running":
                    break
                await asyncio.sleep(0.05)
        assert status["status"] == "completed"
        log = (await call(session, second, "GET", f"/executions/processes/{execution_id}/log"))["items"]
        assert [e["event"] for e in log].count("adopted") == 1
        assert Counter(e["elementKey"] for e in log if e["event"] == "element-completed")["nap"] == 1
