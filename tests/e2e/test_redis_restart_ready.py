"""Ready means listening: after a Redis restart `/ready` stays 503 until the control channel is subscribed again,
so that a PUBLISH an operator sends once the node says ready reaches it (issue 19 point 11)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers
from tests.support.polling import poll
from tests.support.redis_servers import RedisServerFactory

RESTARTS = 3


async def test_after_each_redis_restart_ready_comes_only_once_a_publish_reaches_the_node(
    redis_server_factory: RedisServerFactory, settings: Settings
) -> None:
    server = redis_server_factory()
    configured = settings.model_copy(update={"redis_url": server.url, "redis_timeout_s": 0.5, "redis_retries": 2})
    redis = connect(server.url, timeout_s=configured.redis_timeout_s, retries=configured.redis_retries)
    try:
        async with (
            Node(redis, configured, builtin_handlers()) as engine,
            TestClient(TestServer(create_app(engine, configured))) as client,
        ):

            async def ready() -> int:
                return (await client.get("/ready")).status

            await poll(ready, lambda status: status == 200)
            reached = []
            for _ in range(RESTARTS):
                await asyncio.to_thread(server.restart)
                # when /ready says 200 again (the first time it does)
                await poll(ready, lambda status: status == 200, within=20)
                # then a control message published now reaches this node (an unknown execution: dropped, logged)
                reached.append(await redis.publish(engine.keys.control, b'{"executionID": 999999, "command": "pause"}'))
            assert all(receivers >= 1 for receivers in reached), reached
    finally:
        await redis.aclose()
