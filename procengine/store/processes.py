"""Registered process definitions: one hash per version, versions numbered per (tenant, key)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from procengine.store.codec import decode, encode
from procengine.store.failures import counter_failure, translated
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


class ProcessStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts

    @translated
    async def register(
        self, tenant: str, key: str, name: str, body: dict[str, Any], created_at: str
    ) -> tuple[int, int, bool]:
        """Store a new version of the process `key` unless its canonical `body` equals the latest's; returns
        (processID, version, created)."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        try:
            process_id = int(await self.redis.incr(self.keys.sequence("process")))
        except ResponseError as exc:
            raise counter_failure(exc, self.keys.sequence("process")) from None
        reply: Any = await self.scripts.register_process(
            keys=[
                self.keys.process_key(tenant, key),
                self.keys.process(tenant, process_id),
                self.keys.processes(tenant),
            ],
            args=[
                process_id,
                digest,
                *("key", key, "name", name, "tenant", tenant),
                *("createdAt", created_at, "hash", digest, "body", encode(body)),
            ],
        )
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
    )
