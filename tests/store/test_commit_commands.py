"""What one checkpoint costs Redis, and the status event that rides in the write that makes it (issue 21)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.store.executions import NEW, Commit, ExecutionStore, LogRecord, Outcome, StatusChange
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts


def _checkpoint() -> Commit:
    return Commit(
        execution={"completedNodes": 3, "failedNodes": 0},
        state={"stack": b"\x90", "memory": b"\x80", "savedAt": "2026-12-07T00:00:00.000Z", "active": 1},
        elements={"s03": {"key": "s03", "status": "completed"}},
        threads={"main": {"completedNodes": 3}},
        log=[LogRecord(1, "element-completed", "s03", {"thread": "main"})],
    )


async def _calls(redis: Redis) -> dict[str, int]:
    stats: Any = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_an_element_checkpoint_is_six_redis_commands(redis: Redis, prefix: str) -> None:
    """One read of the checked fields (HMGET), the commit token in the execution's own HSET, one HSET per other
    hash and the log entry: 6 commands inside commit.lua, where there were 9 (3 HGET, 2 HSET on the execution)."""
    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100)
    try:
        await store.commit(11, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        before = await _calls(redis)
        assert (await store.commit(11, _checkpoint(), epoch=1, expect="running")).outcome is Outcome.OK
        after = await _calls(redis)
    finally:
        await store.aclose()
    inside = {name: after[name] - before.get(name, 0) for name in after if name not in ("evalsha", "info")}
    inside = {name: count for name, count in inside.items() if count}
    assert inside == {"hmget": 1, "hset": 4, "xadd": 1}
    assert await redis.hget(f"{prefix}:exec:{{11}}", "lastCommit")  # the token, in the same HSET


@pytest.mark.parametrize("in_script", [True, False], ids=["one-server", "cluster-beside"])
async def test_a_status_change_is_told_by_its_own_write(redis: Redis, prefix: str, in_script: bool) -> None:
    """On one server the status event is an XADD inside commit.lua (no command of its own); on a Cluster it goes
    right after the OK write. A write that is refused tells nothing."""
    keys = Keys(prefix)
    store = ExecutionStore(redis, keys, Scripts.register(redis), log_maxlen=100, indexes_in_script=in_script)
    try:
        beside: list[tuple[str, int, str, str]] = []
        announce = store.announce

        async def told(tenant: str, execution_id: int, status: str, process_key: str) -> None:
            beside.append((tenant, execution_id, status, process_key))
            await announce(tenant, execution_id, status, process_key)

        store.announce = told  # type: ignore[method-assign]
        created = Commit(execution={"status": "running", "epoch": 1, "tenant": "t"})
        created.announce = StatusChange("t", "running", "chain")
        assert (await store.commit(12, created, epoch=None, expect=NEW)).outcome is Outcome.OK
        stale = Commit(execution={"status": "paused"}, announce=StatusChange("t", "paused", "chain"))
        assert (await store.commit(12, stale, epoch=7, expect="running")).outcome is Outcome.FENCED
    finally:
        await store.aclose()
    events = await redis.xrange(keys.status_events("t"))
    assert [fields for _, fields in events] == [{b"executionID": b"12", b"status": b"running", b"processKey": b"chain"}]
    assert beside == ([] if in_script else [("t", 12, "running", "chain")])
