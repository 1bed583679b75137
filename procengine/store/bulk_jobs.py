"""Bulk operations as Redis holds them (docs/redis-keys.md): a hash per job, the list of its targets, a stream of its
items' outcomes, in the tenant's slot; and per node the set of the jobs it runs (read when its heartbeat lapses).

A job is owned and fenced like an execution: `owner` and `epoch` in its hash; its progress (bulk_progress.lua) is
written only by its owner at its epoch, and an adoption (bulk_owner.lua) moves the epoch on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from procengine.store.failures import translated
from procengine.store.keys import Keys
from procengine.store.scripts import as_text, script

__all__ = ["BulkJobStore", "ItemOutcome", "Progressed"]

TARGETS_CHUNK = 1000
"""Targets written per RPUSH when a job is created."""


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What one item of a job came to: `outcome` done, refused or failed; `paused_at` the pausedAt a pause gave."""

    execution_id: int
    outcome: str
    reason: str = ""
    paused_at: str = ""


@dataclass(frozen=True, slots=True)
class Progressed:
    """The answer of a progress write: `status` the job's now (None: fenced, or the job is gone)."""

    status: str | None


class BulkJobStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._progress = script(redis, "bulk_progress")
        self._steer = script(redis, "bulk_steer")
        self._owner = script(redis, "bulk_owner")

    # --- creating --------------------------------------------------------------------------------------------

    @translated
    async def new_id(self) -> int:
        return int(await self.redis.incr(self.keys.sequence("bulk")))

    @translated
    async def create(self, tenant: str, job_id: int, fields: dict[str, str | int], targets: list[int]) -> None:
        """Write the targets, then the job, then its place in the tenant's list (a job is never seen without its
        targets). The owner's set holds the job before this (`own`), as an execution's `owned` set does."""
        key = self.keys.bulk_targets(tenant, job_id)
        for first in range(0, len(targets), TARGETS_CHUNK):
            await self.redis.rpush(key, *targets[first : first + TARGETS_CHUNK])
        # in this order, not in a MULTI (a Redis Cluster client may not take one): a job whose ZADD was lost runs
        # and is read by its id all the same, and the list never names a job that is not there
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys.bulk_job(tenant, job_id), mapping=dict(fields))  # type: ignore[arg-type]
            pipe.zadd(self.keys.bulk_jobs(tenant), {str(job_id): job_id})
            await pipe.execute()

    # --- reading ---------------------------------------------------------------------------------------------

    @translated
    async def read(self, tenant: str, job_id: int) -> dict[str, str]:
        """The job's hash ({} if there is none in this tenant)."""
        raw = await self.redis.hgetall(self.keys.bulk_job(tenant, job_id))
        return {as_text(name): as_text(value) for name, value in raw.items()}

    @translated
    async def targets(self, tenant: str, job_id: int, start: int, count: int) -> list[int]:
        raw = await self.redis.lrange(self.keys.bulk_targets(tenant, job_id), start, start + count - 1)
        return [int(value) for value in raw]

    @translated
    async def items(self, tenant: str, job_id: int, after: str | None, count: int) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` outcomes after the stream id `after` (None: from the first), oldest first."""
        low = "-" if after is None else f"({after}"
        raw: Any = await self.redis.xrange(self.keys.bulk_items(tenant, job_id), low, "+", count=count)
        return [(as_text(entry), {as_text(k): as_text(v) for k, v in fields.items()}) for entry, fields in raw]

    @translated
    async def job_ids(self, tenant: str, before: int | None, count: int) -> list[int]:
        """The tenant's job ids, newest first, strictly older than `before`."""
        top = f"({before}" if before is not None else "+inf"
        raw: Any = await self.redis.zrevrangebyscore(self.keys.bulk_jobs(tenant), top, "-inf", start=0, num=count)
        return [int(member) for member in raw]

    @translated
    async def many(self, tenant: str, job_ids: list[int]) -> list[dict[str, str]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.bulk_job(tenant, job_id))
            rows = await pipe.execute()
        return [{as_text(name): as_text(value) for name, value in row.items()} for row in rows]

    @translated
    async def paused_by(self, tenant: str, job_id: int) -> dict[int, str]:
        """executionID -> pausedAt of the executions a bulk pause paused (HSCAN: a large job is read in pieces)."""
        found: dict[int, str] = {}
        async for name, value in self.redis.hscan_iter(self.keys.bulk_paused(tenant, job_id), count=1000):
            found[int(name)] = as_text(value)
        return found

    @translated
    async def paused_at(self, tenant: str, job_id: int, execution_id: int) -> str | None:
        raw = await self.redis.hget(self.keys.bulk_paused(tenant, job_id), str(execution_id))
        return None if raw is None else as_text(raw)

    # --- the owner's writes ----------------------------------------------------------------------------------

    @translated
    async def progress(
        self, tenant: str, job_id: int, owner: str, epoch: int, cursor: int, now_ms: int, now_iso: str,
        outcomes: list[ItemOutcome],
    ) -> Progressed:  # fmt: skip
        keys = [
            self.keys.bulk_job(tenant, job_id),
            self.keys.bulk_items(tenant, job_id),
            self.keys.bulk_seen(tenant, job_id),
            self.keys.bulk_paused(tenant, job_id),
        ]
        encoded = json.dumps([[str(o.execution_id), o.outcome, o.reason, o.paused_at] for o in outcomes])
        answer = await self._progress(keys=keys, args=[owner, epoch, cursor, now_ms, now_iso, encoded])
        return Progressed(as_text(answer[1]) if as_text(answer[0]) == "OK" else None)

    @translated
    async def steer(self, tenant: str, job_id: int, verb: str, node_id: str, now_iso: str) -> list[str]:
        """bulk_steer.lua's answer: ["OK", status, "1"|"0", epoch] | ["CONFLICT", status] | ["MISSING"]."""
        answer = await self._steer(keys=[self.keys.bulk_job(tenant, job_id)], args=[verb, node_id, now_iso])
        return [as_text(part) for part in answer]

    @translated
    async def change_owner(
        self, tenant: str, job_id: int, verb: str, expected_owner: str, expected_epoch: int, value: str, now_iso: str
    ) -> list[str]:
        """bulk_owner.lua's answer: ["OK", epoch] | ["RUNNING"] | ["NO", status, owner] | ["MISSING"]."""
        args: list[str | int] = [verb, expected_owner, expected_epoch, value, now_iso]
        answer = await self._owner(keys=[self.keys.bulk_job(tenant, job_id)], args=args)
        return [as_text(part) for part in answer]

    @translated
    async def set_field(self, tenant: str, job_id: int, name: str, value: str) -> bool:
        """Set a field once (HSETNX): False if it was set."""
        return bool(await self.redis.hsetnx(self.keys.bulk_job(tenant, job_id), name, value))

    # --- which node runs which job ---------------------------------------------------------------------------

    @translated
    async def own(self, node_id: str, tenant: str, job_id: int) -> None:
        await self.redis.sadd(self.keys.node_bulk_jobs(node_id), f"{job_id}:{tenant}")

    @translated
    async def disown(self, node_id: str, tenant: str, job_id: int) -> None:
        await self.redis.srem(self.keys.node_bulk_jobs(node_id), f"{job_id}:{tenant}")

    @translated
    async def owned(self, node_id: str) -> list[tuple[str, int]]:
        """(tenant, jobID) of the jobs in a node's set."""
        found: list[tuple[str, int]] = []
        async for member in self.redis.sscan_iter(self.keys.node_bulk_jobs(node_id), count=1000):
            head, _, tenant = as_text(member).partition(":")
            if head.isdigit() and tenant:
                found.append((tenant, int(head)))
        return found
