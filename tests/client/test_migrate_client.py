"""Migration to another version over HTTP, through the clients (issue 23, point 3): a dry run answers the plan and its
problems (200) and writes nothing; a plan with problems is a 422 listing each; applied, the execution goes on in
the new version; 409 while running, 404 for another tenant's execution or a version the process lacks, 422 for a
bad body."""

from __future__ import annotations

import aiohttp

from procengine.client import AsyncClient, Client, InvalidTransition, NotFound, ValidationError
from tests.support.api import BASE
from tests.support.polling import poll


def _order(stamp: str | None, wait: str = "approve") -> dict[str, object]:
    elements: list[dict[str, object]] = [
        {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": wait},
        {"key": wait, "type": "wait-signal", "signal": "go", "next": "stamp" if stamp else "done"},
        {"key": "done", "type": "end"},
    ]
    if stamp:
        elements.insert(2, {"key": "stamp", "type": "set-variable", "set": {"stamped": stamp}, "next": "done"})
    return {"key": "migrating", "threads": [{"key": "main", "elements": elements}]}


async def _until(client: AsyncClient, execution_id: int, status: str) -> None:
    async def read() -> str:
        return (await client.status(execution_id)).status

    await poll(read, lambda found: found == status, within=10)


async def _paused(client: AsyncClient) -> int:
    await client.register(_order(None))
    execution_id = (await client.start("migrating")).executionID

    async def waiting() -> bool:
        return any(e.key == "approve" for e in (await client.elements(execution_id)).items)

    await poll(waiting, bool, within=10)
    await client.pause(execution_id)
    return execution_id


async def test_a_dry_run_then_the_migration_and_the_new_version_runs(client_a: AsyncClient) -> None:
    execution_id = await _paused(client_a)
    await client_a.register(_order("n + 41", wait="approval"))

    planned = await client_a.migrate(execution_id, 2, dry_run=True)
    assert (planned.applied, len(planned.problems)) == (False, 1)
    assert "has no element 'approve'" in planned.problems[0]
    try:
        await client_a.migrate(execution_id, 2, reason="no mapping")
        raise AssertionError("a plan with problems is refused")
    except ValidationError as exc:
        assert exc.problems == planned.problems
    assert (await client_a.status(execution_id)).processVersion == 1

    migrated = await client_a.migrate(execution_id, 2, mapping={"approve": "approval"}, reason="ship the stamp")

    assert (migrated.applied, migrated.status, migrated.fromVersion, migrated.toVersion) == (True, "paused", 1, 2)
    assert [(s.lane, s.from_, s.to) for s in migrated.plan] == [("main", "approve", "approval")]
    await client_a.resume(execution_id)
    await client_a.signal(execution_id, "go", None)
    await _until(client_a, execution_id, "completed")
    memory = (await client_a.state(execution_id)).memory
    assert memory is not None and memory["variables"]["stamped"] == 42
    entry = next(e for e in (await client_a.log(execution_id)).items if e.event == "migrated")
    assert entry.detail["mapping"] == {"approve": "approval"} and entry.detail["reason"] == "ship the stamp"


async def test_refusals(server_url: str, client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(_order(None))
    await client_a.register(_order("1"))
    execution_id = (await client_a.start("migrating")).executionID
    try:
        await client_a.migrate(execution_id, 1, dry_run=True)
        raise AssertionError("a running execution cannot be migrated")
    except InvalidTransition as exc:
        assert exc.current_status == "running"
    await client_a.pause(execution_id)
    for ask in (client_a.migrate(execution_id, 9), client_b.migrate(execution_id, 1, dry_run=True)):
        try:
            await ask
            raise AssertionError("expected 404")
        except NotFound:
            pass
    url = f"{server_url}{BASE}/executions/processes/{execution_id}/migrate"
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer tok-a"}) as session:
        for body in ({}, {"version": 0}, {"version": "1"}, {"version": 1, "mapping": []}, {"version": 1, "x": 1}):
            async with session.post(url, json=body) as answer:
                assert answer.status == 422, body
    assert (await client_a.status(execution_id)).processVersion == 2


def test_the_blocking_client_migrates(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(_order(None))
        started = client.start("migrating")
        client.pause(started.executionID)
        client.register(_order("1"))
        assert client.migrate(started.executionID, 2, dry_run=True).problems == []
        migrated = client.migrate(started.executionID, 2)
        assert (migrated.applied, client.status(started.executionID).processVersion) == (True, 2)
