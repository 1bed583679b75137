"""The front door over a real engine and a real redis-server (the client that speaks to it: tests/support/api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.api import TOKENS, Api


@pytest.fixture
async def engine(redis: Redis, settings: Settings) -> AsyncIterator[Node]:
    tenant_settings = settings.model_copy(update={"api_tokens": TOKENS, "max_body_bytes": 64 * 1024})
    async with Node(redis, tenant_settings, builtin_handlers()) as engine:
        yield engine


@pytest.fixture
async def client(engine: Node) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(engine, engine.settings)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
def api_a(client: TestClient[Any, Any]) -> Api:
    return Api(client, "tok-a")


@pytest.fixture
def api_b(client: TestClient[Any, Any]) -> Api:
    return Api(client, "tok-b")
