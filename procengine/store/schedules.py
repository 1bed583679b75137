"""Schedules as Redis holds them (docs/redis-keys.md), all in the tenant's slot: a hash per schedule, the tenant's list,
its due set (scheduleID -> next fire time), its claimed firings (leased, with the time a node may try each) and a
capped stream of each schedule's outcomes.

A firing is claimed (schedule_claim.lua: the due time moves on and the firing is recorded, in one write), then taken
with a lease (schedule_take.lua), then done (schedule_done.lua, fenced by the lease): a node that dies between any two
leaves the firing claimed, and another takes it once the lease lapses. The start it makes is idempotent (keyed by
schedule and fire time), so taking a firing twice starts it once.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from procengine.store.failures import translated
from procengine.store.keys import Keys
from procengine.store.scripts import as_text, script

__all__ = ["OUTCOMES_KEPT", "Due", "ScheduleStore"]

OUTCOMES_KEPT: Final = 50
"""About how many outcomes a schedule's stream keeps (MAXLEN ~)."""


@dataclass(frozen=True, slots=True)
class Due:
    """The earliest time anything of a tenant's schedules is due (None: nothing is)."""

    at_ms: float | None


class ScheduleStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._save = script(redis, "schedule_save")
        self._claim = script(redis, "schedule_claim")
        self._take = script(redis, "schedule_take")
        self._done = script(redis, "schedule_done")
        self._delete = script(redis, "schedule_delete")

    # --- the API's writes ------------------------------------------------------------------------------------

    @translated
    async def new_id(self) -> int:
        return int(await self.redis.incr(self.keys.sequence("schedule")))

    @translated
    async def save(
        self, tenant: str, schedule_id: int, fields: dict[str, str], next_ms: int | None, rev: str | None
    ) -> int:
        """schedule_save.lua: the new rev; 0 missing (or, creating, there already); -1 changed since `rev`."""
        keys = [self.keys.schedule(tenant, schedule_id), self.keys.schedules(tenant), self.keys.schedules_due(tenant)]
        args: list[str | int] = [schedule_id, json.dumps(fields), "" if next_ms is None else next_ms, rev or ""]
        return int(await self._save(keys=keys, args=args))

    @translated
    async def delete(self, tenant: str, schedule_id: int) -> bool:
        keys = [
            self.keys.schedule(tenant, schedule_id),
            self.keys.schedule_outcomes(tenant, schedule_id),
            self.keys.schedules(tenant),
            self.keys.schedules_due(tenant),
        ]
        return bool(await self._delete(keys=keys, args=[schedule_id]))

    @translated
    async def trigger(self, tenant: str, member: str, at_ms: int) -> None:
        """A firing made by hand, to be tried at once."""
        await self.redis.zadd(self.keys.schedule_firings(tenant), {member: at_ms}, nx=True)

    # --- reading ---------------------------------------------------------------------------------------------

    @translated
    async def read(self, tenant: str, schedule_id: int) -> dict[str, str]:
        """The schedule's hash ({} if there is none in this tenant)."""
        raw = await self.redis.hgetall(self.keys.schedule(tenant, schedule_id))
        return {as_text(name): as_text(value) for name, value in raw.items()}

    @translated
    async def ids(self, tenant: str, before: int | None, count: int) -> list[int]:
        """The tenant's schedule ids, newest first, strictly older than `before`."""
        top = f"({before}" if before is not None else "+inf"
        raw: Any = await self.redis.zrevrangebyscore(self.keys.schedules(tenant), top, "-inf", start=0, num=count)
        return [int(member) for member in raw]

    @translated
    async def many(self, tenant: str, schedule_ids: list[int], outcomes: int) -> list[tuple[dict[str, str], list[Any]]]:
        """Each schedule's hash and its last `outcomes` outcomes (newest first), in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for schedule_id in schedule_ids:
                pipe.hgetall(self.keys.schedule(tenant, schedule_id))
                pipe.xrevrange(self.keys.schedule_outcomes(tenant, schedule_id), count=outcomes)
            rows = await pipe.execute()
        found: list[tuple[dict[str, str], list[Any]]] = []
        for fields, entries in zip(rows[::2], rows[1::2], strict=True):
            decoded = [{as_text(k): as_text(v) for k, v in entry.items()} for _, entry in entries]
            found.append(({as_text(k): as_text(v) for k, v in fields.items()}, decoded))
        return found

    # --- the schedule loop's -----------------------------------------------------------------------------------

    @translated
    async def due(self, tenant: str, now_ms: int, count: int) -> list[tuple[int, int]]:
        """(scheduleID, due time) of the schedules due by `now_ms`, earliest first."""
        raw: Any = await self.redis.zrangebyscore(
            self.keys.schedules_due(tenant), "-inf", now_ms, start=0, num=count, withscores=True
        )
        return [(int(member), int(score)) for member, score in raw]

    @translated
    async def forget_due(self, tenant: str, schedule_id: int) -> None:
        """Take a schedule whose hash is not there out of the due set (ids are never given again: no race with a
        create; a delete takes it out itself)."""
        if not await self.redis.exists(self.keys.schedule(tenant, schedule_id)):
            await self.redis.zrem(self.keys.schedules_due(tenant), str(schedule_id))

    @translated
    async def firings(self, tenant: str, now_ms: int, count: int) -> list[str]:
        """The claimed firings a node may try by `now_ms` (new, or their lease lapsed), earliest first."""
        raw: Any = await self.redis.zrangebyscore(
            self.keys.schedule_firings(tenant), "-inf", now_ms, start=0, num=count
        )
        return [as_text(member) for member in raw]

    @translated
    async def earliest(self, tenant: str) -> Due:
        """When the tenant's next due time or claimed firing comes (two ZRANGEs in one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.schedules_due(tenant), 0, 0, withscores=True)
            pipe.zrange(self.keys.schedule_firings(tenant), 0, 0, withscores=True)
            heads = await pipe.execute()
        times = [float(score) for head in heads for _, score in head]
        return Due(min(times) if times else None)

    @translated
    async def claim(
        self, tenant: str, schedule_id: int, due_ms: int, rev: str, next_ms: int | None, try_at_ms: int,
        members: list[str], outcome: dict[str, str] | None,
    ) -> bool:  # fmt: skip
        keys = [
            self.keys.schedules_due(tenant),
            self.keys.schedule(tenant, schedule_id),
            self.keys.schedule_firings(tenant),
            self.keys.schedule_outcomes(tenant, schedule_id),
        ]
        args: list[str | int] = [
            schedule_id, due_ms, rev, "" if next_ms is None else next_ms, try_at_ms, json.dumps(members),
            "" if outcome is None else json.dumps(outcome), OUTCOMES_KEPT,
        ]  # fmt: skip
        return bool(await self._claim(keys=keys, args=args))

    @translated
    async def take(self, tenant: str, member: str, now_ms: int, lease_ms: int) -> float | None:
        """The lease (its end, unique to this take) when this node may try the firing now; None otherwise."""
        lease = now_ms + lease_ms + round(random.random() * 0.9, 4) + 0.01  # a tie breaker, no secret
        taken = await self._take(keys=[self.keys.schedule_firings(tenant)], args=[member, now_ms, repr(lease)])
        return lease if taken else None

    @translated
    async def done(
        self, tenant: str, schedule_id: int, member: str, lease: float, outcome: dict[str, str],
        execution_id: int | None, retry_at_ms: int | None = None,
    ) -> bool:  # fmt: skip
        keys = [
            self.keys.schedule_firings(tenant),
            self.keys.schedule(tenant, schedule_id),
            self.keys.schedule_outcomes(tenant, schedule_id),
        ]
        args: list[str | int] = [
            member, repr(lease), json.dumps(outcome), "" if execution_id is None else execution_id,
            "" if retry_at_ms is None else retry_at_ms, OUTCOMES_KEPT,
        ]  # fmt: skip
        return bool(await self._done(keys=keys, args=args))
