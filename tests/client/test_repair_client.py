"""Repair over HTTP, through the clients (issue 20): retry a failed execution, edit a paused one's variables; the
refusals as the contract's codes."""

from __future__ import annotations

import aiohttp
import pytest

from procengine.client import AsyncClient, Client, InvalidTransition, NotFound, ValidationError
from tests.support.api import BASE
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS

NEEDS_AMOUNT = {
    "key": "needs-amount",
    "name": "Fails until amount is set",
    "threads": [{"key": "main", "elements": [
        {"key": "first", "type": "set-variable", "set": {"seen": "true"}, "next": "double"},
        {"key": "double", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip
"""`double` fails (ExpressionError: no `amount`) until a retry gives it one."""


async def _until(client: AsyncClient, execution_id: int, status: str) -> None:
    async def read() -> str:
        return (await client.status(execution_id)).status

    await poll(read, lambda found: found == status, within=10)


async def test_a_failed_execution_is_retried_with_a_patch_over_http(client_a: AsyncClient) -> None:
    await client_a.register(NEEDS_AMOUNT)
    started = await client_a.start("needs-amount")
    await _until(client_a, started.executionID, "failed")
    with pytest.raises(InvalidTransition) as not_paused:
        await client_a.edit_variables(started.executionID, {"amount": 1})
    assert not_paused.value.current_status == "failed"

    retried = await client_a.retry(started.executionID, variables={"amount": 21}, reason="amount was missing")

    assert (retried.status, retried.retried) == ("running", ["double"])
    await _until(client_a, started.executionID, "completed")
    state = await client_a.state(started.executionID)
    assert state.memory is not None and state.memory["variables"]["total"] == 42
    [entry] = [e for e in (await client_a.log(started.executionID)).items if e.event == "retried"]
    assert entry.detail["reason"] == "amount was missing" and entry.detail["by"] == "tenant-a"
    assert entry.detail["requestId"]  # the request's X-Request-ID
    elements = {e.key: e.status for e in (await client_a.elements(started.executionID)).items}
    assert elements == {"first": "completed", "double": "completed", "done": "completed"}
    with pytest.raises(InvalidTransition) as done:
        await client_a.retry(started.executionID)
    assert done.value.current_status == "completed"


async def test_a_paused_executions_variables_are_patched_over_http(client_a: AsyncClient) -> None:
    await client_a.register(WAIT_PROCESS)
    started = await client_a.start("approval", variables={"amount": 2, "note": "x"})
    with pytest.raises(InvalidTransition) as running:
        await client_a.edit_variables(started.executionID, {"amount": 3})
    assert running.value.current_status == "running"
    await client_a.pause(started.executionID)

    edited = await client_a.edit_variables(started.executionID, {"amount": 3, "note": None}, reason="typo")

    assert edited.status == "paused" and edited.variables["amount"] == 3 and "note" not in edited.variables
    [entry] = [e for e in (await client_a.log(started.executionID)).items if e.event == "variables-changed"]
    assert entry.detail["reason"] == "typo"
    assert entry.detail["variables"]["before"] == {"amount": 2, "note": "x"}


async def test_repairs_of_another_tenants_execution_are_404(client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(NEEDS_AMOUNT)
    started = await client_a.start("needs-amount")
    await _until(client_a, started.executionID, "failed")

    with pytest.raises(NotFound):
        await client_b.retry(started.executionID, variables={"amount": 1})
    with pytest.raises(NotFound):
        await client_b.edit_variables(started.executionID, {"amount": 1})
    assert (await client_a.status(started.executionID)).status == "failed"


async def test_a_patch_that_is_not_an_object_is_422(client_a: AsyncClient, server_url: str) -> None:
    await client_a.register(WAIT_PROCESS)
    started = await client_a.start("approval", variables={"amount": 2})
    await client_a.pause(started.executionID)
    url = f"{server_url}{BASE}/executions/processes/{started.executionID}/variables"
    headers = {"Authorization": "Bearer tok-a", "Content-Type": "application/merge-patch+json"}

    async with aiohttp.ClientSession() as session:
        async with session.patch(url, data=b"[1, 2]", headers=headers) as answer:
            assert answer.status == 422 and (await answer.json())["error"]["code"] == "VALIDATION_ERROR"
        async with session.patch(url, data=b"", headers=headers) as answer:
            assert answer.status == 400
        async with session.patch(url, params={"reason": "x" * 501}, data=b"{}", headers=headers) as answer:
            assert answer.status == 422
        async with session.patch(url, params={"why": "x"}, data=b"{}", headers=headers) as answer:
            assert answer.status == 400  # an unknown query parameter
        async with session.patch(url, data=b'{"amount": 5}', headers=headers) as answer:
            assert answer.status == 200 and (await answer.json())["data"]["variables"]["amount"] == 5
    with pytest.raises(ValidationError):  # checked by the client as the server would
        await client_a.retry(started.executionID, reason="x" * 1001)


def test_the_blocking_client_retries_and_edits(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(NEEDS_AMOUNT)
        failed = client.start("needs-amount")
        names = [entry.event for entry in client.events(failed.executionID)]  # ends after the final transition
        assert names[-1] == "failed"
        first = client.retry(failed.executionID, variables={"amount": 1}, idempotency_key="fix-1")
        again = client.retry(failed.executionID, variables={"amount": 1}, idempotency_key="fix-1")
        assert again == first

        client.register(WAIT_PROCESS)
        waiting = client.start("approval", variables={"amount": 2})
        client.pause(waiting.executionID)
        assert client.edit_variables(waiting.executionID, {"amount": 4}).variables["amount"] == 4
