"""One bulk operation running on the node that owns it: its targets a stretch at a time, each stretch's items applied
with bounded concurrency (and at most `maxPerSecond`), then its outcomes and the cursor written in one fenced write
(bulk_progress.lua). The node that adopts it after this one dies goes on from the cursor: the stretch in flight is
applied again (each single operation is idempotent or answers 409, counted once: see the script).

The job's status comes back with each write: paused (the runner lets the job go and ends: a paused job costs nothing;
a resume starts a runner again), cancelled or completed (it ends), fenced (another node owns it now: it ends).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Final

from procengine.api.service import Caller
from procengine.errors import StoreFailed
from procengine.node.bulk_items import BulkEngine, JobParams, apply_item, pause_outcome
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock, iso
from procengine.store.bulk_jobs import BulkJobStore, ItemOutcome

__all__ = ["CONCURRENCY", "Ended", "JobRunner", "params_of"]

log = logging.getLogger(__name__)

CONCURRENCY: Final = 64
"""Items of one job in flight at once."""
STRETCH: Final = 4 * CONCURRENCY
"""Items applied between two progress writes (fewer under a low maxPerSecond: a stretch lasts about a second, so that
a pause or cancel of the job takes effect within about that)."""
WRITE_RETRY_S: Final = (0.1, 0.3, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class Ended:
    """How a runner ended: `let_go` if the job is no longer this node's (ended, released, or fenced)."""

    status: str
    let_go: bool


def params_of(job_id: int, fields: dict[str, str]) -> JobParams:
    params = json.loads(fields.get("params") or "{}")
    undo_of = fields.get("undoOf", "")
    return JobParams(
        job_id=job_id,
        action=fields.get("action", ""),
        reason=fields.get("reason") or None,
        signal=params.get("signal"),
        payload=params.get("payload"),
        variables=params.get("variables"),
        version=params.get("version"),
        mapping=params.get("mapping"),
        undo_of=int(undo_of) if undo_of.isdigit() else None,
    )


class _Pacer:
    """At most `rate` starts a second (None: no limit)."""

    def __init__(self, rate: int | None) -> None:
        self.interval = 0.0 if not rate else 1.0 / rate
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        self.next_at = max(self.next_at, now)
        delay = self.next_at - now
        self.next_at += self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class JobRunner:
    def __init__(
        self,
        store: BulkJobStore,
        engine: BulkEngine,
        clock: Clock,
        node_id: str,
        tenant: str,
        job_id: int,
        epoch: int,
        fields: dict[str, str],
    ) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.node_id = node_id
        self.tenant = tenant
        self.job_id = job_id
        self.epoch = epoch
        self.params = params_of(job_id, fields)
        self.cursor = int(fields.get("cursor") or 0)
        rate = fields.get("maxPerSecond", "")
        self.rate = int(rate) if rate.isdigit() else None
        self.stretch = STRETCH if self.rate is None else max(1, min(STRETCH, self.rate))
        self.caller = Caller(
            tenant=tenant, by=fields.get("by", tenant), request_id=fields.get("requestId", ""), bulk=job_id
        )

    async def run(self) -> Ended:
        pacer = _Pacer(self.rate)
        while True:
            check_cancelled()
            ids = await self.store.targets(self.tenant, self.job_id, self.cursor, self.stretch)
            outcomes = await self._apply(ids, pacer)
            status = await self._write(self.cursor + len(ids), outcomes)
            if status is None:
                log.info("bulk job %s: another node runs it now; stopping here", self.job_id)
                return Ended("fenced", let_go=True)
            self.cursor += len(ids)
            if status == "running" and ids:
                continue
            if status == "paused":
                answer = await self.store.change_owner(
                    self.tenant, self.job_id, "release", self.node_id, self.epoch, "", iso(self.clock.now_ms())
                )
                if answer[0] == "RUNNING":  # resumed before it was let go: go on
                    continue
            return Ended(status, let_go=True)

    async def _apply(self, ids: list[int], pacer: _Pacer) -> list[ItemOutcome]:
        """The stretch's items. A pause (unpaced) goes first straight to the actors this node drives (each the
        actor's own single pause: `BulkEngine.pause_here`); the rest, CONCURRENCY workers taking the next one as
        each is done (not a task and a semaphore per item: the bulk pause of 10,000 is bound by the node's CPU)."""
        outcomes: dict[int, ItemOutcome] = {}
        if self.params.action == "pause" and self.rate is None:
            answers = await self.engine.pause_here(self.caller, ids, self.params.reason)
            for execution_id, answer in answers.items():
                outcome = await pause_outcome(self.engine, self.caller, execution_id, self.params, answer)
                outcomes[execution_id] = outcome
        rest = iter([execution_id for execution_id in ids if execution_id not in outcomes])  # shared by the workers

        async def worker() -> None:
            for execution_id in rest:
                await pacer.wait()
                outcomes[execution_id] = await apply_item(self.engine, self.caller, execution_id, self.params)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(CONCURRENCY, len(ids) - len(outcomes))):
                group.create_task(worker())
        return [outcomes[execution_id] for execution_id in ids]

    async def _write(self, cursor: int, outcomes: list[ItemOutcome]) -> str | None:
        """The stretch's outcomes and the new cursor, fenced by the epoch; retried while Redis is away (a node that
        cannot reach it for long is fenced meanwhile, and ends here). The job's status, None if fenced."""
        for attempt, delay in enumerate((*WRITE_RETRY_S, None)):
            now = self.clock.now_ms()
            try:
                answer = await asyncio.shield(
                    self.store.progress(
                        self.tenant, self.job_id, self.node_id, self.epoch, cursor, now, iso(now), outcomes
                    )
                )
                return answer.status
            except StoreFailed as exc:
                if delay is None:
                    raise
                log.warning("bulk job %s: progress not written (%s, try %s); again", self.job_id, exc, attempt + 1)
                await asyncio.sleep(delay)
        return None  # not reached
