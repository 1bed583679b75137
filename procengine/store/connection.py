"""The Redis client, with pool, retries, timeouts and health checks set explicitly (not left to defaults).

Three kinds of Redis, by the URL's scheme:

- `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`): one server;
- `redis+sentinel://[user:password@]h1:26379,h2:26379/mymaster[/db]`: the master Sentinel names, found again
  after a failover (redis-py's asyncio Sentinel; the password, if any, is the data servers', the sentinels are
  asked without one);
- `redis+cluster://[user:password@]h1:7000,h2:7001`: a Redis Cluster (redis-py's asyncio RedisCluster), every
  key routed to its slot's master. Every Lua script touches keys of one slot (hash tags), see docs/redis-keys.md.

`rediss+sentinel://` and `rediss+cluster://` use TLS; `RedisTls` (`--redis-tls-ca`, `--redis-tls-cert`,
`--redis-tls-key`) gives the CA and client certificate to every connection of each kind, sentinels included.
Transient errors (a dropped connection, a timeout) are retried with exponential backoff by redis-py's Retry
before a request fails; what still fails becomes 503 UNAVAILABLE at the front door. On one server the pool
blocks when every connection is busy, instead of failing with "Too many connections" as redis-py's default
pool does under a burst (LESSONS.md).
"""

from __future__ import annotations

import inspect
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from procengine.runtime.metrics import CountingRetry, Metrics
from procengine.store.redis_url import RedisTls, parse_redis_url

__all__ = ["MAX_CONNECTIONS", "connect"]

MAX_CONNECTIONS = 128


def _no_client_commands() -> dict[str, Any]:
    """The keyword arguments that turn them off, for the redis-py installed (the range allows 5.0.4 and later)."""
    if "driver_info" not in inspect.signature(AbstractConnection.__init__).parameters:
        return {"lib_name": None, "lib_version": None}  # before driver_info (deprecated since)
    off: dict[str, Any] = {"driver_info": None}
    try:
        from redis.maint_notifications import MaintNotificationsConfig  # redis-py 7+ only
    except ImportError:
        return off
    return off | {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


NO_CLIENT_COMMANDS: dict[str, Any] = _no_client_commands()
"""redis-py sends CLIENT commands of its own on connect unless told not to: CLIENT SETINFO (its name and version)
and, since 8, CLIENT MAINT_NOTIFICATIONS (for Redis Enterprise's maintenance events); it ignores their errors.
Redis 7.0 has no CLIENT SETINFO, so an ACL SETUSER naming `+client|setinfo` fails there, and `+client` would also
grant CLIENT KILL and CLIENT LIST: the engine sends neither, and the least-privilege rule (docs/security.md) needs
no CLIENT, the same on Redis 6.2, 7.0 and 7.2+, with no refusal in Redis's ACL LOG."""


def connect(
    url: str, *, timeout_s: float, retries: int, metrics: Metrics | None = None, tls: RedisTls | None = None
) -> Redis:
    """A client of the Redis `url` names (ValueError for a URL that names none). `timeout_s` bounds every socket
    operation; a command that meets a transient error is tried again `retries` times (0 for a one-shot command,
    which should report an unreachable Redis at once). `tls`: the CA and client certificate files, for a
    rediss URL (ValueError with them on a URL without TLS)."""
    target = parse_redis_url(url)
    tls = tls or RedisTls()
    tls.check_url(target)
    tls_files = tls.connection_kwargs()
    backoff = ExponentialBackoff(cap=1.0, base=0.05)
    retry = CountingRetry(backoff, retries, metrics) if metrics else Retry(backoff, retries)
    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 30,
        "retry": retry,
        "retry_on_error": [ConnectionError, TimeoutError],
        **NO_CLIENT_COMMANDS,
    }
    if target.kind == "standalone":
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout_s * 2,  # how long a command may wait for a free connection
            **common,
            **tls_files,
        )
        return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
    if target.kind == "sentinel":
        sentinel = Sentinel(
            list(target.hosts),
            sentinel_kwargs={"socket_timeout": timeout_s, "ssl": target.tls, **tls_files},
            **common,
        )
        master: Redis = sentinel.master_for(
            target.service,
            redis_class=_SentinelManaged,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.tls,
            **tls_files,
        )
        return master
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        max_connections=MAX_CONNECTIONS,  # per node
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        **NO_CLIENT_COMMANDS,
        **tls_files,
    )
    # RedisCluster has the command API of Redis (routed by key) without being one: the store is written against it
    return cast(Redis, cluster)


class _SentinelManaged(Redis):
    """The master's client, which also closes the connections to the sentinels when it is closed."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for client in getattr(manager, "sentinels", []):
            await client.aclose()
