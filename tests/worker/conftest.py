"""A real server in a thread (tokens tok-a and tok-b) for the worker's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from procengine.client import AsyncClient
from procengine.settings import Settings
from tests.support.live_server import live_server, tenant_settings


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    with live_server(tenant_settings(settings)) as url:
        yield url


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server_url, "tok-a", timeout=10) as client:
        yield client
