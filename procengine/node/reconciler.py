"""The reconciler: finds the running executions nobody drives and drives them, at a cost in the number of nodes.

A pass reads `known_nodes` (every node adds itself with each heartbeat) and those nodes' heartbeats (one pipeline:
`Ownership.alive`, which also says when absent heartbeats cannot be believed). Only for a node whose heartbeat has
lapsed does it read that node's `owned` set, a superset of the executions the node owns and that are not final:

- running ones whose owner is still that node are adopted (`Registry.activate` -> takeover.lua, a compare-and-set
  on owner and epoch: two adopters cannot both win);
- paused ones whose owner is still that node are adopted by ownership alone (takeover.lua, logged `adopted`, but
  no state is loaded and no actor made: the next request for one is forwarded here and activates it);
- the rest (final, gone, owned by another node) leave the set; a dead node whose set holds nothing live any more
  for FORGET_AFTER_S leaves `known_nodes`.

A paused execution no actor holds, a waiting one, a live node's executions: none of them costs a command here.

This node's own executions whose actor stopped without giving them up (the heartbeat watchdog, a Redis data loss
check, an actor that crashed, a start whose write no replica acknowledged) are taken back, not adopted: the
registry reports each actor that ends (`Registry.ended`), and after the watchdog fired the pass reads this node's
own `owned` set once.

Until the `owned` sets are seeded from the layout before them (node/migration.py), and once for a node that left
without being known (a node of an earlier version), the pass is the earlier one: every member of `<p>:active`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from redis.asyncio import Redis

from procengine.node.migration import seed_owned
from procengine.node.ownership import Ownership
from procengine.node.registry import Registry
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock
from procengine.runtime.metrics import Metrics
from procengine.statuses import FINAL_STATUSES, Status
from procengine.store.executions import ExecutionStore, LogRecord
from procengine.store.failures import translated
from procengine.store.keys import Keys

log = logging.getLogger(__name__)

READ_CHUNK = 100
"""Executions read per pipeline: one parse of a thousand replies holds the event loop for several ms."""
ADOPT_CONCURRENCY = 50
FORGET_AFTER_S = 60.0
"""How long a dead node whose `owned` set holds nothing live stays in `known_nodes` (at least 10 TTLs): long after
any write it had in flight has landed or failed."""

Activate = Callable[[int], Coroutine[Any, Any, int]]


class Reconciler:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        store: ExecutionStore,
        ownership: Ownership,
        registry: Registry,
        metrics: Metrics,
        clock: Clock,
        *,
        tenants: list[str],
        starting: set[int],
        activate: Activate,
    ) -> None:
        """`starting`: executions this node is creating now (never taken back mid-creation); `activate`: drive one
        here, 1 if an actor now does (`Node._activate`)."""
        self.redis = redis
        self.keys = keys
        self.store = store
        self.ownership = ownership
        self.registry = registry
        self.metrics = metrics
        self.clock = clock
        self.node_id = ownership.node_id
        self.tenants = tenants
        self.starting = starting
        self.activate = activate
        self.seeded = False
        self.watchdog_fired = False
        """Set when this node's actors were stopped without writing: the next pass reads this node's own `owned` set."""
        self.suspects: set[int] = set()
        """This node's executions that may run with no actor here: read (not scanned for) on the next pass."""
        self._left: set[str] = set()
        self._lifeless_since: dict[str, float] = {}
        self.forget_after_s = max(FORGET_AFTER_S, 10 * ownership.ttl_ms / 1000)
        self.sweep_also: list[Callable[[str], Coroutine[Any, Any, bool]]] = []
        """Called with each dead node this pass sweeps, for what else it owned (its bulk operations): True if
        something of it is left for a later pass (the node is not forgotten meanwhile)."""

    # --- what the node tells it -----------------------------------------------------------------------------

    def node_left(self, node_id: str) -> None:
        """A node said on `<p>:nodes` that it left (drained): its executions are looked at in the next pass."""
        self._left.add(node_id)

    def suspect(self, execution_id: int) -> None:
        """This node's execution may be running with no actor (a start whose write was not replicated in time)."""
        self.suspects.add(execution_id)

    # --- a pass ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        """One pass; how many executions of other nodes were adopted."""
        if not self.seeded:
            self.seeded = await seed_owned(self.redis, self.keys, self.store, self.node_id)
        await self._count_executions()
        if not self.seeded:  # another node seeds the `owned` sets now: meanwhile, the earlier pass
            self._left.clear()
            adopted = await self._every_active_execution()
            self.metrics.adopted.inc(adopted)
            return adopted
        adopted = 0
        known = await self._known_nodes()
        unknown_left, self._left = self._left - known - {self.node_id}, set()
        if unknown_left:  # a node of an earlier version left: its executions are only in `<p>:active`
            log.info("node %s: node(s) %s left, unknown to `known_nodes`: one full pass", self.node_id, unknown_left)
            adopted += await self._every_active_execution()
        others = known - {self.node_id}
        alive = await self.ownership.alive(others)
        for node_id in sorted(others - alive):
            adopted += await self._sweep(node_id)
        for node_id in [n for n in self._lifeless_since if n in alive]:
            del self._lifeless_since[node_id]
        await self._take_back()
        self.metrics.adopted.inc(adopted)
        return adopted

    @translated
    async def _known_nodes(self) -> set[str]:
        members = await self.redis.smembers(self.keys.known_nodes)
        return {member.decode() if isinstance(member, bytes) else str(member) for member in members}

    @translated
    async def _count_executions(self) -> None:
        """The `executions` gauge from the tenants' status indexes: one ZCARD per tenant and status, not a read of
        every execution (the same count over all nodes as before)."""
        live = (Status.RUNNING.value, Status.PAUSED.value)
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant in self.tenants:
                for status in live:
                    pipe.zcard(self.keys.status_index(tenant, status))
            counts = await pipe.execute()
        for i, status in enumerate(live):
            self.metrics.executions.labels(status).set(sum(counts[i :: len(live)]))

    async def _rows(self, ids: list[int], names: list[str]) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for first in range(0, len(ids), READ_CHUNK):
            rows += await self.store.many_fields(ids[first : first + READ_CHUNK], names)
            await asyncio.sleep(0)
        return rows

    async def _sweep(self, dead: str) -> int:
        """Adopt the running executions of a node whose heartbeat lapsed and its paused ones, and take the
        rest out of its `owned` set; how many were adopted."""
        ids = list(dict.fromkeys(await self.store.owned_ids(dead)))  # SSCAN may return a member twice
        rows = await self._rows(ids, ["status", "owner", "epoch"])
        running = [i for i, row in zip(ids, rows, strict=True) if _owned_by(row, dead, Status.RUNNING)]
        paused = [(i, row) for i, row in zip(ids, rows, strict=True) if _owned_by(row, dead, Status.PAUSED)]
        stale = [i for i, row in zip(ids, rows, strict=True) if row and _not_owned_by(row, dead)]
        await self._disown(dead, stale)
        adopted = await self._activate_all(running)
        for first in range(0, len(paused), ADOPT_CONCURRENCY):
            group = paused[first : first + ADOPT_CONCURRENCY]
            await asyncio.gather(*(self._adopt_paused(dead, i, row) for i, row in group))
        if adopted:
            log.info("node %s: adopted %s executions of node %s", self.node_id, adopted, dead)
        lifeless = len(ids) == len(stale) + sum(1 for row in rows if not row)  # nothing live is left in its set
        for sweep in self.sweep_also:
            if await sweep(dead):
                lifeless = False
        await self._forget_if_lifeless(dead, lifeless)
        return adopted

    async def _adopt_paused(self, dead: str, execution_id: int, row: dict[str, str]) -> None:
        """A paused execution of a dead node: owned here from now on (its epoch moves on, fencing the dead node),
        with no actor until a request needs one."""
        record = LogRecord(self.clock.now_ms(), "adopted", None, {"from": dead, "to": self.node_id, "by": "system"})
        try:
            await self.store.takeover(
                execution_id, owner=self.node_id, expected_owner=dead, expected_epoch=_epoch(row), log=record
            )
        except Exception as exc:  # the next pass tries again
            check_cancelled()
            log.warning("execution %s: not adopted: %r", execution_id, exc, extra={"executionID": execution_id})

    async def _disown(self, node_id: str, ids: list[int]) -> None:
        """Out of the node's `owned` set, then read again: one that became the node's meanwhile (a takeover by the
        node between the read and the removal) goes back in, so that the set stays a superset."""
        if not ids:
            return
        await self.store.disown(node_id, *ids)
        again = await self._rows(ids, ["status", "owner"])
        back = [i for i, row in zip(ids, again, strict=True) if row and not _not_owned_by(row, node_id)]
        await self.store.own(node_id, *back)

    @translated
    async def _forget_if_lifeless(self, dead: str, lifeless: bool) -> None:
        if not lifeless:
            self._lifeless_since.pop(dead, None)
            return
        since = self._lifeless_since.setdefault(dead, time.monotonic())
        if time.monotonic() - since < self.forget_after_s:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.owned(dead))
            pipe.srem(self.keys.known_nodes, dead)
            await pipe.execute()
        del self._lifeless_since[dead]
        log.info("node %s: forgot node %s (dead, nothing of it left to adopt)", self.node_id, dead)

    async def _take_back(self) -> None:
        """Drive again this node's running executions that no actor drives (see the module's docstring). What could
        not be read (Redis away) is looked at again in the next pass."""
        candidates = self.suspects | self.registry.take_ended()
        sweep, self.watchdog_fired = self.watchdog_fired, False
        self.suspects = set()
        try:
            if sweep:
                candidates |= set(await self.store.owned_ids(self.node_id))
            ids = sorted(i for i in candidates if self.registry.get(i) is None)
            waiting = {i for i in ids if i in self.starting}  # being created here: looked at once it is
            ids = [i for i in ids if i not in waiting]
            rows = await self._rows(ids, ["status", "owner"])
        except BaseException:
            self.suspects |= candidates
            self.watchdog_fired |= sweep
            raise
        self.suspects |= waiting
        ours = [i for i, row in zip(ids, rows, strict=True) if _owned_by(row, self.node_id, Status.RUNNING)]
        if sweep:
            await self._disown(
                self.node_id, [i for i, row in zip(ids, rows, strict=True) if _not_owned_by(row, self.node_id)]
            )
        taken = await self._activate_all(ours)
        self.suspects |= {i for i in ours if self.registry.get(i) is None}  # not taken: tried again next pass
        if taken:  # none: they ended between the read and the activation
            log.warning("node %s: took back %s of its own running executions that no actor drove", self.node_id, taken)

    async def _activate_all(self, execution_ids: Iterable[int]) -> int:
        """Activate these, several at a time (each is a few round trips: one at a time, 1,000 took 1.2 s); in a
        TaskGroup, so that a cancelled reconciler waits until every activation has stopped."""
        ids = list(execution_ids)
        activated = 0
        for first in range(0, len(ids), ADOPT_CONCURRENCY):
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.activate(i)) for i in ids[first : first + ADOPT_CONCURRENCY]]
            activated += sum(task.result() for task in tasks)
        return activated

    # --- before the `owned` sets: every active execution ----------------------------------------------------

    async def _every_active_execution(self) -> int:
        """The pass of the versions before the `owned` sets: read every execution of `<p>:active` that no actor here
        drives, adopt the running ones whose owner is dead, take back this node's own. O(executions): only until
        the `owned` sets are seeded, and once when a node of an earlier version leaves."""
        ids = [i for i in dict.fromkeys(await self.store.active_ids()) if self.registry.get(i) is None]
        rows = await self._rows(ids, ["status", "owner"])
        owners = {row.get("owner", "") for row in rows} - {"", self.node_id}
        alive = await self.ownership.alive(owners)
        running = [
            (i, row.get("owner", ""))
            for i, row in zip(ids, rows, strict=True)
            if row.get("status") == Status.RUNNING and i not in self.starting
        ]
        ours = [i for i, owner in running if owner == self.node_id]
        orphans = [i for i, owner in running if owner != self.node_id and owner not in alive]
        await self._activate_all(ours)
        return await self._activate_all(orphans)


def _owned_by(row: dict[str, str], node_id: str, status: Status) -> bool:
    return row.get("owner") == node_id and row.get("status") == status.value


def _not_owned_by(row: dict[str, str], node_id: str) -> bool:
    """What has no business in the node's `owned` set: final, or owned by another node or by none."""
    return row.get("status") in FINAL_STATUSES or row.get("owner") != node_id


def _epoch(row: dict[str, str]) -> int:
    epoch = row.get("epoch", "")
    return int(epoch) if epoch.isascii() and epoch.isdigit() else 0
