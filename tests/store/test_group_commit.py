"""The group commit's promise the actor relies on: a write handed over is sent, even if its caller is cancelled
while it waits for the answer (so the actor needs no shield around its writes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio import connection as redis_connection
from redis.asyncio.connection import Connection

from procengine.errors import StoreUnreachable
from procengine.store.batching import ScriptBatcher, pack_command
from procengine.store.connection import connect
from procengine.store.executions import NEW, Commit, ExecutionStore, Outcome
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts


async def test_a_write_whose_caller_is_cancelled_is_still_applied(redis: Redis, prefix: str) -> None:
    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100)
    try:
        created = await store.commit(7, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        assert created.outcome is Outcome.OK

        writes = [
            asyncio.create_task(
                store.commit(7, Commit(execution={f"field{i}": i}), epoch=1, expect="running"), name=f"write-{i}"
            )
            for i in range(20)
        ]
        await asyncio.sleep(0)  # every write is handed over and waits for its answer
        for task in writes:
            task.cancel()
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert all(isinstance(result, asyncio.CancelledError) for result in results)
        await store.aclose()  # waits for what was handed over

        stored = await redis.hgetall(f"{prefix}:exec:{{7}}")
        assert {f"field{i}".encode(): str(i).encode() for i in range(20)}.items() <= stored.items()
    finally:
        await store.aclose()


async def test_a_packed_call_is_the_command_redis_py_would_send(redis: Redis) -> None:
    """The batch is packed here, not by redis-py: the bytes must be the ones redis-py's own packing gives."""
    script = Scripts.register(redis).commit
    batcher = ScriptBatcher(redis, script)
    keys, args = ["k:{1}", "k:{1}:state"], ["", "running", 100, b"\x00\x81\xa1a\x01", "tok:1", 1.5, "é"]
    expected = b"".join(Connection().pack_command("EVALSHA", script.sha, len(keys), *keys, *args))
    assert batcher._pack(keys, args) == expected
    assert pack_command("WAIT", 1, 1000) == b"".join(Connection().pack_command("WAIT", 1, 1000))


async def test_a_batch_reads_its_replies_under_one_deadline(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timeout context per reply (redis-py's pipeline opened one for each: ~6% of a step's CPU, issue 21)."""
    opened = 0
    real = redis_connection.async_timeout

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return real(*args, **kwargs)

    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100)
    try:
        await store.commit(8, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        monkeypatch.setattr(redis_connection, "async_timeout", counting)
        writes = [store.commit(8, Commit(execution={f"f{i}": i}), epoch=1, expect="running") for i in range(50)]
        results = await asyncio.gather(*writes)
        assert {result.outcome for result in results} == {Outcome.OK}
        assert opened == 0
    finally:
        await store.aclose()


async def test_a_batch_is_bounded_in_bytes(redis: Redis, prefix: str) -> None:
    """Big writes submitted at once go in several batches, so one read and parse of replies stays short."""
    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100)
    store._commits.max_batch_bytes = 64 * 1024
    try:
        await store.commit(9, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        before = store._commits.batches
        big = "x" * 20_000
        writes = [store.commit(9, Commit(state={f"s{i}": big}), epoch=1, expect="running") for i in range(12)]
        results = await asyncio.gather(*writes)
        assert {result.outcome for result in results} == {Outcome.OK}
        assert store._commits.batches - before >= 4  # 12 x 20 kB in batches of at most 64 kB
    finally:
        await store.aclose()


async def test_a_batch_after_a_script_flush_loads_the_script_again(redis: Redis, prefix: str) -> None:
    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100)
    try:
        await redis.script_flush()
        created = await store.commit(10, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        assert created.outcome is Outcome.OK
        assert await redis.hget(f"{prefix}:exec:{{10}}", "status") == b"running"
    finally:
        await store.aclose()


async def test_a_batch_whose_replies_never_come_fails_at_its_deadline() -> None:
    """A server that reads and never answers: the batch fails as unreachable after the socket timeout, once for the
    whole batch, and its connection is not reused."""
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1 << 16):
            received.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}", timeout_s=0.3, retries=0)
    store = ExecutionStore(client, Keys("silent"), Scripts.register(client), log_maxlen=100)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnreachable):
            await asyncio.gather(*(store.commit(i, Commit(execution={"a": 1}), epoch=1, expect="") for i in range(20)))
        assert received.is_set()
        assert time.monotonic() - started < 5
        assert store._commits._connections == []  # not kept for the next batch: back to the pool, disconnected
        assert not client.connection_pool._in_use_connections  # type: ignore[attr-defined]
    finally:
        await store.aclose()
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_sequential_batches_keep_one_connection_instead_of_the_pools_checkout(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone execution's checkpoints, one after the other, take a connection from the pool once: the blocking pool's
    checkout and release (a lock, a timer and a socket check each way) cost as much as a unix-socket round trip."""
    pool = redis.connection_pool
    checkouts = 0
    real = pool.get_connection

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal checkouts
        checkouts += 1
        return await real(*args, **kwargs)

    store = ExecutionStore(redis, Keys(prefix), Scripts.register(redis), log_maxlen=100)
    try:
        await store.commit(11, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)
        monkeypatch.setattr(pool, "get_connection", counting)
        for i in range(20):
            result = await store.commit(11, Commit(execution={f"f{i}": i}), epoch=1, expect="running")
            assert result.outcome is Outcome.OK
        assert checkouts == 0  # the connection of the first batch serves every later one
    finally:
        await store.aclose()
    assert store._commits._connections == []  # given back to the pool on close
