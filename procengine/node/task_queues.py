"""External task workers, the node's side (docs/workers.md): fetch (a long poll on the tenant's queues), complete,
fail and extend; the channel that tells a waiting runner on another node that its task was settled; the queues'
figures for metrics and the console.

A fetch first takes tasks whose locks have expired (the lock set, read by due time), then the queues' new entries
(`XREADGROUP`, non-blocking, then blocking in slices shorter than the Redis socket timeout and never past the
earliest lock expiry, so an expiring lock is offered within the wait). Reading an entry and locking its task are
one step that a client hanging up does not cut in two (`asyncio.shield`); an entry a crashed node read and never
locked is claimed again once it has been idle `STUCK_MS` (`XAUTOCLAIM`).

A complete or fail is one script (task_settle.lua) checked against the caller's lock: the result is durable with
the answer. The runner that waits for the task (actors/external.py) takes it and checkpoints the element's outcome
like any task's, in its own fenced commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio import Redis

from procengine.actors.external import ExternalTasks
from procengine.api.service import Caller
from procengine.api.task_views import (
    ExtendResult,
    FetchedTask,
    FetchRequest,
    FetchResult,
    QueueList,
    QueueView,
    SettleResult,
    TaskCompleteRequest,
    TaskExtendRequest,
    TaskFailRequest,
)
from procengine.errors import (
    NotFound,
    StoreFailed,
    TaskAlreadySettled,
    TaskLockRevoked,
    TaskLockStale,
)
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock, iso
from procengine.runtime.metrics import Metrics
from procengine.store.failures import store_errors
from procengine.store.keys import Keys
from procengine.store.task_queues import LockedTask, QueueStats, TaskQueueStore

__all__ = ["TaskQueues"]

log = logging.getLogger(__name__)

STUCK_MS: Final = 60_000
"""An entry read by a fetch but whose task was never locked (the node died in between) is claimed again after this."""


class TaskQueues:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        store: TaskQueueStore,
        external: ExternalTasks,
        clock: Clock,
        redis_timeout_s: float,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.external = external
        self.clock = clock
        self._slice_ms = max(50, int(min(redis_timeout_s / 2, 1.0) * 1000))
        self.listening = asyncio.Event()
        """Set while the node hears the `tasks:settled` channel (tests wait on it)."""
        self.in_flight_fetches = 0

    # --- fetch --------------------------------------------------------------------------------

    async def fetch(self, caller: Caller, request: FetchRequest) -> FetchResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.waitMs / 1000
        queues = list(dict.fromkeys(request.queues))
        locked: list[LockedTask] = []
        first = True
        self.in_flight_fetches += 1
        try:
            while True:
                check_cancelled()
                left_ms = int((deadline - loop.time()) * 1000)
                block_ms: int | None = None
                if not first:
                    if left_ms <= 0:
                        break
                    block_ms = min(left_ms, self._slice_ms)
                    earliest = await self.store.earliest_lock(caller.tenant, queues)
                    if earliest is not None:
                        block_ms = max(1, min(block_ms, earliest - self.clock.now_ms() + 1))
                # one step a hang-up does not split: what is read is locked (or left for STUCK_MS)
                step = asyncio.ensure_future(self._take(caller.tenant, queues, request, block_ms, first))
                locked.extend(await asyncio.shield(step))
                first = False
                if locked:
                    break
        finally:
            self.in_flight_fetches -= 1
        return FetchResult(tasks=[_view(task) for task in locked])

    async def _take(
        self, tenant: str, queues: list[str], request: FetchRequest, block_ms: int | None, first: bool
    ) -> list[LockedTask]:
        worker, most, lock_ms = request.workerId, request.max, request.lockMs
        locked: list[LockedTask] = []
        for queue in queues:
            if len(locked) >= most:
                break
            now = self.clock.now_ms()
            locked += await self.store.lock_expired(tenant, queue, worker, most - len(locked), lock_ms, now)
            if first and len(locked) < most:
                stuck = await self._stuck(tenant, queue, worker, most - len(locked))
                if stuck:
                    locked += await self.store.lock_new(tenant, queue, worker, stuck, lock_ms, now)
        if len(locked) >= most:
            return locked
        read = await self.store.read_new(tenant, queues, worker, most - len(locked), block_ms)
        now = self.clock.now_ms()
        for queue, entries in read.items():
            locked += await self.store.lock_new(tenant, queue, worker, entries, lock_ms, now)
        return locked

    async def _stuck(self, tenant: str, queue: str, worker: str, most: int) -> list[tuple[str, str]]:
        stream = await self.store.ensure_group(tenant, queue)
        with store_errors():
            answer: Any = await self.redis.xautoclaim(stream, "workers", worker, STUCK_MS, "0-0", count=most)
        entries = answer[1] if answer else []
        found: list[tuple[str, str]] = []
        for entry_id, fields in entries:
            if not fields:
                continue
            task = fields.get(b"task", fields.get("task"))
            found.append((_text(entry_id), _text(task)))
        return found

    # --- complete, fail, extend ---------------------------------------------------------------

    async def complete(self, caller: Caller, task_id: str, request: TaskCompleteRequest) -> SettleResult:
        result = {"output": json.dumps(request.output)}
        await self._settle(caller, task_id, "complete", request.lockToken, result=result)
        return SettleResult(taskId=task_id, status="completed")

    async def fail(self, caller: Caller, task_id: str, request: TaskFailRequest) -> SettleResult:
        result = {"error": request.error, "type": request.type, "retryable": "1" if request.retryable else "0"}
        await self._settle(caller, task_id, "fail", request.lockToken, result=result)
        return SettleResult(taskId=task_id, status="failed")

    async def extend(self, caller: Caller, task_id: str, request: TaskExtendRequest) -> ExtendResult:
        answer = await self._settle(caller, task_id, "extend", request.lockToken, lock_ms=request.lockMs)
        return ExtendResult(taskId=task_id, lockExpiresAt=iso(int(answer[1])))

    async def _settle(
        self,
        caller: Caller,
        task_id: str,
        action: str,
        token: str,
        *,
        lock_ms: int = 0,
        result: dict[str, str] | None = None,
    ) -> list[str]:
        queue = await self.store.queue_of(caller.tenant, task_id)
        if queue is None:
            raise NotFound(f"task {task_id} not found")
        now = self.clock.now_ms()
        answer = await self.store.settle(
            caller.tenant, queue, task_id, action, token, now, lock_ms=lock_ms, result=result
        )
        said = answer[0]
        if said == "missing":
            raise NotFound(f"task {task_id} not found")
        if said == "stale":
            raise TaskLockStale(
                f"task {task_id}: this lock is no longer held (it expired and the task was taken again)"
            )
        if said == "revoked":
            raise TaskLockRevoked(
                f"task {task_id}: the engine revoked this lock (its execution was paused past the grace or cancelled, "
                "or the attempt timed out); the result was not taken"
            )
        if said == "settled":
            raise TaskAlreadySettled(f"task {task_id} was completed or failed with this lock already; nothing changed")
        if action != "extend":
            log.info(
                "task %s %sd by %s (tenant %s, request %s)",
                task_id,
                action,
                caller.by,
                caller.tenant,
                caller.request_id,
            )
            self.external.settled(caller.tenant, task_id)  # its runner, if it waits on this node
            await self.store.publish_settled(caller.tenant, task_id)  # ... or on another
        return answer

    # --- queues -------------------------------------------------------------------------------

    async def queues(self, caller: Caller) -> QueueList:
        stats = await self.store.stats(caller.tenant, self.clock.now_ms())
        return QueueList(items=[_queue_view(s) for s in stats])

    async def stats(self, tenants: list[str]) -> list[QueueStats]:
        now = self.clock.now_ms()
        found: list[QueueStats] = []
        for tenant in tenants:
            found += await self.store.stats(tenant, now)
        return found

    async def refresh_metrics(self, metrics: Metrics, tenants: list[str]) -> None:
        """The queues' gauges, from Redis (O(queues): a few commands per queue of each tenant)."""
        for found in await self.stats(tenants):
            labels = (found.tenant, found.queue)
            metrics.queue_depth.labels(*labels).set(found.depth)
            metrics.queue_oldest.labels(*labels).set(found.oldest_waiting_ms / 1000)
            metrics.queue_in_flight.labels(*labels).set(found.in_flight)
            metrics.queue_locks_expired.labels(*labels).set(found.locks_expired)

    # --- the settled channel ------------------------------------------------------------------

    async def listen_forever(self, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        backoff = 0.05
        while True:
            check_cancelled()
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (StoreFailed, OSError, ConnectionError) as exc:
                check_cancelled()
                self.listening.clear()
                log.warning("tasks:settled channel lost (%s); again in %.2fs", exc, backoff)
                await sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            with store_errors():
                await pubsub.subscribe(self.keys.task_settled)
            self.listening.set()
            while True:
                check_cancelled()
                with store_errors():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        await pubsub.ping()
                        continue
                tenant, _, task_id = _text(message.get("data", b"")).partition(" ")
                if task_id:
                    self.external.settled(tenant, task_id)
        finally:
            self.listening.clear()
            await pubsub.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _view(task: LockedTask) -> FetchedTask:
    f = task.fields
    return FetchedTask(
        taskId=task.task_id,
        lockToken=task.lock_token,
        queue=f.get("queue", ""),
        handler=f.get("handler", ""),
        executionId=int(f.get("executionId", "0")),
        elementKey=f.get("elementKey", ""),
        attempt=int(f.get("attempt", "1")),
        input=json.loads(f.get("input") or "{}"),
        idempotencyKey=f.get("idempotencyKey", ""),
        traceContext={},  # the tracing helper fills it: the attempt's span context, kept in the task's hash
        lockExpiresAt=iso(task.lock_expires_at_ms),
    )


def _queue_view(stats: QueueStats) -> QueueView:
    return QueueView(
        queue=stats.queue,
        depth=stats.depth,
        oldestWaitingMs=stats.oldest_waiting_ms,
        inFlight=stats.in_flight,
        locksExpired=stats.locks_expired,
    )
