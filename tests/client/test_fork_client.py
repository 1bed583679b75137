"""Fork (issue 22, point 3): a new execution of the same process version from a kept checkpoint of another (its
latest by default), variables patched, running or paused; answered as a start (201); each log names the other;
tenants stay apart; a checkpoint not kept is 404."""

from __future__ import annotations

from typing import Any

import aiohttp

from procengine.client import AsyncClient, Client, NotFound
from tests.support.api import BASE
from tests.support.polling import poll

ORDER = {
    "key": "fork-order",
    "threads": [{"key": "main", "elements": [
        {"key": "price", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "ok", "into": "approval", "next": "ship"},
        {"key": "ship", "type": "set-variable", "set": {"shipped": "total"}, "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


async def _waiting(client: AsyncClient, execution_id: int) -> None:
    async def read() -> dict[str, str]:
        return {e.key: e.status for e in (await client.elements(execution_id)).items}

    await poll(read, lambda found: found.get("approve") == "running", within=10)


async def _variables(client: AsyncClient, execution_id: int) -> dict[str, Any]:
    memory = (await client.state(execution_id)).memory
    assert memory is not None
    variables: dict[str, Any] = memory["variables"]
    return variables


async def test_fork_from_the_latest_and_from_a_named_checkpoint(client_a: AsyncClient) -> None:
    await client_a.register(ORDER)
    source = (await client_a.start("fork-order", variables={"amount": 10})).executionID
    await _waiting(client_a, source)

    fork = await client_a.fork(source, variables={"amount": 99}, reason="try it with more")
    assert fork.status == "running" and fork.executionID != source
    await _waiting(client_a, fork.executionID)
    assert await _variables(client_a, fork.executionID) == {"amount": 99, "total": 20}  # the checkpoint's total
    await client_a.signal(fork.executionID, "ok", {"by": "ann"})

    async def status() -> str:
        return (await client_a.status(fork.executionID)).status

    await poll(status, lambda found: found == "completed", within=10)
    assert (await _variables(client_a, fork.executionID))["shipped"] == 20
    assert (await client_a.status(source)).status == "running"  # the source goes on as it was

    first = (await client_a.checkpoints(source)).items[-1].seq
    paused = await client_a.fork(source, first, paused=True)
    assert paused.status == "paused"
    assert (await client_a.status(paused.executionID)).status == "paused"
    assert await _variables(client_a, paused.executionID) == {"amount": 10}
    await client_a.resume(paused.executionID)
    await _waiting(client_a, paused.executionID)
    assert (await _variables(client_a, paused.executionID))["total"] == 20

    source_log = [e for e in (await client_a.log(source)).items if e.event == "forked"]
    assert [e.detail["executionID"] for e in source_log] == [fork.executionID, paused.executionID]
    [started] = [e for e in (await client_a.log(fork.executionID)).items if e.event == "started"]
    assert started.detail["forkedFrom"]["executionID"] == source and started.detail["reason"] == "try it with more"
    listed = [item.executionID for item in (await client_a.executions()).items]
    assert {fork.executionID, paused.executionID} <= set(listed)


async def test_refusals(server_url: str, client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(ORDER)
    source = (await client_a.start("fork-order", variables={"amount": 1})).executionID
    await _waiting(client_a, source)
    for ask in (client_a.fork(source, 10_000), client_b.fork(source)):
        try:
            await ask
            raise AssertionError("expected 404")
        except NotFound:
            pass
    url = f"{server_url}{BASE}/executions/processes/{source}/fork"
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer tok-a"}) as session:
        for body in ({"checkpoint": 0}, {"paused": "yes"}, {"variables": [1]}, {"other": 1}):
            async with session.post(url, json=body) as answer:
                assert answer.status == 422, body
        async with session.post(url) as answer:  # no body: from the latest, running
            assert answer.status == 201


def test_the_blocking_client_forks(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(ORDER)
        source = client.start("fork-order", variables={"amount": 2}).executionID
        assert client.fork(source, paused=True).status == "paused"
