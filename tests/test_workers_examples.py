"""examples/workers/ end to end (issue 24, point 1): the order's payment step served by `procengine worker` running the
example handlers outside the engine, and by the JavaScript worker over plain HTTP; both stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from procengine.store.embedded import RedisServer
from tests.support.paths import REPO
from tests.support.servers import Server, call, final_status, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ORDER = {"order_id": 7, "qty": 1, "unit_price": 40, "card": "4242-4242-4242-4242", "approval_ms": 60_000}
DECLINED = {**ORDER, "order_id": 8, "card": "4000-0000-0000-0002"}


@pytest.fixture
async def server(redis_server: RedisServer, prefix: str) -> AsyncIterator[Server]:
    async with serving(redis_server.url, prefix) as start:
        yield await start("--register", "examples/workers/order-approval.yaml")  # no handlers of its own


async def _worker(*command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command, cwd=REPO, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


async def _orders_go_through(server: Server) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        ids = []
        for variables in (ORDER, DECLINED):
            body = {"processKey": "order-approval-workers", "variables": variables}
            ids.append((await call(session, server, "POST", "/executions/processes", json=body))["executionID"])
        paid, declined = [await final_status(session, server, i) for i in ids]
        assert (paid["status"], declined["status"]) == ("completed", "failed")
        assert "declined" in str(declined)  # the catch took CardDeclined to tell-customer, then `declined`
        state = await call(session, server, "GET", f"/executions/processes/{ids[0]}/state")
        payment: dict[str, Any] = state["memory"]["variables"]["payment"]
        return [payment]


async def _stops_on_sigterm(worker: asyncio.subprocess.Process) -> str:
    worker.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        output, _ = await worker.communicate()
    assert worker.returncode == 0, output.decode()
    return output.decode()


async def test_the_python_worker_runs_the_example_handlers_outside_the_engine(server: Server) -> None:
    worker = await _worker(
        sys.executable, "-m", "procengine", "worker", "--url", server.url, "--queue", "payments",
        "--handlers", "examples.handlers", "--concurrency", "4", "--wait-ms", "500",
        env={},
    )  # fmt: skip
    try:
        [payment] = await _orders_go_through(server)
        assert payment["charged"] == 40 and payment["reference"].startswith("ch_")
    finally:
        said = await _stops_on_sigterm(worker)
    assert "stopped (1 completed, 2 failed)" in said, said  # the declined card: both attempts (retry policy)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_the_javascript_worker_serves_the_same_queue_over_plain_http(server: Server) -> None:
    worker = await _worker("node", "examples/workers/worker.js", env={"PROCENGINE_URL": server.url})
    try:
        [payment] = await _orders_go_through(server)
        assert payment == {"charged": 40, "reference": payment["reference"], "by": "javascript"}
    finally:
        said = await _stops_on_sigterm(worker)
    assert "stopped" in said, said


async def test_a_task_in_a_workers_hands_when_its_node_is_killed_is_completed_once(
    redis_server: RedisServer, prefix: str
) -> None:
    async with serving(redis_server.url, prefix) as start, aiohttp.ClientSession() as session:
        a = await start("--register", "examples/workers/order-approval.yaml")
        b = await start()
        body = {"processKey": "order-approval-workers", "variables": ORDER}
        execution = (await call(session, a, "POST", "/executions/processes", json=body))["executionID"]
        fetch = {"queues": ["payments"], "workerId": "w", "waitMs": 10_000}
        [task] = (await call(session, b, "POST", "/tasks/fetch", json=fetch))["tasks"]
        a.kill9()  # the owner dies while the worker holds the task: b adopts the execution
        done = {"lockToken": task["lockToken"], "output": {"charged": 40, "reference": "ch_once"}}
        await call(session, b, "POST", f"/tasks/{task['taskId']}/complete", json=done)
        status = await final_status(session, b, execution)
        assert status["status"] == "completed"
        state = await call(session, b, "GET", f"/executions/processes/{execution}/state")
        assert state["memory"]["variables"]["payment"]["reference"] == "ch_once"
        # nothing was offered again: the adopting node found the task in the worker's hands
        assert (await call(session, b, "POST", "/tasks/fetch", json={**fetch, "waitMs": 0}))["tasks"] == []
