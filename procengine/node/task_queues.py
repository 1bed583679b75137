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
from procengine.store.scripts import as_text
from procengine.store.task_queues import LockedTask, QueueStats, Settled, TaskQueueStore

__all__ = ["TaskQueues"]

log = logging.getLogger(__name__)

QUEUE_CACHE: Final = 100_000
LOCKS_READ_MS: Final = 200
"""How long a node goes by the earliest lock expiries it read before it reads them again."""
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
        self._queue_of: dict[tuple[str, str], str] = {}
        """The queue of each task a fetch here answered (saves a read at its complete; bounded, oldest dropped)."""
        self._stuck_checked: dict[tuple[str, str], int] = {}
        self._locks_read: dict[tuple[str, tuple[str, ...]], tuple[int, dict[str, int]]] = {}

    # --- fetch --------------------------------------------------------------------------------

    async def fetch(self, caller: Caller, request: FetchRequest) -> FetchResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.waitMs / 1000
        queues = list(dict.fromkeys(request.queues))
        locked: list[LockedTask] = []
        self.in_flight_fetches += 1
        try:
            while True:
                check_cancelled()
                earliest = await self._earliest_locks(caller.tenant, queues)
                now = self.clock.now_ms()
                expired = [queue for queue, at in earliest.items() if at <= now]
                left_ms = int((deadline - loop.time()) * 1000)
                block_ms: int | None = None
                if left_ms > 0:  # a long poll, never past the next lock expiry (its task is offered again then)
                    coming = [at - now + 1 for at in earliest.values() if at > now]
                    block_ms = max(1, min([left_ms, self._slice_ms, *coming]))
                # one step a hang-up does not split: what is read is locked (or left for STUCK_MS)
                step = asyncio.ensure_future(self._take(caller.tenant, queues, request, block_ms, expired))
                locked.extend(await asyncio.shield(step))
                if locked or left_ms <= 0:
                    break
        finally:
            self.in_flight_fetches -= 1
        for task in locked:
            self._queue_of[(caller.tenant, task.task_id)] = task.fields.get("queue", "")
        while len(self._queue_of) > QUEUE_CACHE:
            del self._queue_of[next(iter(self._queue_of))]
        return FetchResult(tasks=[_view(task) for task in locked])

    async def _take(
        self, tenant: str, queues: list[str], request: FetchRequest, block_ms: int | None, expired: list[str]
    ) -> list[LockedTask]:
        worker, most, lock_ms = request.workerId, request.max, request.lockMs
        locked: list[LockedTask] = []
        for queue in expired:
            if len(locked) < most:
                now = self.clock.now_ms()
                locked += await self.store.lock_expired(tenant, queue, worker, most - len(locked), lock_ms, now)
        for queue in queues:
            if len(locked) < most and self._stuck_due(tenant, queue):
                stuck = await self.store.stuck(tenant, queue, worker, STUCK_MS, most - len(locked))
                if stuck:
                    locked += await self.store.lock_new(tenant, queue, worker, stuck, lock_ms, self.clock.now_ms())
        if len(locked) >= most:
            return locked
        read = await self.store.read_new(tenant, queues, worker, most - len(locked), None if locked else block_ms)
        now = self.clock.now_ms()
        for queue, entries in read.items():
            locked += await self.store.lock_new(tenant, queue, worker, entries, lock_ms, now)
        return locked

    async def _earliest_locks(self, tenant: str, queues: list[str]) -> dict[str, int]:
        """The queues' earliest lock expiries, read at most every LOCKS_READ_MS per queue set on this node: a lock
        that expires is taken again by a fetch within that much more (a fetch that finds tasks costs no read)."""
        key = (tenant, tuple(queues))
        now = self.clock.now_ms()
        cached = self._locks_read.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        earliest = await self.store.earliest_locks(tenant, queues)
        self._locks_read[key] = (now + LOCKS_READ_MS, earliest)
        if len(self._locks_read) > QUEUE_CACHE:
            self._locks_read.clear()
        return earliest

    def _stuck_due(self, tenant: str, queue: str) -> bool:
        """Whether to look for entries read and never locked on this queue now (at most every STUCK_MS / 2 per node:
        they are rare, a node dying between a read and its lock)."""
        now = self.clock.now_ms()
        if now < self._stuck_checked.get((tenant, queue), 0):
            return False
        self._stuck_checked[(tenant, queue)] = now + STUCK_MS // 2
        return True

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
        tenant = caller.tenant
        queue = self._queue_of.get((tenant, task_id)) or await self.store.queue_of(tenant, task_id)
        if queue is None:
            raise NotFound(f"task {task_id} not found")
        now = self.clock.now_ms()
        here = action != "extend" and self.external.waits_here(tenant, task_id)  # taken here for its runner
        arg: int | str = lock_ms if action == "extend" else int(here)
        answer = await self.store.settle(tenant, queue, task_id, action, token, now, lock_ms=arg, result=result)
        said = answer[0]
        if said == "missing":
            raise NotFound(f"task {task_id} not found")
        if said == "stale":
            raise TaskLockStale(
                f"task {task_id}: this lock is not held any more (it expired, the task was taken again)"
            )
        if said == "revoked":
            raise TaskLockRevoked(
                f"task {task_id}: the engine revoked this lock (its execution was paused past the grace or cancelled, "
                "or the attempt timed out); the result was not taken"
            )
        if said == "settled":
            raise TaskAlreadySettled(f"task {task_id} was completed or failed with this lock already; nothing changed")
        if action == "extend":
            return answer
        self._queue_of.pop((tenant, task_id), None)
        log.info("task %s: %s by %s (tenant %s, request %s)", task_id, action, caller.by, tenant, caller.request_id)
        status = "completed" if action == "complete" else "failed"
        if here:
            if not self.external.settled(tenant, task_id, _settled_of(status, result or {})):
                # its runner went while the result was written (cut short): settled again, for the re-run to take
                await self.store.settle(tenant, queue, task_id, "untake", token, now, lock_ms=status)
        else:
            await self.store.publish_settled(tenant, task_id)  # its runner waits on another node
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
                tenant, _, task_id = as_text(message.get("data", b"")).partition(" ")
                if task_id:
                    self.external.settled(tenant, task_id)
        finally:
            self.listening.clear()
            await pubsub.aclose()


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
        traceContext=json.loads(f.get("traceContext") or "{}"),
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


def _settled_of(status: str, result: dict[str, str]) -> Settled:
    """What a runner takes, from the result a complete or fail wrote (as store/task_queues.py reads it back)."""
    output = result.get("output")
    return Settled(
        status,
        json.loads(output) if output else None,
        result.get("error", ""),
        result.get("type", ""),
        result.get("retryable", "1") != "0",
    )
