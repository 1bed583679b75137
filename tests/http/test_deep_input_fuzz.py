"""Deep JSON on every input the front door takes (issue 17's fuzz item): definitions as JSON and as YAML, start
variables, signal payloads and the reason of pause, resume and cancel. Hypothesis builds values of random shape
and depth around the limit and far past it; whatever it sends, no answer is a 5xx, a body deeper than the limit is
422 naming it, one within it is never refused for depth, and the execution's views still render afterwards.

Bounded in `make test` (a fixed seed, a few dozen values); `make fuzz` (FUZZ_LONG=1) sends many more.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any, Final

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from procengine.depth import deeper_than
from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.embedded import RedisServer
from procengine.tasks import builtin_handlers
from tests.support.api import BASE
from tests.support.processes import WAIT_PROCESS

pytestmark = pytest.mark.fuzz

LONG: Final = os.environ.get("FUZZ_LONG") == "1"
LIMIT: Final = 16  # a small limit, so that values around it are cheap to build and to send
EXECUTIONS: Final = f"{BASE}/executions/processes"

_LEAF = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=4)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A chain of lists and objects of a drawn depth (near the limit, or far past it), some levels with siblings."""
    depth = draw(st.one_of(st.integers(0, LIMIT + 3), st.integers(LIMIT + 4, 2000)))
    kinds = draw(st.lists(st.sampled_from(["list", "dict", "list+", "dict+"]), min_size=depth, max_size=depth))
    value = draw(_LEAF)
    for kind in kinds:  # built from the leaf out: no recursion, whatever the depth
        sibling = draw(_LEAF) if kind.endswith("+") else None
        if kind.startswith("list"):
            value = [value] if sibling is None else [sibling, value]
        else:
            value = {"v": value} if sibling is None else {"s": sibling, "v": value}
    return value


def _dump(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except RecursionError:  # json.dumps recurses; past its depth, write the chain by hand
        return _chain(value)


def _chain(value: Any) -> bytes:
    opening: list[bytes] = []
    closing: list[bytes] = []
    while isinstance(value, list | dict):
        if isinstance(value, list):
            opening.append(b"[" + (json.dumps(value[0]).encode() + b"," if len(value) == 2 else b""))
            closing.append(b"]")
            value = value[-1]
        else:
            opening.append(b'{"s":' + json.dumps(value["s"]).encode() + b',"v":' if "s" in value else b'{"v":')
            closing.append(b"}")
            value = value["v"]
    return b"".join(opening) + json.dumps(value).encode() + b"".join(reversed(closing))


class Harness:
    """An engine and its front door on the session's Redis, driven from a sync test by one event loop."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.settings = Settings(
            redis_url=redis_url, prefix=prefix, port=0, max_nesting_depth=LIMIT, passivate_after_ms=200,
            node_heartbeat_ms=100, node_ttl_ms=500, reconcile_interval_ms=200, pause_grace_ms=200,
        )  # fmt: skip
        self.redis_url = redis_url
        self.execution = 0

    async def open(self) -> None:
        self.redis = Redis.from_url(self.redis_url)
        self.engine = Node(self.redis, self.settings, builtin_handlers())
        await self.engine.__aenter__()
        self.client: TestClient[Any, Any] = TestClient(TestServer(create_app(self.engine, self.settings)))
        await self.client.start_server()
        assert (await self.client.post(f"{BASE}/processes", json=WAIT_PROCESS)).status == 201
        started = await self.client.post(EXECUTIONS, json={"processKey": "approval", "variables": {"amount": 1}})
        assert started.status == 201
        self.execution = (await started.json())["data"]["executionID"]

    async def close(self) -> None:
        await self.client.close()
        await self.engine.__aexit__(None, None, None)
        await self.redis.aclose()

    async def send(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        response = await self.client.post(path, data=body, headers={"Content-Type": content_type})
        return response.status, await response.json()

    async def check(self, value: Any) -> None:
        deep = deeper_than(value, LIMIT - 1)  # every input below but the variables puts the value one level in
        base = f"{EXECUTIONS}/{self.execution}"
        sent = {
            "definition (JSON)": await self.send(f"{BASE}/processes", b'{"key":"k","x":' + _dump(value) + b"}"),
            "variables": await self.send(
                EXECUTIONS, b'{"processKey":"approval","variables":{"amount":1,"x":' + _dump(value) + b"}}"
            ),
            "signal": await self.send(f"{base}/signals/other", b'{"x":' + _dump(value) + b"}"),
            "pause reason": await self.send(f"{base}/pause", b'{"reason":' + _dump(value) + b"}"),
            "cancel reason": await self.send(f"{EXECUTIONS}/999999/cancel", b'{"reason":' + _dump(value) + b"}"),
        }
        if not deeper_than(value, 200):  # PyYAML's dumper recurses (3 frames a level): past it, the JSON says it
            document = yaml.safe_dump({"key": "k", "x": value}).encode()
            sent["definition (YAML)"] = await self.send(f"{BASE}/processes", document, "application/yaml")
        for what, (status, body) in sent.items():
            assert status < 500, (what, status, body)
            refused = status == 422 and f"{LIMIT} levels" in body["error"]["message"]
            # (the variables put the value two levels into its body, not one)
            expected = deeper_than(value, LIMIT - 2) if what == "variables" else deep
            assert refused == expected, (what, status, body)
        for view in ("state", "elements", "log", "status"):
            response = await self.client.get(f"{base}/{view}")
            assert response.status == 200, (view, await response.text())
        if sent["pause reason"][0] == 200:
            assert (await self.client.post(f"{base}/resume")).status == 200


@pytest.fixture
def harness(redis_server: RedisServer, prefix: str) -> Iterator[tuple[asyncio.Runner, Harness]]:
    with asyncio.Runner() as runner:
        harness = Harness(redis_server.url, prefix)
        runner.run(harness.open())
        try:
            yield runner, harness
        finally:
            runner.run(harness.close())


@pytest.mark.timeout(3600 if LONG else 120)
def test_deep_json_on_every_input_is_422_past_the_limit_and_never_a_5xx(
    harness: tuple[asyncio.Runner, Harness],
) -> None:
    runner, engine = harness

    @seed(None if LONG else 20261207)  # type: ignore[misc]
    @hypothesis_settings(
        max_examples=400 if LONG else 30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(deep_values())
    def each(value: Any) -> None:
        runner.run(engine.check(value))

    each()
