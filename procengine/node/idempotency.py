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
import contextlib
import secrets
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

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

    # --- a batch of starts (node/starting.py): the same steps, one round trip for all the keys -------------

    @translated
    async def claim_many(self, tenant: str, keys: list[str]) -> list[str | None]:
        """`claim` of distinct client keys at once, without waiting: a token for each key claimed, None for a key
        held already (by a start before, or one under way: the caller asks `existing_many`, then `claim`)."""
        loop = asyncio.get_running_loop()
        tokens = [f"{CLAIM_PREFIX}{secrets.token_hex(8)}" for _ in keys]
        idem_keys = [self._key(tenant, key, False) for key in keys]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for idem_key, token in zip(idem_keys, tokens, strict=True):
                    pipe.set(idem_key, token, nx=True, px=CLAIM_MS)
                claimed = await pipe.execute()
        except BaseException:
            # some may be ours: free them (compare-and-delete, so never another start's); else they lapse
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release_all(list(zip(idem_keys, tokens, strict=True))))
            raise
        found: list[str | None] = []
        for idem_key, token, ok in zip(idem_keys, tokens, claimed, strict=True):
            if ok:
                self._creating[idem_key] = loop.create_future()
            found.append(token if ok else None)
        return found

    async def bind_many(self, tenant: str, bound: list[tuple[str, str, int]]) -> list[bool]:
        """`bind` of many (key, token, execution id) at once: whether each claim still held (else another start
        holds the key now, and that start is refused as `bind` refuses it)."""
        if not bound:
            return []
        if isinstance(self.redis, RedisCluster):  # a cluster pipeline does not load scripts: one call each
            return list(
                await asyncio.gather(
                    *(self.store.swap_key(self._key(tenant, k, False), t, str(i)) for k, t, i in bound)
                )
            )
        return [bool(done) for done in await self._swap_all(tenant, bound)]

    @translated
    async def _swap_all(self, tenant: str, bound: list[tuple[str, str, int]]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, token, execution_id in bound:
                await self.store.scripts.swap_key(
                    keys=[self._key(tenant, key, False)], args=[token, str(execution_id)], client=pipe
                )
            return list(await pipe.execute())

    @translated
    async def existing_many(self, tenant: str, keys: list[str]) -> list[StartResult | None]:
        """The execution each client key names, for keys that `claim_many` found held, in two round trips; None
        where that is not plain (a claim still under way, or stale): the caller asks `claim` for those."""
        idem_keys = [self._key(tenant, key, False) for key in keys]
        async with self.redis.pipeline(transaction=False) as pipe:
            for idem_key in idem_keys:
                pipe.get(idem_key)
                pipe.pttl(idem_key)
            replies = await pipe.execute()
        named: dict[int, int] = {}  # position -> execution id, for keys persisted with an id
        for i in range(len(keys)):
            raw, ttl = replies[2 * i], int(replies[2 * i + 1])
            if raw is not None and ttl == -1 and raw.isdigit():
                named[i] = int(raw)
        rows = await self.store.many_fields(list(named.values()), ["status", "processID", "processVersion"])
        found: list[StartResult | None] = [None] * len(keys)
        for (i, execution_id), row in zip(named.items(), rows, strict=True):
            if row.get("processID"):
                found[i] = _result(execution_id, row)
        return found

    @translated
    async def created_many(self, tenant: str, keys: list[str]) -> None:
        """`created` of many keys, in one round trip."""
        idem_keys = [self._key(tenant, key, False) for key in keys]
        try:
            if idem_keys:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for idem_key in idem_keys:
                        pipe.persist(idem_key)
                    await pipe.execute()
        finally:
            for idem_key in idem_keys:
                self._finished(idem_key)

    async def release_many(self, tenant: str, claimed: list[tuple[str, str]]) -> None:
        """`release` of many (key, token or execution id), concurrently: only after a start of the batch failed."""
        await self._release_all([(self._key(tenant, key, False), value) for key, value in claimed])

    async def _release_all(self, held: list[tuple[str, str]]) -> None:
        try:
            await asyncio.gather(*(self.store.release_key(idem_key, value) for idem_key, value in held))
        finally:
            for idem_key, _ in held:
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
