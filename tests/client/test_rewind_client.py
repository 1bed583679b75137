"""Rewind in place over HTTP, through the clients (issue 22, point 2): a paused, failed or cancelled execution goes
back to a kept checkpoint, same id, paused there, with its variables patched if asked; resume goes on from it and
the elements after it run again; the log keeps everything and says `rewound`; the refusals (409 while running or
completed, 404 for a checkpoint not kept or another tenant's execution, 422 for a bad body)."""

from __future__ import annotations

from typing import Any

import aiohttp

from procengine.client import AsyncClient, Client, InvalidTransition, NotFound
from tests.support.api import BASE
from tests.support.polling import poll

COUNTER = {
    "key": "rewind-counter",
    "threads": [{"key": "main", "elements": [
        {"key": "start", "type": "set-variable", "set": {"count": "1"}, "next": "first"},
        {"key": "first", "type": "wait-signal", "signal": "go", "into": "given", "next": "bump"},
        {"key": "bump", "type": "set-variable", "set": {"count": "count + 1"}, "next": "check"},
        {"key": "check", "type": "if-condition", "condition": "given.ok", "then": "second", "else": "broken"},
        {"key": "second", "type": "wait-signal", "signal": "again", "next": "done"},
        {"key": "broken", "type": "set-variable", "set": {"x": "missing_name + 1"}, "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip
"""`broken` fails (ExpressionError: no `missing_name`) when the signal `go` says `{"ok": false}`."""


async def _until(client: AsyncClient, execution_id: int, status: str) -> None:
    async def read() -> str:
        return (await client.status(execution_id)).status

    await poll(read, lambda found: found == status, within=10)


async def _element(client: AsyncClient, execution_id: int, key: str, status: str) -> None:
    async def read() -> dict[str, str]:
        return {e.key: e.status for e in (await client.elements(execution_id)).items}

    await poll(read, lambda found: found.get(key) == status, within=10)


async def _seq_before(client: AsyncClient, execution_id: int, element: str) -> int:
    """The kept checkpoint written when `element` had started: the one to go back to."""
    kept = (await client.checkpoints(execution_id)).items
    return min(c.seq for c in kept if c.elementKey == element)


async def _variables(client: AsyncClient, execution_id: int) -> dict[str, Any]:
    memory = (await client.state(execution_id)).memory
    assert memory is not None
    variables: dict[str, Any] = memory["variables"]
    return variables


async def test_a_failed_execution_goes_back_and_on_with_a_patch(client_a: AsyncClient) -> None:
    await client_a.register(COUNTER)
    started = await client_a.start("rewind-counter")
    execution_id = started.executionID
    await _element(client_a, execution_id, "first", "running")
    await client_a.signal(execution_id, "go", {"ok": False})
    await _until(client_a, execution_id, "failed")
    back_to = await _seq_before(client_a, execution_id, "first")

    rewound = await client_a.rewind(execution_id, back_to, variables={"note": "retried"}, reason="wrong answer")

    assert (rewound.status, rewound.checkpoint, rewound.rewoundFrom) == ("paused", back_to, "failed")
    assert rewound.pendingNodes == 1
    assert set(rewound.variables["removed"]) == {"given"} and rewound.variables["added"] == {"note": "retried"}
    assert rewound.variables["changed"] == {"count": {"from": 2, "to": 1}}
    status = await client_a.status(execution_id)
    assert status.status == "paused" and status.timing.stoppedAt is None
    assert await _variables(client_a, execution_id) == {"count": 1, "note": "retried"}
    listed = await client_a.executions(status="paused")
    assert execution_id in [item.executionID for item in listed.items]  # moved in the indexes too

    await client_a.resume(execution_id)
    await _element(client_a, execution_id, "first", "running")  # waits for the signal again
    await client_a.signal(execution_id, "go", {"ok": True})
    await _element(client_a, execution_id, "second", "running")
    assert (await _variables(client_a, execution_id))["count"] == 2
    log = [entry.event for entry in (await client_a.log(execution_id)).items]
    assert "failed" in log and log.index("rewound") > log.index("failed")  # the log keeps what happened before
    [entry] = [e for e in (await client_a.log(execution_id)).items if e.event == "rewound"]
    assert entry.detail["checkpoint"] == back_to and entry.detail["reason"] == "wrong answer"
    assert (entry.detail["from"], entry.detail["to"]) == ("failed", "paused")


async def test_a_paused_and_a_cancelled_execution_go_back(client_a: AsyncClient) -> None:
    await client_a.register(COUNTER)
    for end in ("pause", "cancel"):
        started = await client_a.start("rewind-counter")
        execution_id = started.executionID
        await _element(client_a, execution_id, "first", "running")
        await client_a.signal(execution_id, "go", {"ok": True})
        await _element(client_a, execution_id, "second", "running")
        back_to = await _seq_before(client_a, execution_id, "first")
        if end == "pause":
            await client_a.pause(execution_id)
        else:
            await client_a.cancel(execution_id)
        rewound = await client_a.rewind(execution_id, back_to)
        assert rewound.rewoundFrom == ("paused" if end == "pause" else "cancelled")
        assert (await client_a.status(execution_id)).status == "paused"
        assert (await _variables(client_a, execution_id))["count"] == 1
        await client_a.resume(execution_id)
        await _element(client_a, execution_id, "first", "running")


async def test_refusals(server_url: str, client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(COUNTER)
    started = await client_a.start("rewind-counter")
    execution_id = started.executionID
    await _element(client_a, execution_id, "first", "running")
    seq = await _seq_before(client_a, execution_id, "first")
    try:
        await client_a.rewind(execution_id, seq)
        raise AssertionError("a running execution cannot be rewound")
    except InvalidTransition as exc:
        assert exc.current_status == "running"
    await client_a.pause(execution_id)
    for ask in (client_a.rewind(execution_id, 10_000), client_b.rewind(execution_id, seq)):
        try:
            await ask
            raise AssertionError("expected 404")
        except NotFound:
            pass
    assert (await client_a.status(execution_id)).status == "paused"
    url = f"{server_url}{BASE}/executions/processes/{execution_id}/rewind"
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer tok-a"}) as session:
        for body in ({}, {"checkpoint": 0}, {"checkpoint": "1"}, {"checkpoint": seq, "variables": []}):
            async with session.post(url, json=body) as answer:
                assert answer.status == 422, body
    refused = [e for e in (await client_a.log(execution_id)).items if e.event == "refused"]
    assert any(e.detail.get("to") == "paused" and "rewind" in str(e.detail) for e in refused)


def test_the_blocking_client_rewinds(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(COUNTER)
        started = client.start("rewind-counter")
        client.cancel(started.executionID)
        seq = client.checkpoints(started.executionID).items[-1].seq
        assert client.rewind(started.executionID, seq).status == "paused"
