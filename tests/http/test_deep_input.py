"""Deep input (issue 17, item 6): every body nested deeper than --max-nesting-depth is refused with 422 naming the
limit, and a stored value deeper than anything accepted (written into Redis by hand) still renders.

Before: variables nested 300 levels were accepted (201), a signal 900 deep too (202), and GET .../state answered
500 for ever after (pydantic's serializer stops at 255 levels).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.depth import RENDER_DEPTH, clipped, deeper_than
from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.keys import Keys
from procengine.tasks import builtin_handlers
from tests.support.api import BASE
from tests.support.processes import WAIT_PROCESS

Client = TestClient[Any, Any]
EXECUTIONS = f"{BASE}/executions/processes"
LIMIT = 64  # the default of --max-nesting-depth


def nested(levels: int, leaf: Any = 1) -> Any:
    """`levels` containers in one another (objects and lists in turn) around `leaf`."""
    value = leaf
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return value


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    async with (
        Node(redis, settings, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, settings))) as client,
    ):
        yield client


async def answer(client: Client, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await client.request(method, path, **kwargs)
    return response.status, await response.json()


async def started(client: Client, variables: Any = None) -> tuple[int, Any]:
    assert (await client.post(f"{BASE}/processes", json=WAIT_PROCESS)).status in (200, 201)
    body = {"processKey": "approval", "variables": variables or {"amount": 1}}
    return await answer(client, "POST", EXECUTIONS, json=body)


def refused_for_depth(status: int, body: Any, limit: int = LIMIT) -> bool:
    return status == 422 and f"{limit} levels" in body["error"]["message"]


async def test_start_variables_deeper_than_the_limit_are_422_and_at_the_limit_are_taken(client: Client) -> None:
    status, body = await started(client, {"amount": 1, "deep": nested(300)})
    assert refused_for_depth(status, body), body

    status, body = await started(client, {"amount": 1, "deep": nested(LIMIT - 2)})  # + the body and variables
    assert status == 201, body
    state = await answer(client, "GET", f"{EXECUTIONS}/{body['data']['executionID']}/state")
    assert state[0] == 200


async def test_a_signal_payload_deeper_than_the_limit_is_422(client: Client) -> None:
    status, body = await started(client)
    assert status == 201
    execution = body["data"]["executionID"]

    for levels in (LIMIT + 1, 900, 100_000):
        status, body = await answer(
            client, "POST", f"{EXECUTIONS}/{execution}/signals/other", data=b"[" * levels + b"]" * levels
        )
        assert refused_for_depth(status, body), (levels, body)
    assert (await answer(client, "GET", f"{EXECUTIONS}/{execution}/state"))[0] == 200


async def test_a_definition_deeper_than_the_limit_is_422_as_json_and_as_yaml(client: Client) -> None:
    definition = {**WAIT_PROCESS, "key": "deep", "extra": nested(200)}
    status, body = await answer(client, "POST", f"{BASE}/processes", json=definition)
    assert refused_for_depth(status, body), body

    text = yaml.safe_dump(definition)
    status, body = await answer(
        client, "POST", f"{BASE}/processes", data=text, headers={"Content-Type": "application/yaml"}
    )
    assert refused_for_depth(status, body), body


async def test_yaml_flow_nesting_past_the_interpreter_s_stack_is_422(client: Client) -> None:
    text = "key: x\nextra: " + "[" * 5000 + "]" * 5000
    status, body = await answer(client, "POST", f"{BASE}/processes", data=text, headers={"Content-Type": "text/yaml"})

    assert refused_for_depth(status, body), body


async def test_a_yaml_alias_that_puts_a_shallow_part_deep_is_measured_where_it_lands(client: Client) -> None:
    # the anchored part is 40 deep where written; used under 40 more levels it lands 80 deep
    text = "key: x\nshallow: &part " + "[" * 40 + "]" * 40 + "\ndeep: " + "[" * 40 + "*part" + "]" * 40
    status, body = await answer(client, "POST", f"{BASE}/processes", data=text, headers={"Content-Type": "text/yaml"})

    assert refused_for_depth(status, body), body


async def test_the_limit_is_a_setting(redis: Redis, settings: Settings) -> None:
    settings = settings.model_copy(update={"max_nesting_depth": 10})
    async with (
        Node(redis, settings, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, settings))) as client,
    ):
        status, body = await answer(client, "POST", f"{BASE}/processes", json={"key": "k", "x": nested(10)})
        assert refused_for_depth(status, body, 10), body
        status, body = await answer(client, "POST", f"{BASE}/processes", json={"key": "k", "x": nested(9)})
        assert not refused_for_depth(status, body, 10), body  # 10 deep with the body itself: taken (then validated)


async def test_stored_values_deeper_than_anything_accepted_still_render(
    client: Client, redis: Redis, settings: Settings
) -> None:
    # given an execution whose memory, element output and log detail were written deep straight into Redis
    status, body = await started(client)
    assert status == 201
    execution = body["data"]["executionID"]
    assert (await answer(client, "POST", f"{EXECUTIONS}/{execution}/pause"))[0] == 200  # no checkpoint after ours
    keys = Keys(settings.prefix).execution(execution)
    deep = nested(900)
    memory = msgpack.unpackb(await redis.hget(keys.state, "memory"))
    memory["variables"]["deep"] = deep
    await redis.hset(keys.state, "memory", msgpack.packb(memory))
    elements = await redis.hgetall(keys.elements)
    name, record = next(iter(elements.items()))
    await redis.hset(keys.elements, name, msgpack.packb({**msgpack.unpackb(record), "output": deep}))
    await redis.xadd(keys.log, {"at": "1700000000000", "event": "signal-received", "detail": msgpack.packb(deep)})
    await redis.xadd(keys.log, {"at": "1700000000000", "event": "x", "detail": msgpack.packb({"payload": deep})})

    # when each view is read, then it answers (the deep part cut), never a 500
    status, state = await answer(client, "GET", f"{EXECUTIONS}/{execution}/state")
    assert status == 200, state
    shown = state["data"]["memory"]["variables"]["deep"]
    assert deeper_than(shown, RENDER_DEPTH - 3) and not deeper_than(shown, RENDER_DEPTH)
    assert "not shown" in str(clipped(shown, 1_000))
    status, elements_view = await answer(client, "GET", f"{EXECUTIONS}/{execution}/elements")
    assert status == 200, elements_view
    status, log = await answer(client, "GET", f"{EXECUTIONS}/{execution}/log")
    assert status == 200, log
    assert (await answer(client, "GET", f"{EXECUTIONS}/{execution}/status"))[0] == 200


async def test_a_stored_blob_deeper_than_msgpack_reads_is_state_corrupted_not_500(
    client: Client, redis: Redis, settings: Settings
) -> None:
    status, body = await started(client)
    execution = body["data"]["executionID"]
    assert (await answer(client, "POST", f"{EXECUTIONS}/{execution}/pause"))[0] == 200
    keys = Keys(settings.prefix).execution(execution)
    too_deep = b"\x91" * 5000 + b"\x01"  # 5000 nested one-item arrays: past msgpack's own stack
    await redis.hset(keys.state, "memory", too_deep)
    elements = await redis.hgetall(keys.elements)
    await redis.hset(keys.elements, next(iter(elements)), too_deep)

    status, state = await answer(client, "GET", f"{EXECUTIONS}/{execution}/state")
    assert status == 200 and "error" in state["data"]["memory"], state
    status, elements_view = await answer(client, "GET", f"{EXECUTIONS}/{execution}/elements")
    assert (status, elements_view["error"]["code"]) == (409, "STATE_CORRUPTED")
