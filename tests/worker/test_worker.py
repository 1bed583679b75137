"""`procengine.worker.Worker` (issue 24, point 1): the same @task handlers outside the engine, sync ones in a thread;
a handler's exception fails the attempt with its class name and `retryable`; stopping lets in-flight tasks finish
within the grace and releases the rest for another worker."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from procengine.client import AsyncClient
from procengine.tasks import HandlerRegistry, TaskContext
from procengine.worker import Worker
from tests.support.polling import poll, until

PAYING = {
    "key": "paying",
    "threads": [{"key": "main", "elements": [
        {"key": "pay", "type": "task", "handler": "charge", "queue": "payments", "input": {"amount": "amount"},
         "output": "payment", "catch": [{"errors": ["Declined"], "next": "done"}], "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


class Declined(Exception):
    retryable = False


async def _final(client: AsyncClient, execution_id: int) -> str:
    return (await poll(lambda: client.status(execution_id), lambda s: not s.isActive, within=15)).status


async def test_a_sync_handler_runs_in_a_thread_and_an_exception_fails_with_its_type(client: AsyncClient) -> None:
    threads: list[str] = []
    handlers = HandlerRegistry()

    @handlers.task("charge")
    def charge(data: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:  # a plain function
        threads.append(threading.current_thread().name)
        if data["amount"] < 0:
            raise Declined("negative")
        return {"charged": data["amount"], "key": ctx.idempotency_key}

    await client.register(PAYING)
    stop = asyncio.Event()
    worker = Worker(client, ["payments"], handlers, concurrency=4, wait_ms=200)
    running = asyncio.ensure_future(worker.run(stop))
    try:
        good = (await client.start("paying", variables={"amount": 5})).executionID
        bad = (await client.start("paying", variables={"amount": -1})).executionID
        assert await _final(client, good) == "completed"
        assert await _final(client, bad) == "completed"  # the catch took `Declined`, not retried
        state = await client.state(good)
        assert state.memory is not None and state.memory["variables"]["payment"]["charged"] == 5
        elements = {e.key: e for e in (await client.elements(bad)).items}
        assert elements["pay"].attempts == 1
    finally:
        stop.set()
        await running
    assert threads and all(name != threading.main_thread().name for name in threads)
    assert (worker.completed, worker.failed) == (1, 1)


async def test_stopping_releases_a_task_that_does_not_finish_within_the_grace(client: AsyncClient) -> None:
    started = asyncio.Event()
    handlers = HandlerRegistry()

    @handlers.task("charge")
    async def charge(data: dict[str, Any]) -> int:
        started.set()
        await asyncio.Event().wait()  # never ends by itself
        return 0

    await client.register(PAYING)
    execution = (await client.start("paying", variables={"amount": 1})).executionID
    stop = asyncio.Event()
    worker = Worker(client, ["payments"], handlers, concurrency=2, wait_ms=200, grace_s=0.1)
    running = asyncio.ensure_future(worker.run(stop))
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    await asyncio.wait_for(running, 15)
    assert worker.in_flight == 0
    # released: another worker gets the same attempt within about a second (its lock cut to 1 s)
    again = await client.fetch_tasks(["payments"], worker_id="next", wait_ms=5000)
    assert [(t.executionId, t.attempt) for t in again.tasks] == [(execution, 1)]
    await client.complete_task(again.tasks[0].taskId, again.tasks[0].lockToken, 1)
    assert await _final(client, execution) == "completed"


async def test_a_slow_handler_keeps_its_lock(client: AsyncClient) -> None:
    release = asyncio.Event()
    handlers = HandlerRegistry()

    @handlers.task("charge")
    async def charge(data: dict[str, Any]) -> str:
        await release.wait()
        return "slow but sure"

    await client.register(PAYING)
    execution = (await client.start("paying", variables={"amount": 1})).executionID
    stop = asyncio.Event()
    worker = Worker(client, ["payments"], handlers, concurrency=1, wait_ms=200, lock_ms=1000)
    running = asyncio.ensure_future(worker.run(stop))
    await until(lambda: worker.in_flight == 1)
    # longer than the lock: extended every third of it, so no other fetch takes it
    assert (await client.fetch_tasks(["payments"], worker_id="thief", wait_ms=1500)).tasks == []
    release.set()
    assert await _final(client, execution) == "completed"
    stop.set()
    await running
