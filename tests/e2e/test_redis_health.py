"""A Redis that evicts or forgets (issue 17, item 5): the node says so, is not ready, and gives no id twice.

Each test runs an engine on a redis-server of its own, started with the settings under test."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.errors import Unavailable
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.health import StoreHealth, _field
from procengine.store.keys import Keys
from procengine.tasks import builtin_handlers
from tests.support.nodes import CALLER, start, wait_element
from tests.support.polling import poll, until
from tests.support.processes import definition
from tests.support.redis_servers import RedisServerFactory

WAIT = definition({"key": "w", "type": "wait-signal", "signal": "go"})


async def until_not_ready(engine: Node, within: float = 10.0) -> str:
    """Why the engine is not ready, once it is not (the checks run every 50 ms here)."""
    why = await poll(engine.ready, lambda found: found is not None, within=within, every=0.02)
    assert why is not None
    return why


async def until_ready(engine: Node, within: float = 10.0) -> None:
    await poll(engine.ready, lambda why: why is None, within=within, every=0.02)


async def test_an_evicting_redis_makes_the_node_unready_and_refuse_starts(
    redis_server_factory: RedisServerFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
    redis = connect(server.url, timeout_s=2, retries=1)
    configured = settings.model_copy(update={"redis_url": server.url, "store_check_interval_ms": 50})
    try:
        with caplog.at_level(logging.ERROR, logger="procengine.store.health"):
            async with Node(redis, configured, builtin_handlers()) as engine:
                why = await engine.ready()
                assert why is not None and "maxmemory-policy is 'allkeys-lru'" in why
                assert "maxmemory-policy is 'allkeys-lru'" in caplog.text
                summary, _ = await engine.register_process(CALLER, WAIT)
                with pytest.raises(Unavailable, match="not noeviction"):
                    await start(engine, WAIT)

                await redis.config_set("maxmemory-policy", "noeviction")  # what the operator does
                engine.health.check_soon()
                await until_ready(engine)
                assert await start(engine, WAIT) >= 1
                assert summary.processID >= 1
    finally:
        await redis.aclose()


async def test_a_redis_flushed_under_a_running_node_is_lost_data_and_no_id_is_reused(
    redis_server_factory: RedisServerFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory()
    redis = connect(server.url, timeout_s=2, retries=1)
    configured = settings.model_copy(update={"redis_url": server.url, "store_check_interval_ms": 50})
    keys = Keys(configured.prefix)
    try:
        async with Node(redis, configured, builtin_handlers()) as engine:
            ids = [await start(engine, WAIT) for _ in range(3)]
            await wait_element(engine, ids[-1], "w")
            identity = engine.health.identity

            with caplog.at_level(logging.ERROR, logger="procengine.store.health"):
                await redis.flushall()
                why = await until_not_ready(engine)
            assert why.startswith("Redis lost data: ")  # the identity gone, or a counter (whichever read first)
            assert "Redis lost data" in caplog.text
            await until(lambda: not engine.registry.ids(), within=5, every=0.02)  # its actors are stopped
            with pytest.raises(Unavailable, match="Redis lost data"):
                await start(engine, WAIT)
            assert await redis.get(keys.sequence("execution")) is None  # no id was given

            # the operator accepts the loss as the log says: counters past every id issued, the identity back
            await redis.set(keys.sequence("execution"), max(ids))
            await redis.set(keys.sequence("process"), 100)
            await redis.set(keys.store_identity, identity or "")
            await until_ready(engine)
            assert await start(engine, WAIT) > max(ids)
    finally:
        await redis.aclose()


async def test_a_redis_restarted_without_persistence_is_lost_data(
    redis_server_factory: RedisServerFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory("--appendonly", "no", "--save", "")
    redis = connect(server.url, timeout_s=1, retries=3)
    configured = settings.model_copy(update={"redis_url": server.url, "store_check_interval_ms": 50})
    try:
        with caplog.at_level(logging.WARNING, logger="procengine.store.health"):
            async with Node(redis, configured, builtin_handlers()) as engine:
                assert "neither AOF nor RDB" in caplog.text
                first = await start(engine, WAIT)
                await wait_element(engine, first, "w")
                await asyncio.to_thread(server.restart)  # comes back empty
                # not ready at once for the control channel (subscribed again after the restart); then for the loss
                why = await poll(engine.ready, lambda found: found is not None and "lost" in found, within=20)
                assert why is not None and "Redis lost data" in why
                with pytest.raises(Unavailable, match="Redis lost data"):
                    await start(engine, WAIT)
    finally:
        await redis.aclose()


class Hostile:
    """A Redis whose INFO and CONFIG GET answer oddly or not at all."""

    def __init__(self, info: Any, config: Any) -> None:
        self._info, self._config = info, config

    async def info(self, section: str) -> Any:
        if isinstance(self._info, Exception):
            raise self._info
        return self._info

    async def config_get(self, name: str) -> Any:
        if isinstance(self._config, Exception):
            raise self._config
        return self._config


@pytest.mark.parametrize(
    ("info", "config", "evicting"),
    [
        ({"maxmemory_policy": "noeviction"}, None, False),
        ({"maxmemory_policy": "volatile-lru"}, None, True),
        (RuntimeError("NOPERM"), {"maxmemory-policy": "allkeys-lru"}, True),
        (RuntimeError("NOPERM"), RuntimeError("unknown command"), False),  # unknown: a WARNING only
        ({}, {}, False),
        ("not a dict", ["odd"], False),
        ({"maxmemory_policy": {"nested": 1}}, None, False),
        ({"node-a": {"maxmemory_policy": "allkeys-random"}}, None, True),  # a Cluster's answer
        ({"maxmemory_policy": 7}, None, True),
    ],
)
async def test_odd_answers_about_the_policy_never_crash(info: Any, config: Any, evicting: bool) -> None:
    health = StoreHealth(Hostile(info, config), Keys("p"), interval_s=1)  # type: ignore[arg-type]
    await health.check_policy()
    assert (health.unsafe() is not None) is evicting


def test_a_field_of_an_answer() -> None:
    assert _field({b"save": b""}, "save") == ""
    assert _field(None, "save") is None


async def test_the_identity_key_is_written_once(redis: Redis, prefix: str) -> None:
    keys = Keys(prefix)
    one, two = StoreHealth(redis, keys, interval_s=1), StoreHealth(redis, keys, interval_s=1)
    await one.start()
    await two.start()
    assert one.identity == two.identity == (await redis.get(keys.store_identity) or b"").decode()
    assert one.unsafe() is None


async def test_a_counter_behind_an_execution_this_node_ran_is_lost_data(redis: Redis, prefix: str) -> None:
    # given a node that has run execution 9 (adopted, say: its own counter never gave it)
    keys = Keys(prefix)
    health = StoreHealth(redis, keys, interval_s=1)
    await health.start()
    await redis.set(keys.sequence("execution"), 5)

    # when the identity is checked with the highest execution it ran (one number, not the list of its actors)
    await health.check_identity(9)

    # then the counter going back behind it is a loss
    assert health.lost is not None and "counter is 5, behind 9" in health.lost
