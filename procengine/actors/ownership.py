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

from procengine.cancellation import check_cancelled
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
        lost = False
        lost_after = self.ttl_ms * 0.6 / 1000  # stop our actors well before others may adopt them (TTL)
        while True:
            check_cancelled()
            left = last_ok + lost_after - time.monotonic()
            try:
                # bounded: a renew slower than this is as good as none, and the watchdog below must run in time
                async with asyncio.timeout(max(min(self.ttl_ms * 0.3 / 1000, left), 0.05)):
                    await self.renew()
                last_ok = time.monotonic()
                lost = False
            except Exception as exc:  # Redis down or slow: keep trying
                check_cancelled()
                log.warning("node %s: heartbeat failed: %s: %s", self.node_id, type(exc).__name__, exc)
            silent = time.monotonic() - last_ok
            if not lost and silent > lost_after:  # the watchdog, once per outage
                lost = True
                log.error(
                    "node %s: heartbeat not renewed for %.0f ms; stopping this node's actors",
                    self.node_id,
                    silent * 1000,
                )
                await on_lost()
            left = last_ok + lost_after - time.monotonic()
            await asyncio.sleep(self.heartbeat_ms / 1000 if lost else max(min(self.heartbeat_ms / 1000, left), 0.01))

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
