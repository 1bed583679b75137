"""External task workers over HTTP, through the clients (issue 24, point 1): fetch, complete, fail, extend; the 409s
that say why a lock does not count (each with its code); another tenant's task is 404 and its queues are not seen; a
bad body is 422 listing every problem."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from procengine.client import AsyncClient, Client, Conflict, NotFound, ValidationError
from tests.support.api import BASE
from tests.support.polling import poll

PAYING = {
    "key": "paying",
    "threads": [{"key": "main", "elements": [
        {"key": "pay", "type": "task", "handler": "charge", "queue": "payments", "input": {"amount": "amount"},
         "output": "payment", "retry": {"maxAttempts": 2, "backoffMs": 1}, "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


async def _final(client: AsyncClient, execution_id: int) -> str:
    status = await poll(lambda: client.status(execution_id), lambda s: not s.isActive)
    return status.status


async def test_a_worker_takes_fails_and_completes_a_task(client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(PAYING)
    execution = (await client_a.start("paying", variables={"amount": 12})).executionID
    assert (await client_b.fetch_tasks(["payments"], worker_id="b", wait_ms=100)).tasks == []
    [task] = (await client_a.fetch_tasks(["payments"], worker_id="a", wait_ms=5000)).tasks
    assert (task.executionId, task.input, task.attempt) == (execution, {"amount": 12}, 1)
    with pytest.raises(NotFound):
        await client_b.complete_task(task.taskId, task.lockToken, 1)
    assert (await client_b.task_queues()).items == []
    extended = await client_a.extend_task(task.taskId, task.lockToken, 60_000)
    assert extended.lockExpiresAt >= task.lockExpiresAt
    assert (await client_a.fail_task(task.taskId, task.lockToken, "busy", type="Busy")).status == "failed"
    with pytest.raises(Conflict) as twice:
        await client_a.fail_task(task.taskId, task.lockToken, "busy")
    assert twice.value.code == "TASK_ALREADY_SETTLED"

    [retried] = (await client_a.fetch_tasks(["payments"], worker_id="a", wait_ms=5000)).tasks
    assert retried.attempt == 2
    with pytest.raises(Conflict) as stale:
        await client_a.complete_task(retried.taskId, "not-the-token", 1)
    assert stale.value.code == "TASK_LOCK_STALE"
    await client_a.complete_task(retried.taskId, retried.lockToken, {"charged": 12})
    assert await _final(client_a, execution) == "completed"
    [queue] = (await client_a.task_queues()).items
    assert (queue.queue, queue.depth, queue.inFlight) == ("payments", 0, 0)


async def test_a_cancel_revokes_the_lock(client_a: AsyncClient) -> None:
    await client_a.register(PAYING)
    execution = (await client_a.start("paying", variables={"amount": 1})).executionID
    [task] = (await client_a.fetch_tasks(["payments"], worker_id="a", wait_ms=5000)).tasks
    await client_a.cancel(execution)
    with pytest.raises(Conflict) as revoked:
        await client_a.complete_task(task.taskId, task.lockToken, 1)
    assert revoked.value.code == "TASK_LOCK_REVOKED"


def test_the_blocking_client_does_the_same(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(PAYING)
        execution = client.start("paying", variables={"amount": 3}).executionID
        [task] = client.fetch_tasks(["payments"], worker_id="s", wait_ms=5000).tasks
        client.extend_task(task.taskId, task.lockToken, 10_000)
        client.complete_task(task.taskId, task.lockToken, "ok")
        assert poll_sync(lambda: client.status(execution).status) == "completed"
        assert [q.queue for q in client.task_queues().items] == ["payments"]
        with pytest.raises(ValidationError):
            client.fetch_tasks(["no spaces"], worker_id="s")


def poll_sync(read: Any) -> Any:
    import time

    deadline = time.monotonic() + 10
    while (found := read()) != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


async def _raw(url: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer tok-a"}) as session,
        session.post(f"{url}{BASE}{path}", json=body) as response,
    ):
        return response.status, await response.json()


async def test_bad_bodies_are_422_listing_every_problem_and_unknown_tasks_404(server_url: str) -> None:
    status, answer = await _raw(server_url, "/tasks/fetch", {"queues": [], "max": 0, "lockMs": 5, "extra": 1})
    assert status == 422 and answer["error"]["code"] == "VALIDATION_ERROR"
    assert len(answer["error"]["details"]) == 5, answer  # queues, max, lockMs, workerId, extra
    status, answer = await _raw(server_url, "/tasks/1.2.3/complete", {"lockToken": "x"})
    assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")
    status, answer = await _raw(server_url, "/tasks/nonsense/complete", {"lockToken": "x"})
    assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")
    status, answer = await _raw(server_url, "/tasks/1.2.3/fail", {"lockToken": "x"})
    assert status == 422 and answer["error"]["details"] == ["error: Field required"]
