"""Idempotent starts: the first start with a key claims it; a repeat waits for that start and answers with it.

The claim is `SET NX` of `<p>:tenant:{t}:idem:<key>` to a token of the claiming start, with a TTL: a node that
dies between claiming and creating frees the key after `CLAIM_MS`. The claim comes before the execution id is
taken, so that a repeat spends no id (ids have no gaps for answers that create nothing); the start then puts its
execution id in place of its token (compare-and-set, `bind`), and once the execution exists the key is persisted.
A repeat that finds the key but not yet its execution waits (bounded) for the first start:
on its own future when that start runs on this node, else by asking Redis again with backoff. It answers with
the execution once it exists, claims the key itself if the first start gave it up (it failed) or left a stale
claim (persisted but pointing at nothing), and answers 503 with Retry-After if the bound passes first.

The start of a call-process's child works the same way with the engine's own key, in a key space of its own
(`<p>:tenant:{t}:child-start:<key>`): a client's idempotency key can never name a child's start.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

from redis.asyncio import Redis

from procengine.api.views import StartResult
from procengine.errors import Unavailable
from procengine.store.executions import ExecutionStore
from procengine.store.failures import translated
from procengine.store.keys import Keys

CLAIM_MS: Final = 30_000
"""How long a claim outlives a start that never created its execution (the node died in between)."""

CLAIM_PREFIX: Final = "claim:"
"""A claim's value until its start has taken its execution id: never digits, so never taken for an id."""

LEGACY_CHILD_PREFIX: Final = "child-of-"
"""What versions before the child key space put before a child key, in the clients' idempotency key space."""

_FIRST_BACKOFF_S: Final = 0.002
_MAX_BACKOFF_S: Final = 0.1


class IdempotentStarts:
    def __init__(self, redis: Redis, keys: Keys, store: ExecutionStore, wait_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.wait_s = wait_s
        self._creating: dict[str, asyncio.Future[None]] = {}
        """Starts of this node that hold a claim and have not finished: repeats here wait on these."""

    def _key(self, tenant: str, key: str, child: bool) -> str:
        return self.keys.child_start(tenant, key) if child else self.keys.idempotency(tenant, key)

    @translated
    async def claim(self, tenant: str, key: str, *, child: bool = False) -> StartResult | str:
        """A token (`claim:...`): this start owns `key` now and must `bind` it to the execution id it takes, then
        call `created` or `release`. Otherwise the execution the first start with this key created. `child`: `key`
        is the engine's own, of a call-process's child (`<parent>.<order>.<attempt>`), in a key space of its own
        that clients' keys never reach."""
        if child:
            earlier = await self._before_upgrade(tenant, key)
            if earlier is not None:
                return earlier
        idem_key = self._key(tenant, key, child)
        token = f"{CLAIM_PREFIX}{secrets.token_hex(8)}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        backoff = _FIRST_BACKOFF_S
        while True:
            if await self.redis.set(idem_key, token, nx=True, px=CLAIM_MS):
                self._creating[idem_key] = loop.create_future()
                return token
            # PTTL before the execution: a claim is persisted only after its execution exists, so a persisted
            # claim without an execution is stale (its execution is gone), not a start still under way.
            # One round trip, not a transaction (no MULTI/EXEC: docs/security.md's ACL user does not need them):
            # whatever happens to the key between GET and PTTL is safe. Freed (-2) or claimed again (> 0): wait
            # and look again. Persisted (-1): by a start whose execution exists, so `raw`'s execution (if it is
            # that one) answers; if not, release_key deletes only a key that still holds `raw`.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(idem_key)
                pipe.pttl(idem_key)
                raw, pttl = await pipe.execute()
            if raw is None:
                continue  # freed between the two commands: claim it
            ttl = int(pttl)
            text = raw.decode(errors="replace")
            # a token: the first start has not taken its id yet (an id a start of an earlier version wrote, too)
            fields = await self.store.fields(int(text)) if text.isascii() and text.isdigit() else {}
            if fields:
                if ttl >= 0:  # its start could not persist the claim (it failed after creating): do it now
                    await self.redis.persist(idem_key)
                return _result(int(text), fields)
            if ttl == -1:
                await self.store.release_key(idem_key, text)
                continue
            left = deadline - loop.time()
            if left <= 0:
                raise Unavailable(f"a start with idempotency key {key!r} is still in progress; try again")
            first = self._creating.get(idem_key)
            if first is not None:
                await asyncio.wait([first], timeout=left)
            else:
                await asyncio.sleep(min(backoff, left))
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _before_upgrade(self, tenant: str, key: str) -> StartResult | None:
        """The child a parent started under the key of versions before the child key space (a client idempotency key
        `child-of-<parent>.<order>.<attempt>`), if it is that parent's child: a parent that crashed across the
        upgrade before it checkpointed its child's id starts no second child. One GET; a client's execution under
        such a key is never taken for a child (it has no parentExecutionID)."""
        raw = await self.redis.get(self.keys.idempotency(tenant, LEGACY_CHILD_PREFIX + key))
        if raw is None or not raw.isdigit():
            return None
        fields = await self.store.fields(int(raw))
        if not fields or fields.get("parentExecutionID") != key.split(".", 1)[0]:
            return None
        return _result(int(raw), fields)

    @translated
    async def bind(self, tenant: str, key: str, token: str, execution_id: int, *, child: bool = False) -> None:
        """The claiming start took `execution_id`: the key names it from now on (repeats find the execution by it).
        Unavailable if the claim lapsed (CLAIM_MS passed before the id came) and another start holds the key."""
        if not await self.store.swap_key(self._key(tenant, key, child), token, str(execution_id)):
            raise Unavailable(f"the claim of idempotency key {key!r} lapsed before its start went on; try again")

    @translated
    async def created(self, tenant: str, key: str, *, child: bool = False) -> None:
        """The claiming start created its execution: the key is kept for good, and repeats here may look."""
        idem_key = self._key(tenant, key, child)
        try:
            await self.redis.persist(idem_key)
        finally:
            self._finished(idem_key)

    async def release(self, tenant: str, key: str, claimed: str, *, child: bool = False) -> None:
        """The claiming start failed before its execution existed: free the key if it still holds our claim
        (`claimed`: the token, or the execution id once bound)."""
        idem_key = self._key(tenant, key, child)
        try:
            await self.store.release_key(idem_key, claimed)
        finally:
            self._finished(idem_key)

    def _finished(self, idem_key: str) -> None:
        first = self._creating.pop(idem_key, None)
        if first is not None and not first.done():
            first.set_result(None)


def _result(execution_id: int, fields: dict[str, str]) -> StartResult:
    return StartResult(
        executionID=execution_id,
        status=fields.get("status", "running"),  # type: ignore[arg-type]
        processID=int(fields["processID"]) if "processID" in fields else None,
        processVersion=int(fields["processVersion"]) if "processVersion" in fields else None,
    )
