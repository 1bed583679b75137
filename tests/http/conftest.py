"""The front door over a fake engine, served on a real local socket by aiohttp's test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from procengine.api.service import NodeService
from procengine.http import create_app
from procengine.settings import Settings
from tests.support.api import TOKENS
from tests.support.fake_engine import FakeEngine
from tests.support.front_door import Client, ClientFactory


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def make_client(engine: FakeEngine) -> AsyncIterator[ClientFactory]:
    """Start front doors over `engine` (settings per call); every one is closed after the test."""
    clients: list[Client] = []

    async def make(**settings: Any) -> Client:
        service: NodeService = engine
        client = TestClient(TestServer(create_app(service, Settings(**settings))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> Client:
    """Single-tenant front door: no tokens, everyone is tenant `default`."""
    return await make_client()


@pytest.fixture
async def tenants_client(make_client: ClientFactory) -> Client:
    """Front door with two tokens, one per tenant."""
    return await make_client(api_tokens=TOKENS)
