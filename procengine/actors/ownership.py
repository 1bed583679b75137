"""Node liveness: each node renews a heartbeat key with a TTL; a node without one is dead.

Liveness is only a guess used to decide when to adopt; safety comes from the fencing epoch that
takeover.lua bumps and commit.lua checks. A node that cannot renew in time stops its own actors
(`on_lost`) before the others can take its executions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from procengine.store.keys import Keys

log = logging.getLogger(__name__)


def new_node_id() -> str:
    return uuid.uuid4().hex[:12]


class Ownership:
    def __init__(self, redis: Redis, keys: Keys, node_id: str, heartbeat_ms: int, ttl_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.node_id = node_id
        self.heartbeat_ms = heartbeat_ms
        self.ttl_ms = ttl_ms

    async def renew(self) -> None:
        await self.redis.set(self.keys.node(self.node_id), "1", px=self.ttl_ms)

    async def heartbeat_forever(self, on_lost: Callable[[], Awaitable[None]]) -> None:
        last_ok = time.monotonic()
        while True:
            try:
                await self.renew()
                last_ok = time.monotonic()
            except Exception as exc:  # Redis down: keep trying, and give up our actors before the TTL runs out
                log.warning("node %s: heartbeat failed: %s", self.node_id, exc)
                if (time.monotonic() - last_ok) * 1000 > self.ttl_ms * 0.8:
                    await on_lost()
            await asyncio.sleep(self.heartbeat_ms / 1000)

    async def alive(self, node_ids: set[str]) -> set[str]:
        """Which of these nodes have a live heartbeat (one round trip)."""
        if not node_ids:
            return set()
        ordered = sorted(node_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ordered:
                pipe.exists(self.keys.node(node_id))
            found = await pipe.execute()
        return {node_id for node_id, exists in zip(ordered, found, strict=True) if exists}

    async def leave(self) -> None:
        await self.redis.delete(self.keys.node(self.node_id))
