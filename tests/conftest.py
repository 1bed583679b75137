"""Fixtures shared by the whole suite: one real redis-server per session, a client and a key prefix per test.

Tests never interfere through Redis because every test gets its own key prefix (and so its own sequences,
control channel and node keys). A test that kills or restarts Redis must not touch the shared server: it
takes its own from `redis_server_factory`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from procengine.settings import Settings
from procengine.store.embedded import RedisServer
from tests.support.redis_servers import RedisServerFactory


@pytest.fixture(autouse=True)
def _no_procengine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read PROCENGINE_* variables: a developer's environment must not change what tests see."""
    for name in list(os.environ):
        if name.startswith("PROCENGINE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The one redis-server of the session (a free port, AOF under a tmp dir); stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[RedisServerFactory]:
    """Start dedicated redis-servers (for tests that kill or restart them); all are stopped after the test."""
    servers: list[RedisServer] = []

    def make(*extra_args: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", extra_args=extra_args)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t{uuid4().hex[:8]}"


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the session's redis-server (bytes in, bytes out), closed after the test."""
    client = Redis.from_url(redis_server.url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings(redis_server: RedisServer, prefix: str, tmp_path: Path) -> Settings:
    """Settings for an engine on the session's Redis under this test's prefix, with short timings."""
    return Settings(
        redis_url=redis_server.url,
        prefix=prefix,
        data_dir=tmp_path / "procengine",
        port=0,
        pause_grace_ms=500,
        node_heartbeat_ms=100,
        node_ttl_ms=500,
        reconcile_interval_ms=200,
        passivate_after_ms=200,
    )
