"""Bulk operations over HTTP, through the clients (issue 23, point 2): a dry run is 200 and touches nothing, a job is
202 and followed to its end, its items paged; a bulk pause undone; another tenant's job is 404; bad bodies are 422
listing every problem."""

from __future__ import annotations

from typing import Any

import aiohttp

from procengine.api.bulk_views import BulkCreated, BulkDryRun
from procengine.client import AsyncClient, Client, InvalidTransition, NotFound
from tests.support.api import BASE
from tests.support.polling import poll

WAITS = {
    "key": "bulk-waits",
    "threads": [{"key": "main", "elements": [
        {"key": "approve", "type": "wait-signal", "signal": "go", "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


async def _waiting(client: AsyncClient, count: int) -> list[int]:
    ids = [(await client.start("bulk-waits")).executionID for _ in range(count)]

    async def waiting() -> bool:
        for execution_id in ids:
            if {e.key: e.status for e in (await client.elements(execution_id)).items}.get("approve") != "running":
                return False
        return True

    await poll(waiting, within=10)
    return ids


async def test_a_bulk_pause_is_dry_run_then_run_then_undone(client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(WAITS)
    ids = await _waiting(client_a, 3)

    dry = await client_a.bulk("pause", filter={"status": "running"}, dry_run=True)
    assert isinstance(dry, BulkDryRun) and (dry.matched, sorted(dry.sample)) == (3, sorted(ids))
    assert {(await client_a.status(i)).status for i in ids} == {"running"}

    job = await client_a.bulk("pause", filter={"status": "running"}, reason="window")
    assert isinstance(job, BulkCreated)
    ended = await poll(lambda: client_a.bulk_job(job.jobID), lambda j: j.status == "completed", within=10)
    assert (ended.done, ended.matched, ended.reason) == (3, 3, "window")
    page = await client_a.bulk_items(job.jobID, limit=2)
    rest = await client_a.bulk_items(job.jobID, limit=2, cursor=page.nextCursor)
    assert len(page.items) + len(rest.items) == 3 and rest.nextCursor is None
    assert [j.jobID for j in (await client_a.bulk_jobs()).items] == [job.jobID]

    try:
        await client_b.bulk_job(job.jobID)
        raise AssertionError("another tenant's job must be 404")
    except NotFound:
        pass
    try:
        await client_a.bulk_pause(job.jobID)
        raise AssertionError("a completed job cannot be paused")
    except InvalidTransition as exc:
        assert exc.current_status == "completed"

    undo = await client_a.bulk_undo(job.jobID, reason="window over")
    await poll(lambda: client_a.bulk_job(undo.jobID), lambda j: j.status == "completed", within=10)
    assert {(await client_a.status(i)).status for i in ids} == {"running"}


async def test_the_blocking_client_steers_a_job(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(WAITS)
        ids = [client.start("bulk-waits").executionID for _ in range(4)]
        job = client.bulk("cancel", ids=ids, max_per_second=1)
        assert isinstance(job, BulkCreated)
        assert client.bulk_pause(job.jobID).status == "paused"
        assert client.bulk_resume(job.jobID).status == "running"
        assert client.bulk_cancel(job.jobID).status == "cancelled"


async def _raw(server_url: str, body: Any, path: str = "") -> tuple[int, dict[str, Any]]:
    url = f"{server_url}{BASE}/bulk-operations{path}"
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer tok-a"}) as session,
        session.post(url, json=body) as response,
    ):
        return response.status, await response.json()


async def test_bad_bodies_are_422_listing_every_problem_and_unknown_jobs_404(server_url: str) -> None:
    status, answer = await _raw(server_url, {"action": "signal", "filter": {"nope": 1}, "variables": {}})
    assert status == 422 and answer["error"]["code"] == "VALIDATION_ERROR"
    assert answer["error"]["details"] == [
        "variables: not taken by action signal",
        "signal: the signal's name is required for action signal",
        "filter.nope: unknown (known: status, processID, processKey, startedAfter, startedBefore, errorType, "
        "attr.<name>, attr.<name>.<gte|lte|gt|lt>)",
    ]
    status, answer = await _raw(server_url, {"action": "migrate", "ids": [1]})
    assert (status, answer["error"]["details"]) == (
        422,
        ["version: the version to migrate to is required for action migrate"],
    )
    status, answer = await _raw(server_url, {"action": "explode", "ids": []})
    assert status == 422 and len(answer["error"]["details"]) == 2
    status, answer = await _raw(server_url, None, "/12345/cancel")
    assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")
