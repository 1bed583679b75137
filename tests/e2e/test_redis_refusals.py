"""Redis refusing a command a request needs: a clear 503 with the store's reason, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.failures import COUNTER_MAX
from procengine.store.keys import Keys
from procengine.tasks import builtin_handlers
from tests.support.api import BASE, Api
from tests.support.processes import WAIT_PROCESS
from tests.support.redis_servers import RedisServerFactory


async def _refused(api: Api, method: str, path: str, **kwargs: Any) -> tuple[str, dict[str, str]]:
    response = await api.client.request(method, BASE + path, headers=api.headers, **kwargs)
    body = await response.json()
    assert (response.status, body["success"], body["error"]["code"]) == (503, False, "UNAVAILABLE"), body
    assert "Traceback" not in str(body)
    return body["error"]["message"], dict(response.headers)


@pytest.mark.parametrize("counter", ["execution", "thread"])
async def test_a_start_with_an_id_counter_at_its_maximum_is_503_naming_the_counter(
    api_a: Api, redis: Redis, settings: Settings, counter: str
) -> None:
    # given a registered process and an id counter at 2^63-1
    process = await api_a.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    key = Keys(settings.prefix).sequence(counter)
    await redis.set(key, COUNTER_MAX)
    # when a start needs a new id, then 503 says which counter ran out and that a retry will not help
    message, headers = await _refused(api_a, "POST", "/executions/processes", json={"processID": process["processID"]})
    assert key in message and str(COUNTER_MAX) in message and "operator" in message
    assert "Retry-After" not in headers
    # and nothing was created or indexed
    assert (await api_a.ok("GET", "/executions/processes"))["items"] == []
    # its neighbour at max - 1 still works: the last id is usable
    await redis.set(key, COUNTER_MAX - 1)
    started = await api_a.ok("POST", "/executions/processes", json={"processID": process["processID"]}, expect=201)
    assert counter != "execution" or started["executionID"] == COUNTER_MAX
    status = await api_a.ok("GET", f"/executions/processes/{started['executionID']}/status")
    assert status["status"] == "running"


async def test_registering_with_the_process_counter_at_its_maximum_is_503(
    api_a: Api, redis: Redis, settings: Settings
) -> None:
    await redis.set(Keys(settings.prefix).sequence("process"), COUNTER_MAX)
    message, _ = await _refused(api_a, "POST", "/processes", json=WAIT_PROCESS)
    assert "seq:process" in message and "maximum" in message


async def test_a_key_of_the_wrong_type_is_503_with_what_redis_said(
    api_a: Api, redis: Redis, settings: Settings
) -> None:
    # given an execution whose hash an operator overwrote with a string
    process = await api_a.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    start = {"processID": process["processID"], "variables": {"amount": 1}}
    started = await api_a.ok("POST", "/executions/processes", json=start, expect=201)
    execution_id = started["executionID"]
    await api_a.ok("POST", f"/executions/processes/{execution_id}/pause")
    keys = Keys(settings.prefix).execution(execution_id)
    await redis.delete(keys.execution)
    await redis.set(keys.execution, "oops")
    # then the reads that meet it answer 503 with Redis's reason (status may still come from the paused actor's copy)
    for path in ("log", "elements", "state"):
        message, headers = await _refused(api_a, "GET", f"/executions/processes/{execution_id}/{path}")
        assert "WRONGTYPE" in message and headers["Retry-After"] == "5"


async def test_a_store_out_of_memory_is_503_for_writes_and_reads_still_work(
    redis_server_factory: RedisServerFactory, settings: Settings
) -> None:
    server = redis_server_factory()
    configured = settings.model_copy(update={"redis_url": server.url})
    redis = Redis.from_url(server.url)
    try:
        async with (
            Node(redis, configured, builtin_handlers()) as engine,
            TestClient(TestServer(create_app(engine, configured))) as client,
        ):
            api = Api(client, None)
            process = await api.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
            # given Redis at its memory limit with nothing to evict
            await redis.config_set("maxmemory-policy", "noeviction")
            await redis.config_set("maxmemory", 1)
            # then writes are refused with Redis's reason
            message, _ = await _refused(api, "POST", "/processes", json={**WAIT_PROCESS, "name": "v2"})
            assert "(OutOfMemoryError)" in message and "maxmemory" in message
            message, _ = await _refused(api, "POST", "/executions/processes", json={"processID": 1})
            assert "(OutOfMemoryError)" in message
            # and reads go on
            assert (await api.ok("GET", f"/processes/{process['processID']}"))["key"] == "approval"
            await redis.config_set("maxmemory", 0)
            await api.ok("POST", "/executions/processes", json={"processID": 1}, expect=201)
    finally:
        await redis.aclose()
