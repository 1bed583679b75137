"""External task queues as Redis holds them (docs/workers.md, docs/redis-keys.md): per tenant and queue a Stream with
the consumer group `workers` and a sorted set of the locks by expiry; per offered attempt a hash, all in the
tenant's slot so that one script may touch them together.

Why a Stream with a consumer group (docs/architecture.md, "External tasks"): `XREADGROUP … BLOCK` is the long-poll
of a fetch without a polling loop; the group's pending list keeps what was delivered and not acknowledged, and the
lock set (read by due time) gives an expired lock's task to the next fetch, which claims its entry; `XACK` (with
`XDEL`) ends an entry when its task is completed, failed or revoked.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from procengine.store.batching import ScriptBatcher
from procengine.store.failures import translated
from procengine.store.keys import Keys
from procengine.store.scripts import as_text, script

__all__ = ["GROUP", "LockedTask", "QueueStats", "Settled", "TaskQueueStore", "TaskRecord"]

GROUP: Final = "workers"
"""The consumer group every queue's stream has; a worker's id is its consumer name."""
TASK_TTL_MS: Final = 7 * 24 * 3600 * 1000
"""How long an offered task's hash lives (renewed when it is offered again)."""
SETTLED_TTL_MS: Final = 24 * 3600 * 1000
"""How long a settled or revoked task's hash stays (a second complete is told what happened)."""


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One attempt of an external task as it is offered."""

    task_id: str
    queue: str
    execution_id: int
    element_key: str
    attempt: int
    handler: str
    input: dict[str, Any]
    idempotency_key: str
    node_id: str
    trace: dict[str, str] = field(default_factory=dict)
    """The W3C trace context of the attempt's span (tracing on), handed to the worker as `traceContext`."""

    def fields(self) -> dict[str, str]:
        return {
            "taskId": self.task_id,
            "queue": self.queue,
            "executionId": str(self.execution_id),
            "elementKey": self.element_key,
            "attempt": str(self.attempt),
            "handler": self.handler,
            "input": json.dumps(self.input),
            "idempotencyKey": self.idempotency_key,
            "node": self.node_id,
            "traceContext": json.dumps(self.trace),
        }


@dataclass(frozen=True, slots=True)
class Settled:
    """A worker's result: `completed` with `output`, or `failed` with `error`, `type` and `retryable`."""

    status: str
    output: Any = None
    error: str = ""
    type: str = ""
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class LockedTask:
    task_id: str
    lock_token: str
    lock_expires_at_ms: int
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class QueueStats:
    tenant: str
    queue: str
    depth: int
    """Tasks offered and not locked by a worker."""
    oldest_waiting_ms: int
    """Age of the oldest of them (0 when there is none)."""
    in_flight: int
    """Tasks a worker holds the lock of."""
    locks_expired: int


def _settled(parts: list[Any]) -> Settled:
    status, output, error, kind, retryable = (as_text(p) for p in parts[:5])
    return Settled(
        status,
        json.loads(output) if output else None,
        error,
        kind,
        retryable != "0",
    )


class TaskQueueStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._offer = script(redis, "task_offer")
        self._lock = script(redis, "task_lock")
        self._settle = script(redis, "task_settle")
        self._take = script(redis, "task_take")
        self._groups: set[str] = set()
        # offers and settles of many actors and requests in one event-loop turn share one pipeline (group commit's
        # transport, store/batching.py): each is still its own atomic script
        self._offers = ScriptBatcher(redis, self._offer)
        self._settles = ScriptBatcher(redis, self._settle)

    async def aclose(self) -> None:
        await self._offers.aclose()
        await self._settles.aclose()

    # --- the engine's side --------------------------------------------------------------------

    @translated
    async def offer(self, tenant: str, task: TaskRecord) -> Settled | None:
        """Offer the attempt (or find it offered); a result a worker gave it already, taken now, if any."""
        keys = [
            self.keys.task(tenant, task.task_id),
            self.keys.task_queue(tenant, task.queue),
            self.keys.task_queues(tenant),
        ]
        pairs = [x for kv in task.fields().items() for x in kv]
        answer = await self._offers.call(keys, [task.queue, TASK_TTL_MS, *pairs])
        if as_text(answer[0]) == "settled":
            return _settled(answer[1:])
        return None

    @translated
    async def take(self, tenant: str, task_id: str) -> Settled | None:
        """The worker's result, taken (None: not settled)."""
        answer = await self._take(keys=[self.keys.task(tenant, task_id)])
        if len(answer) < 5:
            return None
        return _settled(answer)

    @translated
    async def revoke(self, tenant: str, queue: str, task_id: str, now_ms: int) -> str:
        """Take the task off its queue and its worker's lock (`ok`), unless a worker settled it first (its status)."""
        answer = await self._run_settle(tenant, queue, task_id, "revoke", "", now_ms)
        return "ok" if as_text(answer[0]) == "ok" else as_text(answer[-1])

    # --- the workers' side --------------------------------------------------------------------

    async def ensure_group(self, tenant: str, queue: str) -> str:
        stream = self.keys.task_queue(tenant, queue)
        if stream not in self._groups:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._groups.add(stream)
        return stream

    @translated
    async def lock_expired(
        self, tenant: str, queue: str, worker: str, most: int, lock_ms: int, now_ms: int
    ) -> list[LockedTask]:
        """Lock up to `most` tasks of the queue whose locks have expired."""
        locks = self.keys.task_locks(tenant, queue)
        due = await self.redis.zrangebyscore(locks, "-inf", now_ms, start=0, num=most)
        if not due:
            return []
        return await self._lock_tasks(tenant, queue, worker, most, lock_ms, now_ms, [as_text(t) for t in due], [])

    @translated
    async def read_new(
        self, tenant: str, queues: list[str], worker: str, most: int, block_ms: int | None
    ) -> dict[str, list[tuple[str, str]]]:
        """New entries of the queues for this worker: per queue [(entry id, task id)]; blocks up to `block_ms`."""
        streams: dict[Any, Any] = {}
        for queue in queues:
            streams[await self.ensure_group(tenant, queue)] = ">"
        try:
            answer: Any = await self.redis.xreadgroup(GROUP, worker, streams, count=most, block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.clear()  # a stream deleted since: made again at the next fetch
            return {}
        by_stream = {self.keys.task_queue(tenant, q): q for q in queues}
        read: dict[str, list[tuple[str, str]]] = {}
        for stream, entries in answer or []:
            queue = by_stream[as_text(stream)]
            for entry_id, fields in entries:
                task = fields.get(b"task", fields.get("task")) if fields else None
                read.setdefault(queue, []).append((as_text(entry_id), as_text(task or "")))
        return read

    @translated
    async def lock_new(
        self,
        tenant: str,
        queue: str,
        worker: str,
        entries: list[tuple[str, str]],
        lock_ms: int,
        now_ms: int,
    ) -> list[LockedTask]:
        ids = [entry for entry, _ in entries]
        tasks = [task for _, task in entries]
        return await self._lock_tasks(tenant, queue, worker, len(entries), lock_ms, now_ms, tasks, ids, expired=0)

    async def _lock_tasks(
        self,
        tenant: str,
        queue: str,
        worker: str,
        most: int,
        lock_ms: int,
        now_ms: int,
        tasks: list[str],
        entry_ids: list[str],
        expired: int | None = None,
    ) -> list[LockedTask]:
        tokens = [secrets.token_urlsafe(12) for _ in tasks]
        keys = [
            self.keys.task_queue(tenant, queue),
            self.keys.task_locks(tenant, queue),
            self.keys.task_stats(tenant),
            *(self.keys.task(tenant, t) for t in tasks),
        ]
        n_expired = len(tasks) if expired is None else expired
        args: list[str | int] = [now_ms, lock_ms, worker, queue, most, n_expired, *tokens, *entry_ids]
        answer: list[Any] = await self._lock(keys=keys, args=args)
        token_of = dict(zip(tasks, tokens, strict=True))
        locked: list[LockedTask] = []
        for task_id, flat in zip(answer[::2], answer[1::2], strict=True):
            task = as_text(task_id)
            fields = {as_text(k): as_text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
            locked.append(LockedTask(task, token_of[task], now_ms + lock_ms, fields))
        return locked

    @translated
    async def queue_of(self, tenant: str, task_id: str) -> str | None:
        queue = await self.redis.hget(self.keys.task(tenant, task_id), "queue")
        return None if queue is None else as_text(queue)

    @translated
    async def settle(
        self,
        tenant: str,
        queue: str,
        task_id: str,
        action: str,
        token: str,
        now_ms: int,
        *,
        lock_ms: int | str = 0,
        result: dict[str, str] | None = None,
    ) -> list[str]:
        """complete, fail, extend or untake: the script's answer (see task_settle.lua; `lock_ms` is its ARGV[5]: the
        lock's time for extend, 1 for a complete or fail whose runner waits here, the status for untake)."""
        answer = await self._run_settle(tenant, queue, task_id, action, token, now_ms, lock_ms, result)
        return [as_text(a) for a in answer]

    async def _run_settle(
        self,
        tenant: str,
        queue: str,
        task_id: str,
        action: str,
        token: str,
        now_ms: int,
        lock_ms: int | str = 0,
        result: dict[str, str] | None = None,
    ) -> list[Any]:
        keys = [
            self.keys.task(tenant, task_id),
            self.keys.task_queue(tenant, queue),
            self.keys.task_locks(tenant, queue),
        ]
        pairs = [x for kv in (result or {}).items() for x in kv]
        answer: list[Any] = await self._settle(keys=keys, args=[action, token, now_ms, SETTLED_TTL_MS, lock_ms, *pairs])
        return answer

    @translated
    async def earliest_locks(self, tenant: str, queues: list[str]) -> dict[str, int]:
        """Per queue with a lock held, its earliest lock expiry (epoch ms)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zrange(self.keys.task_locks(tenant, queue), 0, 0, withscores=True)
            answers = await pipe.execute()
        return {queue: int(answer[0][1]) for queue, answer in zip(queues, answers, strict=True) if answer}

    @translated
    async def stuck(self, tenant: str, queue: str, worker: str, idle_ms: int, most: int) -> list[tuple[str, str]]:
        """Entries delivered `idle_ms` ago or more, claimed for `worker` (`XAUTOCLAIM`): [(entry id, task id)]."""
        stream = await self.ensure_group(tenant, queue)
        answer: Any = await self.redis.xautoclaim(stream, GROUP, worker, idle_ms, "0-0", count=most)
        found: list[tuple[str, str]] = []
        for entry_id, fields in answer[1] if answer else []:
            if fields:
                found.append((as_text(entry_id), as_text(fields.get(b"task", fields.get("task")))))
        return found

    @translated
    async def publish_settled(self, tenant: str, task_id: str) -> None:
        await self.redis.publish(self.keys.task_settled, f"{tenant} {task_id}")

    # --- what operators see -------------------------------------------------------------------

    @translated
    async def stats(self, tenant: str, now_ms: int) -> list[QueueStats]:
        queues = sorted(as_text(q) for q in await self.redis.smembers(self.keys.task_queues(tenant)))
        if not queues:
            return []
        counters = {as_text(k): int(v) for k, v in (await self.redis.hgetall(self.keys.task_stats(tenant))).items()}
        stats: list[QueueStats] = []
        for queue in queues:
            stream = self.keys.task_queue(tenant, queue)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(stream)
                pipe.zcard(self.keys.task_locks(tenant, queue))
                pipe.xinfo_groups(stream)
                length, in_flight, groups = await pipe.execute(raise_on_error=False)
            if isinstance(length, Exception):
                continue
            if isinstance(groups, Exception):
                groups = []
            last = "0-0"
            pending = 0
            for group in groups:
                if as_text(group.get("name", b"")) == GROUP:
                    last = as_text(group.get("last-delivered-id", "0-0"))
                    pending = int(group.get("pending", 0))
            oldest = 0
            after = await self.redis.xrange(stream, min=f"({last}", count=1)
            if after:
                oldest = max(0, now_ms - int(as_text(after[0][0]).split("-")[0]))
            stats.append(
                QueueStats(
                    tenant,
                    queue,
                    depth=max(0, int(length) - pending),
                    oldest_waiting_ms=oldest,
                    in_flight=int(in_flight),
                    locks_expired=counters.get(f"{queue}:locksExpired", 0),
                )
            )
        return stats
