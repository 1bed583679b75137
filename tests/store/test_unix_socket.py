"""The embedded redis-server over its unix socket: what `procengine serve` uses, and an engine that runs on it."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio.connection import UnixDomainSocketConnection

from procengine.cli.serve import embedded_url
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.embedded import RedisServer
from procengine.tasks import builtin_handlers
from tests.support.nodes import CALLER, start, wait_status
from tests.support.processes import definition


def test_serve_uses_the_embedded_servers_unix_socket_unless_told_tcp(redis_server: RedisServer, tmp_path: Path) -> None:
    default = Settings(data_dir=tmp_path)
    tcp = Settings(data_dir=tmp_path, embedded_unix_socket=False)

    assert embedded_url(redis_server, default) == redis_server.unix_url
    assert embedded_url(redis_server, tcp) == redis_server.url


def test_serve_uses_tcp_when_the_server_has_no_socket(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", unix_socket=False) as server:
        assert embedded_url(server, Settings(data_dir=tmp_path)) == server.url


async def test_an_engine_runs_an_execution_to_its_end_over_the_unix_socket(
    redis_server: RedisServer, settings: Settings
) -> None:
    assert redis_server.unix_url is not None
    redis = connect(redis_server.unix_url, timeout_s=5, retries=1)
    over_unix = settings.model_copy(update={"redis_url": redis_server.unix_url})
    process = definition(
        {"key": "a", "type": "set-variable", "set": {"n": "1"}, "next": "t"},
        {"key": "t", "type": "task", "handler": "echo", "input": {"n": "n + 1"}, "output": "echoed", "next": "end"},
        {"key": "end", "type": "end"},
    )
    try:
        async with Node(redis, over_unix, builtin_handlers()) as engine:
            execution_id = await start(engine, process)

            assert await wait_status(engine, execution_id, "completed") == "completed"
            state = await engine.state(CALLER, execution_id)
            assert state.memory["variables"]["echoed"] == {"n": 2}
        assert redis.connection_pool.connection_class is UnixDomainSocketConnection
    finally:
        await redis.aclose()
