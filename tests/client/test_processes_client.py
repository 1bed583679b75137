"""A process version's life over HTTP, through the clients (issue 23, point 4): `DELETE /processes/{id}` (200 with
the envelope, 409 PROCESS_IN_USE with how many executions), `PATCH /processes/{id}` (deprecated: starts refused
with 409 PROCESS_DEPRECATED), the counts per status in `GET /processes/{id}`, 422 for bad bodies and queries, and
another tenant's version 404."""

from __future__ import annotations

from typing import Any

import aiohttp

from procengine.client import AsyncClient, Client, Conflict, NotFound
from tests.support.api import BASE

WAIT = {
    "key": "lifecycle",
    "threads": [{"key": "main", "elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}],
}
WAIT_V2 = {
    "key": "lifecycle",
    "threads": [{"key": "main", "elements": [{"key": "w2", "type": "wait-signal", "signal": "go"}]}],
}


async def _raw(server_url: str, method: str, path: str, **options: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer tok-a"}) as session,
        session.request(method, server_url + BASE + path, **options) as answer,
    ):
        return answer.status, await answer.json()


async def test_delete_answers_the_envelope_and_refuses_a_used_version(server_url: str, client_a: AsyncClient) -> None:
    v1 = (await client_a.register(WAIT)).processID
    v2 = (await client_a.register(WAIT_V2)).processID
    await client_a.start(process_id=v1)

    status, body = await _raw(server_url, "DELETE", f"/processes/{v1}")
    assert status == 409 and body["error"]["code"] == "PROCESS_IN_USE"
    assert body["error"]["details"] == {"processID": v1, "executions": 1}
    try:
        await client_a.delete_process(v1)
    except Conflict as exc:
        assert exc.code == "PROCESS_IN_USE" and exc.details["executions"] == 1
    else:
        raise AssertionError("a used version was deleted")

    status, body = await _raw(server_url, "DELETE", f"/processes/{v2}", params={"reason": "pushed by mistake"})
    assert status == 200 and body["success"] is True
    assert body["data"] == {
        "processID": v2,
        "key": "lifecycle",
        "version": 2,
        "deleted": True,
        "latestProcessID": v1,
        "latestVersion": 1,
    }
    assert [p.processID for p in (await client_a.processes()).items] == [v1]
    status, _ = await _raw(server_url, "GET", f"/processes/{v2}")
    assert status == 404


async def test_deprecate_refuses_starts_and_shows_in_the_reads(client_a: AsyncClient) -> None:
    v1 = (await client_a.register(WAIT)).processID
    await client_a.start(process_id=v1)

    shown = await client_a.deprecate_process(v1, reason="v2 is out")

    assert shown.deprecated and (await client_a.process(v1)).deprecated
    try:
        await client_a.start("lifecycle")
    except Conflict as exc:
        assert exc.status == 409 and exc.code == "PROCESS_DEPRECATED"
    else:
        raise AssertionError("a deprecated version was started")
    batch = await client_a.start_many([{"variables": {}}], process_id=v1)
    assert batch.items[0].error is not None and batch.items[0].error.code == "PROCESS_DEPRECATED"
    assert (await client_a.process_counts(v1)).running == 1

    assert not (await client_a.undeprecate_process(v1)).deprecated
    assert (await client_a.start("lifecycle")).processID == v1
    assert (await client_a.process_counts(v1)).running == 2


async def test_bad_bodies_and_queries_are_422_with_every_problem(server_url: str, client_a: AsyncClient) -> None:
    v1 = (await client_a.register(WAIT)).processID

    for body in ({}, {"deprecated": "yes"}, {"deprecated": 1}, {"deprecated": True, "extra": 1}, [True]):
        status, answer = await _raw(server_url, "PATCH", f"/processes/{v1}", json=body)
        assert status == 422 and answer["error"]["code"] == "VALIDATION_ERROR", body
        assert answer["error"]["details"], body
    status, answer = await _raw(server_url, "DELETE", f"/processes/{v1}", params={"reason": ""})
    assert status == 422, answer
    status, answer = await _raw(server_url, "DELETE", "/processes/abc")
    assert status in (404, 422), answer
    assert not (await client_a.process(v1)).deprecated


async def test_another_tenants_version_is_404_for_every_verb(client_a: AsyncClient, client_b: AsyncClient) -> None:
    v1 = (await client_a.register(WAIT)).processID

    for act in (client_b.delete_process(v1), client_b.deprecate_process(v1), client_b.process_counts(v1)):
        try:
            await act
        except NotFound:
            pass
        else:
            raise AssertionError("another tenant's version answered")
    assert not (await client_a.process(v1)).deprecated


def test_the_blocking_client_deprecates_and_deletes(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        v1 = client.register(WAIT).processID
        assert client.deprecate_process(v1).deprecated
        assert client.process_counts(v1).model_dump() == dict.fromkeys(
            ("running", "paused", "completed", "failed", "cancelled"), 0
        )
        deleted = client.delete_process(v1, reason="never used")
        assert (deleted.processID, deleted.latestProcessID) == (v1, None)
