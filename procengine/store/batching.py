"""Group commit: the execution writes submitted in one event-loop turn go to Redis in one pipeline.

A thousand actors each checkpointing after every element would otherwise cost a thousand separate round
trips (and a thousand trips through redis-py's per-command machinery). Each write is still its own
commit.lua call — atomic and fenced on its own — only the transport is shared. A caller that is cancelled
while waiting does not cancel its write: once submitted, a write is sent.

On one server (and Sentinel's master) a batch is one pre-encoded write: each call is packed into RESP once, when
it is submitted, the batch's bytes are joined and written on one pooled connection, and its replies are read
under one deadline for the whole batch (redis-py's pipeline packed every command again and opened a timeout per
reply: a fifth of the engine's CPU per step, issue 21). The connection's own retry policy (the pool's Retry) and
hiredis parser are kept. The batcher keeps the connections its batches used (at most `max_in_flight`) instead of
checking one out of the pool and back for every batch: redis-py's blocking pool takes a lock, a timer and a check
of the socket each way, which cost as much as the round trip itself over a unix socket (a sequential chain pays it
at every checkpoint). A connection whose batch failed goes back to the pool, which connects it again when needed.
A Redis Cluster routes each call by its keys' slot, so there the batch stays a redis-py cluster pipeline. A batch
holds at most `max_batch` calls and about `max_batch_bytes`, so that one read and parse of its replies does not
hold the event loop long.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from procengine.errors import NotReplicated

log = logging.getLogger(__name__)

_Item = tuple[list[str], list[Any], "asyncio.Future[Any]", bytes]
"""keys, arguments, the caller's future, and the call packed in RESP (b"" on a Cluster, which packs its own)."""


