"""Fixtures of the client's tests: a real server in a thread (tokens tok-a and tok-b), and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from procengine.client import AsyncClient
from procengine.settings import Settings
from tests.support.live_server import live_server, tenant_settings


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """The root URL of a real server with two tenants' tokens, on this test's key prefix."""
    with live_server(tenant_settings(settings)) as url:
        yield url


@pytest.fixture
async def client_a(server_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server_url, "tok-a") as client:
        yield client


@pytest.fixture
async def client_b(server_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server_url, "tok-b") as client:
        yield client
