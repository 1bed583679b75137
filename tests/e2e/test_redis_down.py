"""Redis unreachable: clients get 503 UNAVAILABLE (after redis-py's retries), never a 500; it recovers."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers
from tests.support.api import BASE
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS
from tests.support.redis_servers import RedisServerFactory


async def test_requests_get_503_while_redis_is_down_and_work_again_after(
    redis_server_factory: RedisServerFactory, settings: Settings
) -> None:
    server = redis_server_factory()
    configured = settings.model_copy(update={"redis_url": server.url, "redis_timeout_s": 0.5, "redis_retries": 2})
    redis = connect(server.url, timeout_s=configured.redis_timeout_s, retries=configured.redis_retries)
    await redis.config_set("appendfsync", "always")  # the kill below must not lose what was written before it
    try:
        async with (
            Node(redis, configured, builtin_handlers()) as engine,
            TestClient(TestServer(create_app(engine, configured))) as client,
        ):
            created = await client.post(f"{BASE}/processes", json=WAIT_PROCESS)
            assert created.status == 201
            server.kill()

            for method, path, body in (
                ("GET", "/processes", None),
                ("POST", "/executions/processes", {"processKey": "approval"}),
                ("GET", "/executions/processes/1/status", None),
            ):
                response = await client.request(method, BASE + path, json=body)
                payload: dict[str, Any] = await response.json()
                assert (response.status, payload["error"]["code"]) == (503, "UNAVAILABLE"), payload
                assert "Traceback" not in str(payload)
            assert (await client.get("/ready")).status == 503

            server.restart()
            # ready again once the control channel is subscribed again (tests/e2e/test_redis_restart_ready.py)
            await poll(lambda: client.get("/ready"), lambda response: response.status == 200)
            listed = await client.get(f"{BASE}/processes")
            assert listed.status == 200 and len((await listed.json())["data"]["items"]) == 1
    finally:
        await redis.aclose()
