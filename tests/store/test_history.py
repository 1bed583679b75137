"""The checkpoint history (issue 22): kept in the checkpoint's own write, bounded by count and bytes, fenced,
removed with the execution by retention."""

from __future__ import annotations

import msgpack
import pytest
from redis.asyncio import Redis

from procengine.store.executions import NEW, Commit, ExecutionStore, HistoryBounds, LogRecord, Outcome
from procengine.store.history import HistoryStore, counters, parse_entry
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts

ID = 21


def _checkpoint(step: int, memory: bytes = b"\x80") -> Commit:
    return Commit(
        execution={"completedNodes": step},
        state={"stack": msgpack.packb({"n": step}), "memory": memory, "savedAt": f"2026-12-07T00:00:0{step % 10}.000Z"},
        threads={"main": {"completedNodes": step, "totalNodes": 9}},
        log=[LogRecord(step, "element-completed", f"s{step}", {})],
    )


async def _store(redis: Redis, prefix: str, entries: int = 3, size: int = 10_000) -> ExecutionStore:
    store = ExecutionStore(
        redis, Keys(prefix), Scripts.register(redis), log_maxlen=100, history=HistoryBounds(entries, size)
    )
    await store.commit(ID, Commit(execution={"status": "running", "epoch": 1, "tenant": "t"}), epoch=None, expect=NEW)
    return store


async def test_each_checkpoint_is_kept_in_its_own_write_up_to_the_count(redis: Redis, prefix: str) -> None:
    store = await _store(redis, prefix, entries=3)
    try:
        for step in range(1, 6):
            assert (await store.commit(ID, _checkpoint(step), epoch=1, expect="running")).outcome is Outcome.OK
    finally:
        await store.aclose()
    kept = await HistoryStore(redis, Keys(prefix)).kept(ID)
    assert [c.seq for c in kept] == [3, 4, 5]  # the oldest went first
    assert [c.element_key for c in kept] == ["s3", "s4", "s5"]
    assert msgpack.unpackb(kept[-1].stack) == {"n": 5}
    assert kept[-1].saved_at == "2026-12-07T00:00:05.000Z"
    assert set(kept[-1].threads) == {"main"}
    head = (await redis.lrange(f"{prefix}:exec:{{{ID}}}:history", 0, 0))[0]
    assert counters(head) == (5, sum(c.size for c in kept))  # the list's own counters, first
    fields = await redis.hgetall(f"{prefix}:exec:{{{ID}}}")
    assert not {b"checkpointSeq", b"historyBytes"} & set(fields)  # the execution hash does not grow


async def test_the_byte_budget_drops_the_oldest_and_an_entry_over_it_is_not_kept(redis: Redis, prefix: str) -> None:
    store = await _store(redis, prefix, entries=50, size=500)
    try:
        for step in range(1, 4):
            await store.commit(ID, _checkpoint(step, memory=b"x" * 150), epoch=1, expect="running")
        kept = await HistoryStore(redis, Keys(prefix)).kept(ID)
        assert [c.seq for c in kept] == [2, 3]  # three would be over 500 bytes
        assert sum(c.size for c in kept) <= 500
        await store.commit(ID, _checkpoint(4, memory=b"x" * 600), epoch=1, expect="running")
    finally:
        await store.aclose()
    assert [c.seq for c in await HistoryStore(redis, Keys(prefix)).kept(ID)] == [2, 3]  # 4 alone is over the budget


async def test_a_fenced_write_keeps_nothing(redis: Redis, prefix: str) -> None:
    store = await _store(redis, prefix)
    try:
        assert (await store.commit(ID, _checkpoint(1), epoch=2, expect="running")).outcome is Outcome.FENCED
    finally:
        await store.aclose()
    assert await HistoryStore(redis, Keys(prefix)).kept(ID) == []


async def test_off_keeps_nothing_and_a_write_without_a_snapshot_adds_nothing(redis: Redis, prefix: str) -> None:
    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100, history=HistoryBounds(0, 9))
    try:
        await store.commit(ID, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        await store.commit(ID, _checkpoint(1), epoch=1, expect="running")
    finally:
        await store.aclose()
    assert not await redis.exists(f"{prefix}:exec:{{{ID}}}:history")
    store = await _store(redis, f"{prefix}b")
    try:
        await store.commit(ID, Commit(execution={"pausedBy": "x"}), epoch=1, expect="running")
    finally:
        await store.aclose()
    assert not await redis.exists(f"{prefix}b:exec:{{{ID}}}:history")


async def test_retention_expires_the_history_with_the_execution(redis: Redis, prefix: str) -> None:
    store = await _store(redis, prefix)
    try:
        await store.commit(ID, _checkpoint(1), epoch=1, expect="running")
        final = _checkpoint(2)
        final.expire_ms = 60_000
        await store.commit(ID, final, epoch=1, expect="running")
        history = f"{prefix}:exec:{{{ID}}}:history"
        assert 0 < await redis.pttl(history) <= 60_000
        revived = Commit(execution={"status": "running"}, persist=True)
        await store.commit(ID, revived, epoch=1, expect="running")
        assert await redis.pttl(history) == -1  # a retry's PERSIST keeps it again
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "entry",
    [b"", b"\xc1", msgpack.packb([1, 2, 3]), msgpack.packb([0, b"", b"", b"", b"", []]), msgpack.packb({"a": 1})],
)
def test_an_entry_edited_by_hand_is_left_out(entry: bytes) -> None:
    assert parse_entry(entry) is None
