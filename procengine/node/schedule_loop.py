"""The schedule loop: one task per node that fires the tenants' schedules when they are due.

Its cost does not grow with the number of schedules: each tenant's next fire times are a sorted set (schedules_due)
and its claimed firings another (schedule_firings); the loop reads what is due by now from each, does it, then sleeps
until the earliest time either names, at most `POLL_CAP_MS` (a schedule made or changed on another node is seen
within it; one made here wakes the loop at once). An idle node makes 2 round trips per tenant per cap, however many
schedules there are.

Exactly once, across nodes, restarts and failovers:
1. claim (schedule_claim.lua): the due time read moves on to the next and the firing(s) it comes to are recorded as
   claimed, in one write that only one node's read can match;
2. take (schedule_take.lua): a node leases a claimed firing (`LEASE_MS`); a firing whose lease lapses (its node died)
   is taken by another;
3. start: idempotent, keyed `schedule:<id>:<fire time ms>` in the tenant's idempotency keys, so a firing taken twice
   starts one execution;
4. done (schedule_done.lua): the outcome is recorded and the firing dropped, fenced by the lease.
Every step works from the injected clock: tests drive time with `tick()`, no sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from procengine.api.service import Caller
from procengine.api.views import CancelResult, ControlRequest, StartRequest, StartResult
from procengine.errors import InvalidTransition, NotFound, ProcEngineError, TooManyRequests, Unavailable
from procengine.node.schedule_times import check_spec, missed
from procengine.node.schedules import member_of, spec_of
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock
from procengine.statuses import FINAL_STATUSES
from procengine.store.executions import ExecutionStore
from procengine.store.schedules import ScheduleStore

__all__ = [
    "BUFFER_RECHECK_MS",
    "LEASE_MS",
    "MISFIRE_GRACE_MS",
    "POLL_CAP_MS",
    "FiringHost",
    "ScheduleLoop",
    "idempotency_key",
]

log = logging.getLogger(__name__)

POLL_CAP_MS: Final = 1000
"""The longest the loop sleeps without looking (a change made on another node is seen within it)."""
LEASE_MS: Final = 30_000
"""How long a node holds a firing it tries before another may take it (longer than a start takes)."""
MISFIRE_GRACE_MS: Final = 60_000
"""A fire time older than this when a node first sees it was missed (no node ran): `catchup` decides."""
BUFFER_RECHECK_MS: Final = 1000
"""How often a buffered firing (overlap buffer-one) looks whether the execution before it has ended."""
BATCH: Final = 100
"""Due schedules (or firings) read per round trip."""
MAX_ROUNDS: Final = 50
"""Full batches one pass works through per tenant before it looks at the next (the rest: the next pass, at once)."""
STOP_WAIT_S: Final = 2.0
"""How long a stopping loop lets the firings under way finish before it cancels them (their leases lapse)."""
CONCURRENCY: Final = 32
"""Firings tried at once by one node."""


def idempotency_key(member: str) -> str:
    """The start's idempotency key of a firing (`<id>:<fire ms>[:m]`)."""
    return f"schedule:{member}"


def _parse(member: str) -> tuple[int, int, bool] | None:
    parts = member.split(":")
    if len(parts) not in (2, 3) or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), len(parts) == 3