def _bulk(value: Any) -> bytes:
    """One RESP bulk string, as redis-py encodes the value (str as UTF-8, numbers as their repr)."""
    data = value if isinstance(value, bytes) else (value if isinstance(value, str) else repr(value)).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack_command(*parts: Any) -> bytes:
    """A command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(map(_bulk, parts))


class ScriptBatcher:
    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        *,
        max_batch: int = 256,
        max_batch_bytes: int = 1 << 20,
        max_in_flight: int = 4,
        replicas: int = 0,
        replica_timeout_ms: int = 1000,
        wrote: Callable[[Any], bool] = lambda result: True,
    ) -> None:
        self.redis = redis
        self.script = script
        self.wrote = wrote
        """Whether a script's result says it wrote: only those can be lost, so only those fail NotReplicated."""
        self.replicas = replicas
        """With replicas > 0 each pipeline ends with WAIT: it answers only once that many replicas have every write
        of the pipeline (WAIT covers what its own connection sent before it), else NotReplicated."""
        self.replica_timeout_ms = replica_timeout_ms
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_in_flight = max_in_flight
        self._packed = not isinstance(redis, RedisCluster)
        """One server: calls are packed here and a batch is one write (a Cluster routes them: its pipeline)."""
        self._head = b""  # "EVALSHA <sha>" in RESP, once the sha is known
        self._queue: deque[_Item] = deque()
        self._flushes: set[asyncio.Task[None]] = set()
        self._connections: list[Any] = []
        """Connections of the pool kept between batches (each batch takes one, one batch at a time on each)."""
        self._scheduled = False
        self.batches = 0
        self.calls = 0

    async def call(self, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future, self._pack(keys, args) if self._packed else b""))
        self.calls += 1
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_ready)  # after everything else of this turn
        return await future

    def _pack(self, keys: list[str], args: list[Any]) -> bytes:
        if not self._head:
            self._head = _bulk("EVALSHA") + _bulk(self.script.sha)
        parts = [b"*%d\r\n" % (3 + len(keys) + len(args)), self._head, _bulk(len(keys))]
        for value in (*keys, *args):  # _bulk inlined: this runs for every argument of every write
            data = value if isinstance(value, bytes) else (value if isinstance(value, str) else repr(value)).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)

    def _next_batch(self) -> list[_Item]:
        """The oldest calls, up to `max_batch` of them and about `max_batch_bytes` (at least one)."""
        batch = [self._queue.popleft()]
        size = len(batch[0][3])
        while self._queue and len(batch) < self.max_batch and size + len(self._queue[0][3]) <= self.max_batch_bytes:
            item = self._queue.popleft()
            size += len(item[3])
            batch.append(item)
        return batch

    def _flush_ready(self) -> None:
        self._scheduled = False
        while self._queue and len(self._flushes) < self.max_in_flight:
            batch = self._next_batch()
            task = asyncio.create_task(self._flush(batch), name="group-commit")
            self._flushes.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if self._queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_ready)

    async def _flush(self, batch: list[_Item]) -> None:
        self.batches += 1
        try:
            results, acknowledged = await self._execute(batch)
            missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if missing:  # Redis restarted or flushed its scripts: load once, send those again
                await self.redis.script_load(self.script.script)
                # the second WAIT covers the first pipeline's writes too: a replica has all or none of them
                again, acknowledged = await self._execute([batch[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
        except Exception as exc:
            for _, _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        unreplicated = self._unreplicated(acknowledged)
        for (_, _, future, _), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            elif unreplicated is not None and self.wrote(result):
                future.set_exception(unreplicated)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[_Item]) -> tuple[list[Any], Any]:
        """The scripts' results, and WAIT's answer (None without replicas)."""
        if self._packed:
            return await self._execute_packed(batch)
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _, _ in batch:
                # execute_command, not pipe.evalsha: redis-py's cluster pipeline refuses the latter by name, yet routes
                # EVALSHA by its keys (those of one execution share a slot); on one server the two are the same
                pipe.execute_command("EVALSHA", self.script.sha, len(keys), *keys, *args)
            if self.replicas:
                pipe.wait(self.replicas, self.replica_timeout_ms)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results, results.pop() if self.replicas else None

    async def _execute_packed(self, batch: list[_Item]) -> tuple[list[Any], Any]:
        """One write of the batch's bytes on one pooled connection, its replies read under one deadline; tried again
        on a lost connection as redis-py's pipeline does (each call carries its commit token: a resent write that
        had landed is not applied twice)."""
        payload = b"".join(item[3] for item in batch)
        count = len(batch)
        if self.replicas:
            payload += pack_command("WAIT", self.replicas, self.replica_timeout_ms)
            count += 1
        pool = self.redis.connection_pool
        if self._connections:
            connection = self._connections.pop()
        else:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        deadline = connection.socket_timeout

        async def attempt() -> list[Any]:
            async with asyncio.timeout(deadline):
                await connection.send_packed_command(payload)
                replies: list[Any] = []
                for _ in range(count):
                    try:  # math.inf: no timeout of its own, the batch's deadline holds
                        replies.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:  # this call's error (NOSCRIPT, ...): the others' stand
                        replies.append(exc)
                return replies

        async def failed(_: Exception) -> None:
            await connection.disconnect()

        try:
            results: list[Any] = await connection.retry.call_with_retry(attempt, failed)
        except BaseException as exc:
            if isinstance(exc, TimeoutError | asyncio.CancelledError):
                await connection.disconnect()  # replies may still come: the connection cannot be reused
            await pool.release(connection)  # the pool checks (and connects) it again before it is used
            if isinstance(exc, TimeoutError):
                raise RedisTimeout(f"the group commit's {count} replies took more than {deadline} s") from None
            raise
        self._connections.append(connection)  # every reply read: ready for the next batch as it is
        return results, results.pop() if self.replicas else None

    def _unreplicated(self, acknowledged: Any) -> NotReplicated | None:
        """The error for the writes of a pipeline whose WAIT fell short (None: replicated, or no replicas asked)."""
        if self.replicas and (isinstance(acknowledged, Exception) or acknowledged < self.replicas):
            return NotReplicated(
                f"written on the Redis master but not acknowledged by {self.replicas} replica(s) within "
                f"{self.replica_timeout_ms} ms ({acknowledged!r}): it may be lost if the master fails now"
            )
        return None

    async def aclose(self) -> None:
        """Wait for the writes already submitted."""
        while self._flushes or self._queue:
            if self._queue and not self._flushes:
                self._flush_ready()
            flushes = set(self._flushes)
            await asyncio.gather(*flushes, return_exceptions=True)
            # Done, but their done-callbacks (_flushed) may not have run: since Python 3.13 awaiting gather over tasks
            # that are all done does not yield to the loop, and waiting for the callbacks here would spin for ever.
            self._flushes -= flushes
        connections, self._connections = self._connections, []
        for connection in connections:
            await self.redis.connection_pool.release(connection)
