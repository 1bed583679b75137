"""The tenant's indexes by status and process: each execution in exactly the indexes of its status and process,
moved in the write that changes its status (or right beside it on a Redis Cluster), and a filtered list page that
reads only the page whatever the number of executions."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest, StartRequest
from procengine.node.node import Node
from procengine.store import indexes
from procengine.store.executions import Commit
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.processes import definition

WAITING = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="waiting")
QUICK = definition({"key": "a", "type": "set-variable", "set": {"x": "1"}}, key="quick")
FAILING = definition({"key": "f", "type": "task", "handler": "fail", "input": {"message": '"no"'}}, key="failing")
STATUSES = ("running", "paused", "completed", "failed", "cancelled")


async def indexed_as(engine: Node, redis: Redis, execution_id: int, process_id: int) -> set[str]:
    """Which status indexes of the tenant and of the process hold the execution (they must agree)."""
    member = str(execution_id)
    by_tenant = {s for s in STATUSES if await redis.zscore(engine.keys.status_index("default", s), member)}
    by_process = {
        s for s in STATUSES if await redis.zscore(engine.keys.process_status_index("default", process_id, s), member)
    }
    assert by_tenant == by_process
    assert await redis.zscore(engine.keys.executions("default"), member) is not None
    assert await redis.zscore(engine.keys.process_index("default", process_id), member) is not None
    return by_tenant


async def process_of(engine: Node, execution_id: int) -> int:
    return (await engine.status(CALLER, execution_id)).processID


@pytest.mark.parametrize("in_script", [True, False], ids=["in-the-write", "beside-it (Redis Cluster)"])
async def test_every_status_change_moves_the_execution_between_the_indexes(
    make_engine: EngineFactory, redis: Redis, in_script: bool
) -> None:
    engine = await make_engine()
    engine.store.indexes_in_script = in_script
    paused = await start(engine, WAITING)
    pid = await process_of(engine, paused)
    assert await indexed_as(engine, redis, paused, pid) == {"running"}  # as soon as the start has answered
    await wait_element(engine, paused, "w")
    await engine.pause(CALLER, paused, ControlRequest())
    assert await indexed_as(engine, redis, paused, pid) == {"paused"}
    await engine.resume(CALLER, paused, ControlRequest())
    assert await indexed_as(engine, redis, paused, pid) == {"running"}
    await engine.cancel(CALLER, paused, ControlRequest())
    assert await indexed_as(engine, redis, paused, pid) == {"cancelled"}

    completed = await start(engine, QUICK)
    failed = await start(engine, FAILING)
    assert await wait_status(engine, completed, "completed") == "completed"
    assert await wait_status(engine, failed, "failed") == "failed"
    assert await indexed_as(engine, redis, completed, await process_of(engine, completed)) == {"completed"}
    assert await indexed_as(engine, redis, failed, await process_of(engine, failed)) == {"failed"}
    # and the final write noted when each one's retention ends, for the sweeper to take it out of every index
    notes = {note.decode() async for note, _ in redis.zscan_iter(engine.keys.removals("default"))}
    assert f"{completed}:{await process_of(engine, completed)}:completed" in notes


async def test_a_fenced_write_moves_nothing(engine: Node, redis: Redis) -> None:
    """The index edits are checked like the rest of the write: a stale owner's status change is not applied,
    and neither is its move in the indexes."""
    execution_id = await start(engine, WAITING)
    pid = await process_of(engine, execution_id)
    await wait_element(engine, execution_id, "w")
    actor = engine.registry.get(execution_id)
    assert actor is not None
    moves = indexes.status_change(engine.keys, execution_id, actor.fields, "running", "paused", None)
    assert moves  # the write would move it, were it applied
    stale = Commit(execution={"status": "paused"}, index=moves)
    result = await engine.store.commit(execution_id, stale, epoch=actor.epoch - 1, expect="running")
    assert result.outcome.value == "FENCED"
    assert await indexed_as(engine, redis, execution_id, pid) == {"running"}


async def test_a_filtered_page_reads_only_the_page(engine: Node, monkeypatch: pytest.MonkeyPatch, redis: Redis) -> None:
    """300 executions, 2 paused: the page of paused ones reads 2 execution hashes, not the 300 it would scan."""
    summary, _ = await engine.register_process(CALLER, WAITING)
    ids = [
        (await engine.start_execution(CALLER, StartRequest(processID=summary.processID)))[0].executionID
        for _ in range(300)
    ]
    for execution_id in (ids[10], ids[200]):
        await wait_element(engine, execution_id, "w")
        await engine.pause(CALLER, execution_id, ControlRequest())
    read: list[int] = []
    many_fields = engine.store.many_fields

    async def counted(execution_ids: list[int], names: list[str]) -> list[dict[str, str]]:
        read.extend(execution_ids)
        return await many_fields(execution_ids, names)

    monkeypatch.setattr(engine.store, "many_fields", counted)
    first = await engine.list_executions(CALLER, status="paused", process_id=None, limit=1, cursor=None)
    assert [item.executionID for item in first.items] == [ids[200]]
    assert first.nextCursor == str(ids[200])
    second = await engine.list_executions(
        CALLER, status="paused", process_id=summary.processID, limit=5, cursor=first.nextCursor
    )
    assert [item.executionID for item in second.items] == [ids[10]]
    assert second.nextCursor is None
    assert read == [ids[200], ids[10]]


async def test_paging_is_stable_while_executions_change_status(engine: Node) -> None:
    """Each execution shows once at most, newest first, and every one that kept its status throughout shows."""
    summary, _ = await engine.register_process(CALLER, WAITING)
    ids = [
        (await engine.start_execution(CALLER, StartRequest(processID=summary.processID)))[0].executionID
        for _ in range(40)
    ]
    for execution_id in ids:
        await wait_element(engine, execution_id, "w")
    seen: list[int] = []
    cursor: str | None = None
    changed: set[int] = set()
    left_before_shown: set[int] = set()
    while True:
        page: Any = await engine.list_executions(CALLER, status="running", process_id=None, limit=7, cursor=cursor)
        seen += [item.executionID for item in page.items]
        if page.nextCursor is None:
            break
        cursor = page.nextCursor
        # between two pages: one already shown and one not yet shown leave `running`
        await engine.cancel(CALLER, seen[-1], ControlRequest())
        changed.add(seen[-1])
        ahead = min(seen) - 3
        if ahead in ids and ahead not in changed:
            await engine.cancel(CALLER, ahead, ControlRequest())
            changed.add(ahead)
            left_before_shown.add(ahead)
    assert seen == sorted(set(seen), reverse=True)  # newest first, none twice
    assert {i for i in ids if i not in changed} <= set(seen)  # none that stayed running is missed
    assert not left_before_shown & set(seen)  # one that left before its page is not shown
