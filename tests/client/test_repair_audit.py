"""The audit of repairs is complete (issue 20 point 7): every retry, edit and refusal of one leaves a log entry that
says who (`by`), why (`reason`), which request (`requestId`, the request's X-Request-ID) and what changed (the
variables before/after, the elements a retry reset); another tenant's token gets 404 and writes nothing at all.

Over HTTP against a real server (tokens tok-a, tok-b), each request with its own X-Request-ID, so that every entry
can be traced to the request that wrote it."""

from __future__ import annotations

from typing import Any

import aiohttp
from redis.asyncio import Redis

from procengine.client import AsyncClient
from procengine.settings import Settings
from procengine.store.keys import Keys
from tests.support.api import BASE
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS

NEEDS_AMOUNT = {
    "key": "audit-needs-amount",
    "threads": [{"key": "main", "elements": [
        {"key": "first", "type": "set-variable", "set": {"seen": "true"}, "next": "double"},
        {"key": "double", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip
"""`double` fails (ExpressionError: no `amount`) until a patch gives it one."""

REPAIRS = ("retried", "variables-changed")
WHO_WHY_WHICH = ("by", "reason", "requestId")


class Operator:
    """Raw HTTP as a tenant: each request names itself (X-Request-ID) and says why (`reason`)."""

    def __init__(self, session: aiohttp.ClientSession, server_url: str, token: str) -> None:
        self.session = session
        self.base = f"{server_url}{BASE}/executions/processes"
        self.token = token
        self.sent = 0

    async def ask(self, method: str, path: str, body: Any = None, **params: str) -> tuple[int, dict[str, Any], str]:
        """The answer's status, its JSON, and the request id it was sent with."""
        self.sent += 1
        request_id = f"audit-{self.token}-{self.sent}"
        headers = {"Authorization": f"Bearer {self.token}", "X-Request-ID": request_id}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        async with self.session.request(
            method, f"{self.base}/{path}", json=body, headers=headers, params=params
        ) as answer:
            assert answer.headers["X-Request-ID"] == request_id
            return answer.status, await answer.json(), request_id


async def _until(client: AsyncClient, execution_id: int, status: str) -> None:
    async def read() -> str:
        return (await client.status(execution_id)).status

    await poll(read, lambda found: found == status, within=10)


async def _entries(client: AsyncClient, execution_id: int) -> dict[str, dict[str, Any]]:
    """The execution's log entries by the request id that wrote them (entries a request wrote name it)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in (await client.log(execution_id)).items:
        request_id = entry.detail.get("requestId")
        if request_id:  # the engine's own entries (a failure) name none
            assert request_id not in found, f"{request_id} wrote two entries"
            found[request_id] = {"event": entry.event, **entry.detail}
    return found


async def test_every_repair_and_refusal_is_logged_with_who_why_which_request_and_what_changed(
    client_a: AsyncClient, server_url: str
) -> None:
    await client_a.register(NEEDS_AMOUNT)
    await client_a.register(WAIT_PROCESS)
    failed = (await client_a.start("audit-needs-amount", variables={"note": "x"})).executionID
    paused = (await client_a.start("approval", variables={"amount": 2, "note": "x"})).executionID
    await _until(client_a, failed, "failed")
    await client_a.pause(paused)
    async with aiohttp.ClientSession() as session:
        operator = Operator(session, server_url, "tok-a")
        # a refusal of each, then a retry without a patch (it fails again), one with a patch and a key, an edit
        edit_refused = await operator.ask("PATCH", f"{failed}/variables", {"amount": 1}, reason="edit a failed one")
        retry_refused = await operator.ask("POST", f"{paused}/retry", {"reason": "retry a paused one"})
        bare = await operator.ask("POST", f"{failed}/retry", {"reason": "try again as it is"})
        await _until(client_a, failed, "failed")
        fixed = await operator.ask(
            "POST",
            f"{failed}/retry",
            {"reason": "amount was missing", "variables": {"amount": 21, "note": None}, "idempotencyKey": "k-1"},
        )
        edited = await operator.ask("PATCH", f"{paused}/variables", {"amount": 3, "extra": [1]}, reason="typo")
        await _until(client_a, failed, "completed")
        done_refused = await operator.ask("POST", f"{failed}/retry", {"reason": "retry a completed one"})

    assert [answer[0] for answer in (edit_refused, retry_refused, bare, fixed, edited, done_refused)] == [
        409, 409, 200, 200, 200, 409,
    ]  # fmt: skip
    of_failed, of_paused = await _entries(client_a, failed), await _entries(client_a, paused)
    for entries in (of_failed, of_paused):  # every repair entry and every refusal: who, why, which request
        for request_id, entry in entries.items():
            if entry["event"] in (*REPAIRS, "refused"):
                assert all(entry.get(name) for name in WHO_WHY_WHICH), (request_id, entry)
                assert entry["by"] == "tenant-a" and entry["requestId"] == request_id

    refused = of_failed[edit_refused[2]]
    assert (refused["event"], refused["command"], refused["from"], refused["reason"]) == (
        "refused", "edit", "failed", "edit a failed one",
    )  # fmt: skip
    refused = of_paused[retry_refused[2]]
    assert (refused["event"], refused["command"], refused["from"]) == ("refused", "retry", "paused")
    refused = of_failed[done_refused[2]]
    assert (refused["event"], refused["command"], refused["from"]) == ("refused", "retry", "completed")

    again = of_failed[bare[2]]  # what changed: the element reset, no variables (no patch)
    assert (again["event"], again["from"], again["to"], again["reason"]) == (
        "retried", "failed", "running", "try again as it is",
    )  # fmt: skip
    assert again["reset"] == [{"element": "double", "thread": "main", "attempts": 1}]
    assert "variables" not in again
    patched = of_failed[fixed[2]]  # ... and the variables the patch touched, before and after
    assert (patched["event"], patched["reason"], patched["idempotencyKey"]) == (
        "retried", "amount was missing", "k-1",
    )  # fmt: skip
    assert patched["reset"] == [{"element": "double", "thread": "main", "attempts": 1}]
    assert patched["variables"] == {"before": {"note": "x"}, "after": {"amount": 21}}
    change = of_paused[edited[2]]
    assert (change["event"], change["reason"]) == ("variables-changed", "typo")
    assert change["variables"] == {"before": {"amount": 2}, "after": {"amount": 3, "extra": [1]}}
    assert edited[1]["data"]["changed"] == ["amount", "extra"]


async def _dump(redis: Redis, keys: Keys, execution_id: int) -> dict[str, tuple[Any, int]]:
    """Each of the execution's keys: its serialised value and whether it expires."""
    found: dict[str, tuple[Any, int]] = {}
    for key in keys.execution(execution_id).all():
        found[key] = (await redis.dump(key), await redis.pttl(key) > 0)
    return found


async def test_another_tenant_can_neither_retry_nor_edit_and_writes_nothing(
    client_a: AsyncClient, server_url: str, redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.prefix)
    await client_a.register(NEEDS_AMOUNT)
    await client_a.register(WAIT_PROCESS)
    failed = (await client_a.start("audit-needs-amount")).executionID
    paused = (await client_a.start("approval", variables={"amount": 2})).executionID
    await _until(client_a, failed, "failed")
    await client_a.pause(paused)
    before = {failed: await _dump(redis, keys, failed), paused: await _dump(redis, keys, paused)}

    async with aiohttp.ClientSession() as session:
        intruder = Operator(session, server_url, "tok-b")
        answers = []
        for execution_id in (failed, paused):
            answers.append(await intruder.ask("POST", f"{execution_id}/retry", {"variables": {"amount": 1}}))
            answers.append(await intruder.ask("PATCH", f"{execution_id}/variables", {"amount": 1}, reason="mine"))

    for status, body, _ in answers:
        assert status == 404 and body["error"]["code"] == "NOT_FOUND", body
    after = {failed: await _dump(redis, keys, failed), paused: await _dump(redis, keys, paused)}
    assert after == before  # not a refusal logged, not a field touched, no retention changed
    assert (await client_a.status(failed)).status == "failed"
    assert (await client_a.status(paused)).status == "paused"
