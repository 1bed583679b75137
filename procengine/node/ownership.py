"""Node liveness: each node renews a heartbeat key with a TTL; a node without one is dead.

Liveness is only a guess used to decide when to adopt; safety comes from the fencing epoch that
takeover.lua bumps and commit.lua checks. A node that cannot renew in time stops its own actors
(`on_lost`) before the others can take its executions.

Absent heartbeats are believed only while this node's own heartbeat is believable. After an outage this node
noticed (a renew failed), or when its own key is found gone (a Redis failover promotes a replica on which every
heartbeat has expired, since nobody could renew during the outage; a Redis restarted from an old file has none),
every other node looks dead at once: judging by that, the nodes would take each other's executions in turn. So
the node re-asserts its own heartbeat and then, for one TTL, takes every node for alive: a live one renews
within a heartbeat interval; one still silent after that is dead by the usual rule.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from procengine.runtime.cancellation import check_cancelled
from procengine.store.failures import translated
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
        self._renewed = False
        self._doubt: str | None = None
        """Why absent heartbeats cannot be believed now (until this node's own is re-asserted); None: they can."""
        self._judge_after = float("-inf")
        """monotonic time before which no node is judged dead (one TTL after the heartbeat was re-asserted)."""

    def judging(self) -> bool:
        """Whether an absent heartbeat means a dead node now (not in doubt, nor in the TTL after one)."""
        return self._doubt is None and time.monotonic() >= self._judge_after

    def doubt(self, why: str) -> None:
        """Something this node saw makes the absence of heartbeats meaningless until its own is re-asserted."""
        if self._doubt is None:
            self._doubt = why

    @translated
    async def renew(self) -> None:
        """Renew this node's heartbeat, and its place in `known_nodes` (whose heartbeats the reconcilers check):
        every time, in the same round trip, so that a node the reconcilers forgot while it looked dead is known
        again at its next heartbeat."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.node(self.node_id), "1", px=self.ttl_ms, get=True)
            pipe.sadd(self.keys.known_nodes, self.node_id)
            previous, _ = await pipe.execute()
        if previous is None and self._renewed:
            self.doubt("this node's own heartbeat key was gone (a Redis failover, restart or lost data?)")
        self._renewed = True
        if self._doubt is not None:
            self._judge_after = time.monotonic() + self.ttl_ms / 1000
            log.warning(
                "node %s: heartbeat re-asserted after %s; no other node is taken for dead for the next %s ms, "
                "while the others renew theirs",
                self.node_id,
                self._doubt,
                self.ttl_ms,
            )
            self._doubt = None

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
                self.doubt("Redis did not take its heartbeat")
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

    @translated
    async def alive(self, node_ids: set[str]) -> set[str]:
        """Which of these nodes have a live heartbeat (one round trip); all of them while absent heartbeats cannot
        be believed (see the module's docstring), which this node's own heartbeat, read with them, also tells."""
        if not node_ids:
            return set()
        if not self.judging():
            return set(node_ids)
        ordered = sorted(node_ids | {self.node_id})
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ordered:
                pipe.exists(self.keys.node(node_id))
            found = dict(zip(ordered, await pipe.execute(), strict=True))
        if not found[self.node_id]:
            self.doubt("this node's own heartbeat key was gone (a Redis failover, restart or lost data?)")
            await self.renew()
            return set(node_ids)
        return {node_id for node_id in node_ids if found[node_id]}

    @translated
    async def leave(self) -> None:
        await self.redis.delete(self.keys.node(self.node_id))
