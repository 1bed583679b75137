"""--durability replicated: an acknowledged transition is on the replica already; without a replica in time,
the request answers 503 and the actor goes on from what the master holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import NotReplicated
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.batching import ScriptBatcher
from procengine.store.embedded import RedisServer
from procengine.store.executions import NEW, Commit, ExecutionStore, Outcome
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, start, wait_element
from tests.support.processes import WAIT
from tests.support.redis_servers import RedisServerFactory


async def _in_sync(replica: Redis) -> None:
    async with asyncio.timeout(20):
        while (await replica.info("replication")).get("master_link_status") != "up":  # noqa: ASYNC110 - Redis's state
            await asyncio.sleep(0.05)


async def test_without_a_replica_a_write_is_not_acknowledged(redis: Redis, prefix: str) -> None:
    batcher = ScriptBatcher(redis, Scripts.register(redis).release_key, replicas=1, replica_timeout_ms=50)
    await redis.set(f"{prefix}:k", "v")
    try:
        with pytest.raises(NotReplicated, match="not acknowledged by 1 replica"):
            await batcher.call([f"{prefix}:k"], ["v"])
    finally:
        await batcher.aclose()
    assert await redis.exists(f"{prefix}:k") == 0  # applied on the master all the same: it may or may not last


@pytest.mark.slow
async def test_an_acknowledged_transition_is_on_the_replica(
    redis_server_factory: RedisServerFactory, settings: Settings, handlers: HandlerRegistry, tmp_path: Path
) -> None:
    master = redis_server_factory()
    replica = RedisServer(tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port)))
    replica.start()
    configured = settings.model_copy(
        update={"redis_url": master.url, "durability": "replicated", "redis_timeout_s": 0.5}
    )
    primary = Redis.from_url(master.url)
    copy = Redis.from_url(replica.url)
    try:
        await _in_sync(copy)
        async with Node(primary, configured, handlers) as engine:
            execution_id = await start(engine, WAIT)
            await wait_element(engine, execution_id, "w")
            key = engine.keys.execution(execution_id).execution

            paused = await engine.pause(CALLER, execution_id, ControlRequest(reason="r"))

            assert paused.status == "paused"
            assert await copy.hget(key, "status") == b"paused"  # no later than the answer

            replica.stop()
            with pytest.raises(NotReplicated):
                await engine.resume(CALLER, execution_id, ControlRequest())
            # the master has the write; the actor reloaded it and says what the master says
            assert await primary.hget(key, "status") == b"running"
            assert (await engine.status(CALLER, execution_id)).status == "running"
    finally:
        replica.stop()
        await primary.aclose()
        await copy.aclose()


async def test_a_write_that_wrote_nothing_answers_as_it_is_without_a_replica(redis: Redis, prefix: str) -> None:
    """FENCED, CONFLICT or EXPIRED wrote nothing, so nothing can be lost: their answer (a 409, say) stands."""
    store = ExecutionStore(
        redis, Keys(prefix), Scripts.register(redis), log_maxlen=100, replicas=1, replica_timeout_ms=50
    )
    try:
        with pytest.raises(NotReplicated):  # the creation wrote: it may not last
            await store.commit(9, Commit(execution={"status": "running", "epoch": 1}), epoch=None, expect=NEW)

        again = await store.commit(9, Commit(execution={"status": "running"}), epoch=None, expect=NEW)
        fenced = await store.commit(9, Commit(execution={"x": 1}), epoch=7, expect="running")

        assert (again.outcome, fenced.outcome) == (Outcome.CONFLICT, Outcome.FENCED)
    finally:
        await store.aclose()


async def test_a_start_no_replica_acknowledged_exists_and_its_key_finds_it(make_engine: EngineFactory) -> None:
    engine = await make_engine(durability="replicated", redis_timeout_s=0.2)
    summary, _ = await engine.register_process(CALLER, WAIT)
    request = StartRequest(processID=summary.processID, idempotencyKey="order-1")

    with pytest.raises(NotReplicated, match=r"execution (\d+) was started, but written on the Redis master") as caught:
        await engine.start_execution(CALLER, request)

    execution_id = int(caught.value.message.split()[1])
    assert await engine.store.load(execution_id) is not None  # not undone
    assert execution_id in await engine.store.page(engine.keys.executions("default"), None, 10)
    repeat, created = await engine.start_execution(CALLER, request)
    assert (repeat.executionID, created) == (execution_id, False)
