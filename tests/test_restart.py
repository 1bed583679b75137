"""Chaos: kill -9 the server in the middle of a delay and then of a task; a restarted server adopts the
execution and finishes it from its last checkpoint, with no element completed twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from procengine.store.embedded import RedisServer
from tests.support.polling import poll
from tests.support.processes import STEPS_PROCESS
from tests.support.servers import ServerFactory, call, element_status, serving


@pytest.fixture
async def serve(redis_server: RedisServer, prefix: str) -> AsyncIterator[ServerFactory]:
    async with serving(redis_server.url, prefix) as start:
        yield start


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_kill_9_in_a_delay_and_in_a_task_then_restart_completes_once(serve: ServerFactory) -> None:
    async with aiohttp.ClientSession() as session:
        first = await serve()
        await call(session, first, "POST", "/processes", json=STEPS_PROCESS)
        execution_id = (await call(session, first, "POST", "/executions/processes", json={"processKey": "steps"}))[
            "executionID"
        ]
        await element_status(session, first, execution_id, "nap", "running")
        first.kill9()

        second = await serve()
        await element_status(session, second, execution_id, "work", "running")
        second.kill9()

        third = await serve()
        status = await poll(
            lambda: call(session, third, "GET", f"/executions/processes/{execution_id}/status"),
            lambda status: status["status"] != "running",
            within=30,
            every=0.05,
        )

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
        await call(session, first, "POST", "/processes", json=STEPS_PROCESS)
        execution_id = (await call(session, first, "POST", "/executions/processes", json={"processKey": "steps"}))[
            "executionID"
        ]
        await element_status(session, first, execution_id, "nap", "running")

        first.terminate()
        async with asyncio.timeout(15):
            assert await first.process.wait() == 0
        assert first.process.stderr is not None
        errors = (await first.process.stderr.read()).decode()
        assert "Traceback" not in errors and "was destroyed but it is pending" not in errors, errors

        status = await poll(  # adopted and finished long before the 60 s heartbeat would expire
            lambda: call(session, second, "GET", f"/executions/processes/{execution_id}/status"),
            lambda status: status["status"] != "running",
            within=10,
            every=0.05,
        )
        assert status["status"] == "completed"
        log = (await call(session, second, "GET", f"/executions/processes/{execution_id}/log"))["items"]
        assert [e["event"] for e in log].count("adopted") == 1
        assert Counter(e["elementKey"] for e in log if e["event"] == "element-completed")["nap"] == 1
