"""The group commit's promise the actor relies on: a write handed over is sent, even if its caller is cancelled
while it waits for the answer (so the actor needs no shield around its writes)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

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