def _by_schedule(members: list[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for member in members:
        groups.setdefault(member.partition(":")[0], []).append(member)
    return [sorted(group, key=lambda m: (_parse(m) or (0, 0, False))[1]) for group in groups.values()]


class FiringHost(Protocol):
    """What a firing needs of the node: its start, its cancel (overlap cancel-previous), the executions' store."""

    store: ExecutionStore

    async def start_execution(self, caller: Caller, request: StartRequest) -> tuple[StartResult, bool]: ...

    async def cancel(self, caller: Caller, execution_id: int, request: ControlRequest) -> CancelResult: ...


class ScheduleLoop:
    def __init__(
        self, node: FiringHost, store: ScheduleStore, clock: Clock, tenants: Callable[[], Sequence[str]]
    ) -> None:
        self.node = node
        self.store = store
        self.clock = clock
        self.tenants = tenants
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._busy: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._stopping = False
        """(tenant, scheduleID) -> the task trying that schedule's firings now."""

    def wake(self) -> None:
        """Look now (a schedule was made, changed or triggered here)."""
        self._wake.set()

    def stop(self) -> None:
        """End `run_forever` after the pass under way (not in the middle of a Redis command: a command cancelled
        half way leaves its pooled connection for the driver to drop, which the other users of the pool feel)."""
        self._stopping = True
        self._wake.set()

    async def run_forever(self) -> None:
        self._stopping = False
        try:
            while not self._stopping:
                self._wake.clear()
                earliest: float | None = None
                try:
                    earliest = await self.tick(wait=False)
                except ProcEngineError as exc:  # the store failed: look again after the cap
                    log.warning("schedule loop: %s", exc.message)
                except Exception:
                    check_cancelled()
                    log.exception("schedule loop: a pass failed; looking again after %s ms", POLL_CAP_MS)
                now = self.clock.now_ms()
                wait_ms = POLL_CAP_MS if earliest is None else min(POLL_CAP_MS, max(0.0, earliest - now))
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_ms / 1000):
                        await self._wake.wait()
        finally:  # the firings under way finish (bounded) rather than stop half way through a start
            busy = list(self._busy.values())
            if busy and self._stopping:
                await asyncio.wait(busy, timeout=STOP_WAIT_S)
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)

    async def tick(self, *, wait: bool = True) -> float | None:
        """One pass: claim what is due by now, try the claimed firings whose time has come; the earliest time
        anything is due next (None: nothing is). `wait`: return once the firings tried are done (the tests'); else
        they go on as tasks of their own while the loop claims what comes due next (each wakes the loop when
        done), one schedule's firings never two at a time."""
        earliest: float | None = None
        for tenant in self.tenants():
            for _ in range(MAX_ROUNDS):
                now = self.clock.now_ms()
                due = await self.store.due(tenant, now, BATCH)
                await asyncio.gather(*(self._claim(tenant, schedule_id, due_ms, now) for schedule_id, due_ms in due))
                firings = await self.store.firings(tenant, now, BATCH)
                started = [self._try_group(tenant, group) for group in _by_schedule(firings)]
                if wait:
                    await asyncio.gather(*(task for task in started if task is not None))
                if len(due) < BATCH and (not wait or len(firings) < BATCH):
                    break
            head = (await self.store.earliest(tenant)).at_ms
            if head is not None and (earliest is None or head < earliest):
                earliest = head
        return earliest

    def _try_group(self, tenant: str, group: list[str]) -> asyncio.Task[None] | None:
        """A task that tries one schedule's firings, unless one is at it already (it wakes the loop when done)."""
        key = (tenant, group[0].partition(":")[0])
        if key in self._busy:
            return None
        task = asyncio.create_task(self._attempt_in_order(tenant, group), name=f"schedule-{key[1]}")
        self._busy[key] = task

        def finished(done: asyncio.Task[None]) -> None:
            self._busy.pop(key, None)
            if not done.cancelled() and done.exception() is not None:
                log.error("schedule firing of %s (tenant %s) failed", key[1], tenant, exc_info=done.exception())
            self._wake.set()

        task.add_done_callback(finished)
        return task

    # --- claiming a due time -------------------------------------------------------------------------------

    async def _claim(self, tenant: str, schedule_id: int, due_ms: int, now: int) -> None:
        fields = await self.store.read(tenant, schedule_id)
        if not fields:  # deleted between the two reads (delete takes it out of the due set itself), or lost
            await self.store.forget_due(tenant, schedule_id)
            return
        spec = spec_of(fields)
        checked, problems = check_spec(spec, int(fields.get("createdMs") or now))
        rev = fields.get("rev", "")
        if checked is None or fields.get("paused") == "1":
            log.warning("schedule %s (tenant %s): cannot fire: %s", schedule_id, tenant, problems or "paused")
            await self.store.claim(tenant, schedule_id, due_ms, rev, None, now, [], None)
            return
        times, following = missed(checked, due_ms, now)
        policy = spec.get("catchup", "none")
        if policy == "all":
            fire = times
        elif policy == "latest":
            fire = times[-1:]
        else:
            fire = [t for t in times[-1:] if now - t <= MISFIRE_GRACE_MS]
        outcome = None
        if not fire or fire[0] != due_ms:
            outcome = {
                "f": str(due_ms),
                "r": "skipped-missed",
                "w": f"missed while no node fired it (catchup {policy}, window {spec.get('catchupWindow') or '1h'})"
                + ("" if not fire else f"; fired from {fire[0]} on"),
                "t": str(now),
                "m": "0",
            }
        members = [member_of(schedule_id, t) for t in fire]
        if not await self.store.claim(tenant, schedule_id, due_ms, rev, following, now, members, outcome):
            log.debug("schedule %s (tenant %s): due %s claimed by another node or changed", schedule_id, tenant, due_ms)

    # --- trying a firing -----------------------------------------------------------------------------------

    async def _attempt_in_order(self, tenant: str, members: list[str]) -> None:
        """One schedule's firings one after the other, oldest first (each looks at the execution the one before
        started, for its overlap policy); the schedules' side by side."""
        async with self._limit:
            for member in members:
                try:
                    await self._try(tenant, member)
                except (Unavailable, TooManyRequests) as exc:  # the store, a draining node, the tenant's start rate:
                    # the lease lapses and the firing is tried again
                    log.warning("schedule firing %s (tenant %s): %s; tried again later", member, tenant, exc.message)

    async def _try(self, tenant: str, member: str) -> None:
        parsed = _parse(member)
        now = self.clock.now_ms()
        lease = await self.store.take(tenant, member, now, LEASE_MS)
        if lease is None:
            return
        if parsed is None:  # nothing this version wrote: drop it
            await self.store.done(tenant, 0, member, lease, {}, None)
            return
        schedule_id, fire_ms, manual = parsed
        fields = await self.store.read(tenant, schedule_id)
        outcome = {"f": str(fire_ms), "t": str(now), "m": "1" if manual else "0"}
        if not fields:  # deleted: the firing goes with it (done writes no outcome for a schedule that is gone)
            await self.store.done(tenant, schedule_id, member, lease, {**outcome, "r": "failed"}, None)
            return
        spec = spec_of(fields)
        caller = Caller(tenant, f"schedule:{schedule_id}", f"schedule-{member}")
        previous = int(fields["lastExecution"]) if fields.get("lastExecution", "").isdigit() else None
        policy = spec.get("overlap", "skip")
        if previous is not None and policy != "allow":
            status = (await self.node.store.fields(previous)).get("status", "")
            if status and status not in FINAL_STATUSES:
                why = f"execution {previous} is {status}"
                if policy == "skip":
                    await self._done(tenant, schedule_id, member, lease, outcome, "skipped-overlap", None, why)
                    return
                if policy == "buffer-one":
                    if fields.get("buffered") and fields["buffered"] != member:
                        why += f"; firing {fields['buffered']} is buffered already"
                        await self._done(tenant, schedule_id, member, lease, outcome, "skipped-overlap", None, why)
                    else:
                        await self.store.done(tenant, schedule_id, member, lease,
                                              {**outcome, "r": "buffered", "w": why}, None,
                                              retry_at_ms=now + BUFFER_RECHECK_MS)  # fmt: skip
                    return
                with contextlib.suppress(InvalidTransition, NotFound):  # cancel-previous: it may have just ended
                    await self.node.cancel(caller, previous, ControlRequest(reason=f"schedule {schedule_id} fires"))
        request = StartRequest(
            processID=spec.get("processID"),
            processKey=spec["processKey"],
            variables=spec.get("variables") or {},
            attributes=spec.get("attributes"),
            idempotencyKey=idempotency_key(member),
        )
        try:
            started, created = await self.node.start_execution(caller, request)
        except (Unavailable, TooManyRequests):
            raise
        except ProcEngineError as exc:  # the process is gone or deprecated, variables refused: said, not retried
            await self._done(tenant, schedule_id, member, lease, outcome, "failed", None, f"{exc.code}: {exc.message}")
            return
        note = None if created else "started by an earlier try of this firing (its node stopped before saying so)"
        await self._done(tenant, schedule_id, member, lease, outcome, "started", started.executionID, note)

    async def _done(
        self, tenant: str, schedule_id: int, member: str, lease: float, outcome: dict[str, str], result: str,
        execution_id: int | None, why: str | None,
    ) -> None:  # fmt: skip
        written = {**outcome, "r": result}
        if execution_id is not None:
            written["e"] = str(execution_id)
        if why:
            written["w"] = why
        if not await self.store.done(tenant, schedule_id, member, lease, written, execution_id):
            log.info("schedule firing %s (tenant %s): another node took it over; its outcome stands", member, tenant)
