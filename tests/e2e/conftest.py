"""The front door over a real engine and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers

BASE = "/api/v1/process-engine"
TOKENS = {"tok-a": "tenant-a", "tok-b": "tenant-b"}
WAIT_PROCESS_BODY = {
    "key": "approval",
    "name": "Wait for approval",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "set", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "wait"},
                {"key": "wait", "type": "wait-signal", "signal": "approve", "into": "approval", "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}


class Api:
    """A client that speaks as one tenant and unwraps the envelope."""

    def __init__(self, client: TestClient[Any, Any], token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.client.request(method, BASE + path, headers=headers, **kwargs)
        return response.status, await response.json()

    async def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        status, body = await self.call(method, path, **kwargs)
        assert status == expect, body
        assert body["success"] is True
        return body["data"]


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


async def wait_for_status(api: Api, execution_id: int, status: str) -> dict[str, Any]:
    """Poll the status endpoint (what a client does) until it shows `status`."""
    async with asyncio.timeout(10):
        while True:
            data: dict[str, Any] = await api.ok("GET", f"/executions/processes/{execution_id}/status")
            if data["status"] == status:
                return data
            await asyncio.sleep(0.02)
