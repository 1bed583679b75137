"""The Redis client, with pool, retries, timeouts and health checks set explicitly (not left to defaults).

- A blocking pool: when every connection is busy a command waits for one to come back, instead of failing
  with "Too many connections" as redis-py's default pool does under a burst (LESSONS.md).
- Transient errors (a dropped connection, a timeout) are retried with exponential backoff by redis-py's
  Retry before a request fails; what still fails becomes 503 UNAVAILABLE at the front door.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from procengine.metrics import CountingRetry, Metrics
from procengine.settings import Settings

MAX_CONNECTIONS = 128


def connect(url: str, settings: Settings, metrics: Metrics | None = None) -> Redis:
    backoff = ExponentialBackoff(cap=1.0, base=0.05)
    retry = (
        CountingRetry(backoff, settings.redis_retries, metrics) if metrics else Retry(backoff, settings.redis_retries)
    )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=settings.redis_timeout_s * 2,  # how long a command may wait for a free connection
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
