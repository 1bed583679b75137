"""The Redis client, with retries, timeouts and health checks set explicitly (not left to defaults).

Transient errors (a dropped connection, a timeout) are retried with exponential backoff by redis-py's
Retry before a request fails; what still fails becomes 503 UNAVAILABLE at the front door.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from procengine.metrics import CountingRetry, Metrics
from procengine.settings import Settings


def connect(url: str, settings: Settings, metrics: Metrics | None = None) -> Redis:
    backoff = ExponentialBackoff(cap=1.0, base=0.05)
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        retry=CountingRetry(backoff, settings.redis_retries, metrics)
        if metrics is not None
        else Retry(backoff, settings.redis_retries),
        retry_on_error=[ConnectionError, TimeoutError],
        max_connections=256,
    )
