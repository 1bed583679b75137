"""Group commit: the execution writes submitted in one event-loop turn go to Redis in one pipeline.

A thousand actors each checkpointing after every element would otherwise cost a thousand separate round
trips (and a thousand trips through redis-py's per-command machinery). Each write is still its own
commit.lua call — atomic and fenced on its own — only the transport is shared. A caller that is cancelled
while waiting does not cancel its write: once submitted, a write is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from procengine.errors import NotReplicated

log = logging.getLogger(__name__)

_Item = tuple[list[str], list[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        *,
        max_batch: int = 256,
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
        self.max_in_flight = max_in_flight
        self._queue: deque[_Item] = deque()
        self._flushes: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self.batches = 0
        self.calls = 0

    async def call(self, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        self.calls += 1
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_ready)  # after everything else of this turn
        return await future

    def _flush_ready(self) -> None:
        self._scheduled = False
        while self._queue and len(self._flushes) < self.max_in_flight:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
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
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        unreplicated = self._unreplicated(acknowledged)
        for (_, _, future), result in zip(batch, results, strict=True):
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
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                # execute_command, not pipe.evalsha: redis-py's cluster pipeline refuses the latter by name, yet routes
                # EVALSHA by its keys (those of one execution share a slot); on one server the two are the same
                pipe.execute_command("EVALSHA", self.script.sha, len(keys), *keys, *args)
            if self.replicas:
                pipe.wait(self.replicas, self.replica_timeout_ms)
            results: list[Any] = await pipe.execute(raise_on_error=False)
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
