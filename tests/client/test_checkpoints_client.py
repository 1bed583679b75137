"""The checkpoint history over HTTP, through the clients (issue 22, point 1): each checkpoint of an execution kept
and readable, paged newest first, one decoded as `…/state` shows it, a diff between two; the refusals (404 for a
checkpoint not kept and for another tenant's execution, 422 for a bad query)."""

from __future__ import annotations

import aiohttp

from procengine.client import AsyncClient, Client, NotFound
from tests.support.api import BASE
from tests.support.polling import poll

STEPS = {
    "key": "history-steps",
    "threads": [{"key": "main", "elements": [
        {"key": "price", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "ok", "into": "approval", "next": "bump"},
        {"key": "bump", "type": "set-variable", "set": {"total": "total + 1", "bumped": "true"}, "next": "wait"},
        {"key": "wait", "type": "wait-signal", "signal": "again", "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


async def _element_running(client: AsyncClient, execution_id: int, key: str) -> None:
    async def read() -> dict[str, str]:
        return {e.key: e.status for e in (await client.elements(execution_id)).items}

    await poll(read, lambda found: found.get(key) == "running", within=10)


async def _at_wait(client: AsyncClient) -> int:
    await client.register(STEPS)
    started = await client.start("history-steps", variables={"amount": 20})
    await _element_running(client, started.executionID, "approve")
    await client.signal(started.executionID, "ok", {"by": "ann"})
    await _element_running(client, started.executionID, "wait")
    return started.executionID


async def test_every_checkpoint_is_kept_and_readable(client_a: AsyncClient) -> None:
    execution_id = await _at_wait(client_a)
    kept = await client_a.checkpoints(execution_id)
    seqs = [c.seq for c in kept.items]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 3 and kept.nextCursor is None
    assert all(c.lanes == ["main"] and c.bytes > 0 for c in kept.items)
    newest, oldest = kept.items[0], kept.items[-1]
    assert newest.elementKey == "wait"

    first = await client_a.checkpoint(execution_id, oldest.seq)
    last = await client_a.checkpoint(execution_id, newest.seq)
    assert first.memory is not None and last.memory is not None and last.stack is not None
    assert last.memory["variables"] == {"amount": 20, "total": 41, "approval": {"by": "ann"}, "bumped": True}
    assert [e["element_key"] for e in last.stack["execution_stack"]] == ["wait"]
    state = await client_a.state(execution_id)
    assert (last.stack, last.memory) == (state.stack, state.memory)  # the latest is what the state shows

    diff = await client_a.checkpoint_diff(execution_id, oldest.seq, newest.seq)
    assert diff.fromSeq == oldest.seq and diff.toSeq == newest.seq
    assert set(diff.variables["added"]) >= {"approval", "bumped"}
    assert diff.variables["removed"] == {}
    assert [e["element_key"] for e in diff.stack["added"]] == ["wait"]


async def test_pages_newest_first_with_a_cursor(client_a: AsyncClient) -> None:
    execution_id = await _at_wait(client_a)
    whole = [c.seq for c in (await client_a.checkpoints(execution_id)).items]
    seen: list[int] = []
    cursor = None
    while True:
        page = await client_a.checkpoints(execution_id, limit=1, cursor=cursor)
        seen += [c.seq for c in page.items]
        if page.nextCursor is None:
            break
        cursor = page.nextCursor
    assert seen == whole


async def test_refusals(server_url: str, client_a: AsyncClient, client_b: AsyncClient) -> None:
    execution_id = await _at_wait(client_a)
    for ask in (
        client_a.checkpoint(execution_id, 10_000),
        client_a.checkpoint_diff(execution_id, 1, 10_000),
        client_b.checkpoints(execution_id),  # another tenant's: as if it did not exist
        client_b.checkpoint(execution_id, 1),
    ):
        try:
            await ask
        except NotFound:
            continue
        raise AssertionError("expected 404")
    headers = {"Authorization": "Bearer tok-a"}
    url = f"{server_url}{BASE}/executions/processes/{execution_id}/checkpoints"
    async with aiohttp.ClientSession(headers=headers) as session:
        for params, status in (({"limit": "0"}, 422), ({"cursor": "x"}, 422), ({"since": "1"}, 400)):
            async with session.get(url, params=params) as answer:
                assert answer.status == status, params
        async with session.get(f"{url}/007") as answer:
            assert answer.status == 404


def test_the_blocking_client_reads_them_too(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(STEPS)
        started = client.start("history-steps", variables={"amount": 1})
        kept = client.checkpoints(started.executionID)
        assert kept.items
        one = client.checkpoint(started.executionID, kept.items[0].seq)
        assert one.seq == kept.items[0].seq
        assert client.checkpoint_diff(started.executionID, one.seq, one.seq).variables["changed"] == {}
