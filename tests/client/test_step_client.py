"""Step controls over HTTP, through the clients (issue 20, point 3): retry, skip, complete or fail one element of a
paused or failed execution; the refusals as the contract's codes (404, 409 naming the status, 422)."""

from __future__ import annotations

import aiohttp
import pytest

from procengine.client import AsyncClient, Client, InvalidTransition, NotFound, ValidationError
from tests.support.api import BASE
from tests.support.polling import poll

TWO_STEPS = {
    "key": "two-steps",
    "threads": [{"key": "main", "elements": [
        {"key": "price", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "ok", "into": "approval", "next": "done",
         "catch": [{"errors": ["Rejected"], "next": "rejected", "into": "why"}]},
        {"key": "done", "type": "set-variable", "set": {"done": "true"}},
        {"key": "rejected", "type": "set-variable", "set": {"rejected": "true"}},
    ]}],
}  # fmt: skip
"""`price` fails (ExpressionError) without `amount`; `approve` waits for the signal `ok`."""


async def _until(client: AsyncClient, execution_id: int, status: str) -> None:
    async def read() -> str:
        return (await client.status(execution_id)).status

    await poll(read, lambda found: found == status, within=10)


async def _at_approve(client: AsyncClient, execution_id: int) -> None:
    async def read() -> dict[str, str]:
        return {e.key: e.status for e in (await client.elements(execution_id)).items}

    await poll(read, lambda found: found.get("approve") == "running", within=10)


async def _waiting(client: AsyncClient) -> int:
    started = await client.start("two-steps", variables={"amount": 1})
    await _at_approve(client, started.executionID)
    await client.pause(started.executionID)
    return started.executionID


async def test_skip_and_retry_over_http(client_a: AsyncClient) -> None:
    await client_a.register(TWO_STEPS)
    failed = await client_a.start("two-steps")
    await _until(client_a, failed.executionID, "failed")

    retried = await client_a.retry_element(failed.executionID, "price", reason="look again")
    assert (retried.status, retried.action, [e.elementKey for e in retried.stack]) == ("paused", "retry", ["price"])
    skipped = await client_a.skip(failed.executionID, "price", output={"total": 0}, reason="no price needed")
    assert [e.elementKey for e in skipped.stack] == ["approve"]
    await client_a.skip(failed.executionID, "approve", output="yes")  # into `approval`, as if it had come
    await client_a.resume(failed.executionID)
    await _until(client_a, failed.executionID, "completed")
    state = await client_a.state(failed.executionID)
    assert state.memory is not None
    assert state.memory["variables"] == {"approval": "yes", "done": True}
    log = (await client_a.log(failed.executionID)).items
    [entry] = [e for e in log if e.event == "element-retried"]
    assert entry.detail["by"] == "tenant-a" and entry.detail["reason"] == "look again" and entry.detail["requestId"]


async def test_complete_and_fail_over_http(client_a: AsyncClient) -> None:
    await client_a.register(TWO_STEPS)
    execution_id = await _waiting(client_a)
    with pytest.raises(ValidationError) as not_a_task:  # 422: a wait-signal is no task
        await client_a.complete(execution_id, "approve", {"ok": True})
    assert "not a task" in str(not_a_task.value.problems)

    caught = await client_a.fail(execution_id, "approve", "customer said no", type="Rejected", reason="call")

    assert (caught.status, caught.caught) == ("paused", "rejected")
    other = await _waiting(client_a)
    ended = await client_a.fail(other, "approve", "gone")
    assert ended.status == "failed"


async def test_a_policy_change_over_http(client_a: AsyncClient, server_url: str) -> None:
    await client_a.register(TWO_STEPS)
    execution_id = await _waiting(client_a)
    with pytest.raises(ValidationError) as not_a_task:
        await client_a.change_policy(execution_id, "approve", timeout_ms=5)
    assert "not a task" in str(not_a_task.value.problems)
    url = f"{server_url}{BASE}/executions/processes/{execution_id}/elements/approve"
    headers = {"Authorization": "Bearer tok-a"}
    async with aiohttp.ClientSession() as session:
        async with session.patch(url, json={"retry": {"maxAttempts": 0}}, headers=headers) as answer:
            assert answer.status == 422  # validated as a definition's policy
        async with session.patch(url, json={}, headers=headers) as answer:
            assert answer.status == 422  # nothing to change
    with pytest.raises(ValidationError):  # checked by the client as the server would
        await client_a.change_policy(execution_id, "approve", retry={"maxAttempts": 0})


async def test_refusals_over_http(client_a: AsyncClient, client_b: AsyncClient, server_url: str) -> None:
    await client_a.register(TWO_STEPS)
    started = await client_a.start("two-steps", variables={"amount": 1})
    await _at_approve(client_a, started.executionID)
    with pytest.raises(InvalidTransition) as running:
        await client_a.skip(started.executionID, "approve")
    assert running.value.current_status == "running"
    with pytest.raises(InvalidTransition, match="not waiting on a timer"):
        await client_a.run_now(started.executionID, "approve")
    await client_a.pause(started.executionID)
    with pytest.raises(NotFound):
        await client_a.skip(started.executionID, "price")  # not on the stack
    with pytest.raises(NotFound):
        await client_a.skip(started.executionID, "nope")  # not in the definition
    with pytest.raises(NotFound):
        await client_b.skip(started.executionID, "approve")  # another tenant's
    with pytest.raises(NotFound):
        await client_a.skip(started.executionID, "approve", lane="main/x[0]")
    with pytest.raises(ValidationError):  # checked by the client as the server would
        await client_a.fail(started.executionID, "approve", "")
    with pytest.raises(ValidationError):  # no such element (named in the body: 422)
        await client_a.move(started.executionID, "main", "nope")
    with pytest.raises(ValidationError):  # no such lane
        await client_a.move(started.executionID, "other", "done")
    url = f"{server_url}{BASE}/executions/processes/{started.executionID}/elements/approve"
    headers = {"Authorization": "Bearer tok-a"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/fail", json={"type": "X"}, headers=headers) as answer:
            assert answer.status == 422  # no error given
        async with session.post(f"{url}/skip", json={"outcome": 1}, headers=headers) as answer:
            assert answer.status == 422  # an unknown field
        async with session.post(f"{url}/explode", headers=headers) as answer:
            assert answer.status in (404, 405)
        async with session.post(f"{url[: -len('approve')]}bad%20key/skip", headers=headers) as answer:
            assert answer.status == 404
        async with session.post(f"{url}/skip", headers=headers) as answer:  # no body: all optional
            assert answer.status == 200 and (await answer.json())["data"]["status"] == "paused"


def test_the_blocking_client_steps(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(TWO_STEPS)
        started = client.start("two-steps", variables={"amount": 1})
        poll_s = 0
        while {e.key: e.status for e in client.elements(started.executionID).items}.get("approve") != "running":
            poll_s += 1
            assert poll_s < 10_000, "approve never started"
        client.pause(started.executionID)
        assert client.retry_element(started.executionID, "approve").status == "paused"
        assert client.fail(started.executionID, "approve", "no", type="Rejected").caught == "rejected"
        assert [e.elementKey for e in client.move(started.executionID, "main", "done").stack] == ["done"]
        assert client.skip(started.executionID, "done").stack == []
        client.resume(started.executionID)
        with pytest.raises(InvalidTransition):
            client.complete(started.executionID, "approve", 1)
        with pytest.raises(InvalidTransition):
            client.run_now(started.executionID, "approve")
