"""Registered process definitions: one hash per version, versions numbered per (tenant, key)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from procengine.store.codec import decode, encode
from procengine.store.failures import counter_failure, translated
from procengine.store.indexes import STATUSES
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts


@dataclass(frozen=True, slots=True)
class StoredProcess:
    process_id: int
    tenant: str
    key: str
    version: int
    name: str
    created_at: str
    body: dict[str, Any]
    """The definition's canonical document, as registered (the catalog validates it into a definition)."""
    deprecated: bool = False
    """Takes no new start (`PATCH /processes/{id}`); the only field of a version that changes."""


@dataclass(frozen=True, slots=True)
class Deletion:
    """What `ProcessStore.delete` did: `deleted` (and the key's latest processID now, None if none is left),
    `used` (refused: `executions` of the version are stored) or `missing`."""

    outcome: Literal["deleted", "used", "missing"]
    executions: int = 0
    latest_id: int | None = None


class ProcessStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, *, ids_in_script: bool = True) -> None:
        """`ids_in_script`: register_process.lua takes the new id from the counter itself, after it has found the
        body changed (one Redis, Sentinel); False on a Redis Cluster, where the counter is in another slot."""
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.ids_in_script = ids_in_script

    @translated
    async def register(
        self, tenant: str, key: str, name: str, body: dict[str, Any], created_at: str
    ) -> tuple[int, int, bool]:
        """Store a new version of the process `key` unless its canonical `body` equals the latest's; returns
        (processID, version, created). An unchanged body takes no id: ids have no gaps for answers that create
        nothing."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        counter = self.keys.sequence("process")
        keys = [self.keys.process_key(tenant, key), self.keys.processes(tenant)]
        if self.ids_in_script:  # the check and the id in one script: atomic
            keys.append(counter)
            given = ""
        else:
            # the counter lives in another slot: look before taking an id, so that a repeat takes none (two
            # identical registrations at the same moment may still spend one; the script answers both alike)
            latest: Any = await self.redis.hmget(keys[0], ["latestID", "latestVersion", "latestHash"])
            if latest[2] is not None and latest[2].decode() == digest:
                return int(latest[0]), int(latest[1]), False
            try:
                given = str(int(await self.redis.incr(counter)))
            except ResponseError as exc:
                raise counter_failure(exc, counter) from None
        try:
            reply: Any = await self.scripts.register_process(
                keys=keys,
                args=[
                    given,
                    digest,
                    self.keys.process_stem(tenant),
                    *("key", key, "name", name, "tenant", tenant),
                    *("createdAt", created_at, "hash", digest, "body", encode(body)),
                ],
            )
        except ResponseError as exc:
            raise counter_failure(exc, counter) from None
        found_id, version, created = (int(part) for part in reply)
        return found_id, version, bool(created)

    @translated
    async def get(self, tenant: str, process_id: int) -> StoredProcess | None:
        raw: Any = await self.redis.hgetall(self.keys.process(tenant, process_id))
        return _stored(tenant, process_id, raw)

    @translated
    async def latest_id(self, tenant: str, key: str) -> int | None:
        raw: Any = await self.redis.hget(self.keys.process_key(tenant, key), "latestID")
        return None if raw is None else int(raw)

    @translated
    async def startable_many(self, tenant: str, process_ids: list[int]) -> list[bool | None]:
        """Whether each version may be started now (False: deprecated; None: no such version), in one round trip:
        read fresh for every start, as a version may have been deprecated or deleted through another node since
        this one cached it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for process_id in process_ids:
                pipe.hmget(self.keys.process(tenant, process_id), ["deprecated", "version"])
            rows = await pipe.execute()
        return [None if version is None else deprecated != b"1" for deprecated, version in rows]

    @translated
    async def set_deprecated(self, tenant: str, process_id: int, deprecated: bool) -> bool:
        """Mark the version deprecated or not; False when there is no such version (nothing written)."""
        found: Any = await self.scripts.deprecate_process(
            keys=[self.keys.process(tenant, process_id)], args=["1" if deprecated else "0"]
        )
        return bool(found)

    @translated
    async def delete(self, tenant: str, process_id: int) -> Deletion:
        """Delete the version unless an execution of it is stored (its index of executions is not empty), in one
        script: out of the tenant's list, and out of its key's latest (the highest version left takes its place)."""
        key: Any = await self.redis.hget(self.keys.process(tenant, process_id), "key")
        if key is None:
            return Deletion("missing")
        reply: Any = await self.scripts.delete_process(
            keys=[
                self.keys.process(tenant, process_id),
                self.keys.process_key(tenant, key.decode()),
                self.keys.processes(tenant),
                self.keys.process_index(tenant, process_id),
            ],
            args=[str(process_id), key.decode(), self.keys.process_stem(tenant)],
        )
        outcome = reply[0].decode()
        if outcome == "used":
            return Deletion("used", executions=int(reply[1]))
        if outcome == "deleted":
            return Deletion("deleted", latest_id=int(reply[1]) or None)
        return Deletion("missing")

    @translated
    async def counts(self, tenant: str, process_ids: list[int]) -> dict[int, dict[str, int]]:
        """How many of the tenant's executions of each version are in each status: a ZCARD of each version's index
        by status, all in one round trip (O(1) each, whatever the number of executions)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for process_id in process_ids:
                for status in STATUSES:
                    pipe.zcard(self.keys.process_status_index(tenant, process_id, status))
            found = await pipe.execute()
        width = len(STATUSES)
        return {
            process_id: dict(zip(STATUSES, (int(n) for n in found[i * width : (i + 1) * width]), strict=True))
            for i, process_id in enumerate(process_ids)
        }

    async def generation(self, tenant: str) -> tuple[int, int]:
        """(how many versions the tenant has, its newest processID): changes whenever a version comes or goes, so a
        cache of what the versions declare (`Catalog.declared_attributes`) knows when to read them again."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.processes(tenant))
            pipe.zrange(self.keys.processes(tenant), -1, -1)
            count, last = await pipe.execute()
        return int(count), int(last[0]) if last else 0

    @translated
    async def list(self, tenant: str) -> list[StoredProcess]:
        members: Any = await self.redis.zrange(self.keys.processes(tenant), 0, -1)
        ids = [int(process_id) for process_id in members]
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip for them all
            for process_id in ids:
                pipe.hgetall(self.keys.process(tenant, process_id))
            rows = await pipe.execute()
        found = [_stored(tenant, process_id, raw) for process_id, raw in zip(ids, rows, strict=True)]
        return [process for process in found if process is not None]


def _stored(tenant: str, process_id: int, raw: Any) -> StoredProcess | None:
    if not raw:
        return None
    fields = {k.decode(): v for k, v in raw.items()}
    return StoredProcess(
        process_id=process_id,
        tenant=fields["tenant"].decode(),
        key=fields["key"].decode(),
        version=int(fields["version"]),
        name=fields["name"].decode(),
        created_at=fields["createdAt"].decode(),
        body=decode(fields["body"]),
        deprecated=fields.get("deprecated") == b"1",
    )
