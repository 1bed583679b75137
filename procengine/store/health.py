"""Is this Redis fit to keep executions, and has it kept them? (issue 17, item 5; docs/operations.md, "A Redis that
evicts or forgets").

Two dangers the engine cannot see from its own writes:

- **Eviction.** Under a `maxmemory-policy` other than `noeviction`, Redis deletes keys when memory is full:
  acknowledged executions, definitions, the id counters. The policy is read from `INFO memory`
  (`maxmemory_policy`), which the least-privilege ACL user may run, and from `CONFIG GET` when INFO lacks it
  (CONFIG may be refused by an ACL or renamed). Anything but `noeviction` makes the store *unsafe*: `/ready`
  fails with the reason and starts answer 503 until it is fixed. No persistence (neither AOF nor RDB) is a
  WARNING only: a restart would lose everything, which the identity check below then catches.
- **Forgetting.** A Redis restarted empty, flushed, or failed over to an empty replica. The first node writes
  a store identity (`<prefix>:store-id`, a random token) once; every node remembers it, and the highest value
  it has seen of each id counter. When the identity is gone or changed, or a counter is lower than seen or than
  an execution this node runs, Redis lost data: the node logs it at ERROR, stops its actors, fails `/ready` and
  refuses starts (503), so that no id is given twice, until the identity is back (a restore) or an operator
  writes it back after moving the counters past every id issued (the log says how).

Every check is O(1): a few GETs, never a scan; the policy is read at start, on reconnection and every
`POLICY_EVERY` checks (at every check while it evicts, so that its fix is seen at once). Redis's answers are
treated as hostile: a missing field or an odd value is never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from redis.asyncio import Redis

from procengine.errors import Unavailable
from procengine.runtime.cancellation import check_cancelled
from procengine.store.failures import translated
from procengine.store.keys import Keys

__all__ = ["COUNTERS", "StoreHealth"]

log = logging.getLogger(__name__)

COUNTERS: Final = ("execution", "process")
"""The id counters whose going back would give an id twice."""
POLICY_EVERY: Final = 30
"""The eviction policy and persistence are read again every this many identity checks."""


class StoreHealth:
    def __init__(self, redis: Redis, keys: Keys, *, interval_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.interval_s = interval_s
        self.identity: str | None = None
        """The store identity this node found or wrote at start."""
        self.seen: dict[str, int] = {}
        """The highest value seen of each id counter."""
        self.lost: str | None = None
        """Why Redis is known to have lost data, until an operator acts."""
        self.evicting: str | None = None
        """Why the eviction policy makes the store unsafe."""
        self._check_now = asyncio.Event()
        self._checks = 0

    # --- what the engine asks -----------------------------------------------------------------

    def unsafe(self) -> str | None:
        """Why this node must not take new work on this Redis (None: it may)."""
        return self.lost or self.evicting

    def refuse_if_unsafe(self) -> None:
        why = self.unsafe()
        if why is not None:
            raise Unavailable(why)

    def issued(self, execution_id: int) -> None:
        """This node was given `execution_id` (the counter may never go below it)."""
        self.seen["execution"] = max(self.seen.get("execution", 0), execution_id)

    def check_soon(self) -> None:
        """Check at once (the connection to Redis was made again: it may be another, or an empty, Redis)."""
        self._check_now.set()

    # --- the checks ---------------------------------------------------------------------------

    @translated
    async def start(self) -> None:
        """At the node's start: the store identity (written if there is none), the policy, the counters."""
        key = self.keys.store_identity
        await self.redis.set(key, uuid.uuid4().hex, nx=True)
        self.identity = _text(await self.redis.get(key))
        await self.check_policy()
        await self.check_identity()

    @translated
    async def check_policy(self) -> None:
        policy = await self._eviction_policy()
        if policy is None:
            self.evicting = None
            log.warning(
                "cannot tell Redis's maxmemory-policy (INFO and CONFIG GET gave none): make sure it is noeviction, "
                "or Redis may delete executions when its memory is full (docs/operations.md)"
            )
        elif policy != "noeviction":
            if self.evicting is None:
                log.error(
                    "Redis's maxmemory-policy is %r: it deletes keys (executions, definitions, id counters) when "
                    "its memory is full. Not ready, starts refused, until it is noeviction: "
                    "CONFIG SET maxmemory-policy noeviction (docs/operations.md)",
                    policy[:64],
                )
            self.evicting = f"Redis's maxmemory-policy is {policy[:64]!r}, not noeviction: it may delete executions"
        else:
            if self.evicting is not None:
                log.info("Redis's maxmemory-policy is noeviction now")
            self.evicting = None
        if await self._persistence_off():
            log.warning(
                "Redis persists nothing (neither AOF nor RDB): a restart of Redis loses every execution "
                "(docs/operations.md)"
            )

    @translated
    async def check_identity(self, highest: int = 0) -> None:
        """Whether Redis still has what this node knows it had; `highest`: the highest execution id this node has
        run (the counter gave it, so it may never be below it)."""
        # what was seen *before* the counters are read: an id issued while they are read may be above them
        before = {name: max(self.seen.get(name, 0), highest if name == "execution" else 0) for name in COUNTERS}
        key = self.keys.store_identity
        found = _text(await self.redis.get(key))
        counters = {name: _int(await self.redis.get(self.keys.sequence(name))) for name in COUNTERS}
        why: str | None = None
        if found is None or found != self.identity:
            why = f"the store identity {key} is {'gone' if found is None else 'another'} (was {self.identity})"
        else:
            for name, value in counters.items():
                highest = before[name]
                if value is not None and value < highest:
                    why = f"the {name} id counter is {value}, behind {highest} (seen before or run here)"
                    break
                if value is None and highest > 0:
                    why = f"the {name} id counter is gone (it was at least {highest})"
                    break
        if why is None:
            if self.lost is not None:
                log.warning("Redis has its data again (store identity %s): taking new work", self.identity)
            self.lost = None
            for name, value in counters.items():
                if value is not None:
                    self.seen[name] = max(self.seen.get(name, 0), value)
            return
        if self.lost is None:
            highest = max([*self.seen.values(), highest])
            log.error(
                "Redis lost data: %s. This node stops its executions, is not ready and refuses starts, so that no "
                "id is given twice. Restore Redis from a backup, or accept the loss: SET %s past every id issued "
                "(this node saw up to %d), likewise %s, then SET %s %s (docs/operations.md)",
                why,
                self.keys.sequence("execution"),
                highest,
                self.keys.sequence("process"),
                key,
                self.identity,
            )
        self.lost = f"Redis lost data: {why}"

    async def watch_forever(self, highest: Callable[[], int], on_lost: Callable[[], Awaitable[None]]) -> None:
        """Check every `interval_s` (and at once when asked); on a loss, `on_lost` (stop the actors) once.
        `highest`: the highest execution id this node has run, O(1) (not the list of its executions: a copy of
        50,000 ids a second held the event loop for ms)."""
        while True:
            check_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._check_now.wait()
            reconnected = self._check_now.is_set()
            self._check_now.clear()
            self._checks += 1
            was_lost = self.lost is not None
            try:
                if reconnected or self.evicting is not None or self._checks % POLICY_EVERY == 0:  # fixed: seen soon
                    await self.check_policy()
                await self.check_identity(highest())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis unreachable: the probe and /ready say so; check again later
                log.debug("store health check failed: %s", exc)
                continue
            if self.lost is not None and not was_lost:
                await on_lost()

    async def _eviction_policy(self) -> str | None:
        try:
            info: Any = await self.redis.info("memory")
        except Exception as exc:  # refused by an ACL, or not a Redis that has it
            log.debug("INFO memory failed: %s", exc)
            info = None
        policy = _field(info, "maxmemory_policy")
        if policy is not None:
            return policy
        try:
            answer: Any = await self.redis.config_get("maxmemory-policy")
        except Exception as exc:
            log.debug("CONFIG GET maxmemory-policy failed: %s", exc)
            return None
        return _field(answer, "maxmemory-policy")

    async def _persistence_off(self) -> bool:
        """True only when Redis says AOF is off and no RDB save point is set; unknown is not off."""
        try:
            info: Any = await self.redis.info("persistence")
        except Exception:
            return False
        if _field(info, "aof_enabled") != "0":
            return False
        try:
            answer: Any = await self.redis.config_get("save")
        except Exception:  # CONFIG refused or renamed: RDB unknown
            return False
        save = _field(answer, "save")
        return save is not None and save.strip() == ""


def _field(answer: Any, name: str) -> str | None:
    """`name` in a parsed INFO or CONFIG GET answer (on a Cluster: the first node's that has it), as text."""
    if not isinstance(answer, dict):
        return None
    value = answer.get(name, answer.get(name.encode()))
    if value is None:
        for inner in answer.values():  # RedisCluster: {node: {field: value}}
            if isinstance(inner, dict) and (found := inner.get(name, inner.get(name.encode()))) is not None:
                value = found
                break
    if value is None or isinstance(value, (dict, list)):
        return None
    return _text(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
