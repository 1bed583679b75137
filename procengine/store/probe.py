"""Does Redis answer now? A quick, shared PING for the front door, which must tell a client "unavailable" within a
second when Redis hangs, long before the client's own socket timeout and retries give up.

A hung Redis (a stopped process, a network that drops packets) accepts connections and answers nothing; each
command then waits for `redis_timeout_s` on every try. The front door does not shorten those timeouts, which the
engine's own writes and the blocking reads of event streams need; it asks this probe instead whenever a request
is slow, and answers 503 when the probe says Redis is silent.

The PING goes over a connection of the probe's own, taken from the pool at `open()` and kept: a slow request is
often one that holds many of the pool's connections (a batch of 1,000 starts), and a PING queued behind them for a
free connection measured the pool, not Redis. (A Redis Cluster client has no one connection to keep; its PING
shares the cluster's pools.)

Silence is the time the loop could have read an answer and found none: the loop's own work (a large batch's
encoding, a garbage collection) does not count, as the PONG may sit unread in the socket meanwhile, and neither
does the time the machine ran other processes instead of this one. The wait runs in slices of SLICE_S, each one
trip of the loop through its poll of the sockets; a slice counts its wall time less the CPU time this thread
spent in it (`time.thread_time`), and never more than SLICE_S, so that the timeout takes at least
timeout / SLICE_S polls in which an answer could have been read. A hung Redis beside an idle loop is found within
the timeout; a busy loop, or one on a crowded machine, is not taken for a silent Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["SLICE_S", "StoreProbe"]

SLICE_S = 0.05
"""How often a waiting probe looks at its PING."""


class StoreProbe:
    """`answers()`: whether Redis answered a PING within `timeout_s`. One PING at a time, shared by every caller
    while it is out, and its answer reused for `keep_s`, so that a hundred slow requests cost one PING."""

    def __init__(self, redis: Redis, *, timeout_s: float, keep_s: float) -> None:
        # redis-py's single-connection client: the same pool, one connection held from the first command on
        self._redis = redis.client() if isinstance(redis, Redis) else redis
        self.timeout_s = timeout_s
        self._keep_s = keep_s
        self._pending: asyncio.Task[bool] | None = None
        self._answer = True
        self._answered_at = float("-inf")

    @property
    def silent(self) -> bool:
        """The last PING went unanswered (no I/O: what was found, however long ago)."""
        return not self._answer

    async def answers(self) -> bool:
        if time.monotonic() - self._answered_at < self._keep_s:
            return self._answer
        if self._pending is None:
            self._pending = asyncio.create_task(self._ping(), name="store-probe")
            self._pending.add_done_callback(self._settle)
        # shielded: one caller giving up (its request ended) must not cancel the PING the others wait for
        return await asyncio.shield(self._pending)

    async def open(self) -> None:
        """Take the probe's connection now, while the pool has one free (a node's start): a Redis that does not
        answer yet is no error here, the first PING takes one then."""
        if isinstance(self._redis, Redis):
            with contextlib.suppress(RedisError, OSError):
                await self._redis.initialize()

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
        if isinstance(self._redis, Redis):
            await self._redis.aclose(close_connection_pool=False)  # gives the connection back to the pool

    async def _ping(self) -> bool:
        ping = asyncio.ensure_future(self._redis.ping())
        loop = asyncio.get_running_loop()
        waited = 0.0
        try:
            while waited < self.timeout_s:
                started, cpu = loop.time(), time.thread_time()
                await asyncio.wait((ping,), timeout=SLICE_S)
                if ping.done():
                    return not ping.cancelled() and ping.exception() is None and bool(ping.result())
                # the slice's time the loop could have read an answer: not what its own work took, and at most
                # one slice per poll (a process the machine did not run for a while had no chance to read)
                idle = (loop.time() - started) - (time.thread_time() - cpu)
                waited += min(SLICE_S, max(0.0, idle))
            return False  # unreachable, timed out, refused: silent all the same
        finally:
            ping.cancel()  # redis-py drops a connection whose command is cancelled
            await asyncio.gather(ping, return_exceptions=True)

    def _settle(self, task: asyncio.Task[bool]) -> None:
        self._pending = None
        if not task.cancelled():
            self._answer, self._answered_at = task.result(), time.monotonic()
