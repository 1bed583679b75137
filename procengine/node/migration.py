"""The upgrade to the `owned` sets: seeded once from `<p>:active`, the layout before them.

Versions before the `owned` sets found orphans by reading every execution of `<p>:active` on every reconcile
pass. This version reads a node's `owned` set when its heartbeat lapses, so the executions written before the
upgrade must be in their owners' sets first: one node (a lock, `Keys.owned_seeding`) reads `<p>:active` once
and adds each running or paused execution to its owner's `owned` set, and the owner to `known_nodes`; then it
writes `Keys.owned_seeded`. Adding is idempotent (the sets are supersets), so a seeder that dies halfway is
replaced by another once its lock lapses, and starts over. Until the mark is written, every node reconciles
the earlier way (node/reconciler.py), so a node that dies during the seeding is still adopted.

This version still writes `<p>:active` (nodes of earlier versions read it): docs/operations.md, "Upgrading".
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from redis.asyncio import Redis

from procengine.statuses import FINAL_STATUSES
from procengine.store.executions import ExecutionStore
from procengine.store.failures import translated
from procengine.store.keys import Keys

log = logging.getLogger(__name__)

SEED_CHUNK = 500
SEED_LOCK_MS = 60_000
"""How long a seeder holds the lock: past it another node seeds (again: idempotent)."""


@translated
async def seed_owned(redis: Redis, keys: Keys, store: ExecutionStore, node_id: str) -> bool:
    """Seed the `owned` sets from `<p>:active` unless done; whether they are seeded now (False: another node is
    seeding them)."""
    if await redis.exists(keys.owned_seeded):
        return True
    if not await redis.set(keys.owned_seeding, node_id, nx=True, px=SEED_LOCK_MS):
        return False
    began = time.monotonic()
    try:
        ids = list(dict.fromkeys(await store.active_ids()))
        seeded = 0
        for first in range(0, len(ids), SEED_CHUNK):
            chunk = ids[first : first + SEED_CHUNK]
            rows = await store.many_fields(chunk, ["status", "owner"])
            by_owner: dict[str, list[str]] = defaultdict(list)
            for execution_id, row in zip(chunk, rows, strict=True):
                owner = row.get("owner", "")
                if owner and row.get("status") not in FINAL_STATUSES:
                    by_owner[owner].append(str(execution_id))
            if by_owner:
                async with redis.pipeline(transaction=False) as pipe:
                    for owner, members in by_owner.items():
                        pipe.sadd(keys.known_nodes, owner)  # first: a known node's set is what gets read
                        pipe.sadd(keys.owned(owner), *members)
                    await pipe.execute()
            seeded += sum(len(members) for members in by_owner.values())
        await redis.set(keys.owned_seeded, str(int(time.time() * 1000)))
    finally:
        await store.release_key(keys.owned_seeding, node_id)
    log.info(
        "node %s: seeded the owned sets from %s active executions (%s owned) in %.2f s",
        node_id,
        len(ids),
        seeded,
        time.monotonic() - began,
    )
    return True
