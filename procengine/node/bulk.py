"""Bulk operations (issue 23, point 2): one action over the executions a filter matches (or a list of ids), run as a
durable job. Mixed into `Node`: the API's verbs (create, dry run, read, list, items, pause/resume/cancel, undo), the
node's runners (node/bulk_runner.py) and the adoption of a dead node's jobs.

A job is created with its targets fixed (the filter's matches when it is created, store/bulk_jobs.py), owned by the
node that created it, and fenced like an execution: when that node dies, the reconciler's pass over the dead node
(the one it makes for its executions: `Reconciler.sweep_also`) reads the dead node's set of jobs and adopts the
running ones (bulk_owner.lua), which go on from their cursor. An idle node has no job to look at: nothing polls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Final, cast

from procengine.actors.messages import Command
from procengine.api.bulk_views import (
    BulkCreated,
    BulkDryRun,
    BulkItem,
    BulkItems,
    BulkJobList,
    BulkJobView,
    BulkRequest,
    BulkSteerRequest,
)
from procengine.api.service import Caller
from procengine.errors import InvalidTransition, NotFound, Unavailable, ValidationFailed
from procengine.node.bulk_items import BulkEngine, matching_ids
from procengine.node.bulk_local import ask_local
from procengine.node.bulk_runner import CONCURRENCY, Ended, JobRunner
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock, iso
from procengine.store.bulk_jobs import BulkJobStore

if TYPE_CHECKING:
    from procengine.node.queries import Queries
    from procengine.node.registry import Registry
    from procengine.settings import Settings
    from procengine.store.executions import ExecutionStore

__all__ = ["MAX_MATCHED", "BulkOperations"]

log = logging.getLogger(__name__)

MAX_MATCHED: Final = 100_000
"""The most executions one job may act on (a filter matching more is refused: narrow it, or run several jobs)."""
SAMPLE: Final = 20
ITEMS_PAGE: Final = 100
NEEDS_VARIABLES: Final = ("edit-variables",)
FIELDS_FOR: Final[dict[str, tuple[str, ...]]] = {
    "signal": ("signal", "payload"),
    "retry": ("variables",),
    "edit-variables": ("variables",),
    "migrate": ("version", "mapping"),
}
"""The fields of a request each action takes beyond the common ones (any other is a problem)."""


def _cursor(cursor: str | None, what: str) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
        raise ValidationFailed("bad cursor", [f"cursor: {cursor!r} is not a cursor this API gave ({what})"])
    return int(cursor)


def job_view(job_id: int, fields: dict[str, str]) -> BulkJobView:
    def number(name: str) -> int:
        value = fields.get(name, "")
        return int(value) if value.isdigit() else 0

    refused = {name[len("refused:") :]: int(v) for name, v in fields.items() if name.startswith("refused:")}
    optional = {name: fields.get(name) or None for name in ("updatedAt", "endedAt", "reason", "error")}
    numbers = {name: number(name) or None for name in ("maxPerSecond", "undoOf", "undoneBy")}
    return BulkJobView.model_validate(
        {
            "jobID": job_id,
            "action": fields.get("action"),
            "status": fields.get("status"),
            "matched": number("matched"),
            "done": number("done"),
            "refused": refused,
            "failed": number("failed"),
            "createdAt": fields.get("createdAt", ""),
            "by": fields.get("by", ""),
            "filter": json.loads(fields["filter"]) if fields.get("filter") else None,
            **optional,
            **numbers,
        }
    )


class BulkOperations:
    """Mixed into `Node`, which provides `bulk_store`, `clock`, `node_id`, `store`, `queries` and the node service's
    single operations (`bulk_items.BulkEngine`)."""

    bulk_store: BulkJobStore
    clock: Clock
    node_id: str
    _runners: dict[tuple[str, int, int], asyncio.Task[None]]
    """(tenant, jobID, epoch) -> the task running the job here at that epoch (two only in the moment a runner that
    let its job go is finishing and a resume has started it again here)."""

    if TYPE_CHECKING:
        store: ExecutionStore
        queries: Queries
        registry: Registry
        settings: Settings

        def _refuse_if_draining(self) -> None: ...

    # --- the API ---------------------------------------------------------------------------------------------

    async def bulk(self, caller: Caller, request: BulkRequest) -> BulkDryRun | BulkCreated:
        """A dry run (how many match, a sample), or a job created and started here (202)."""
        problems = _problems(request)
        targets: list[int] = []
        try:
            if request.ids is not None:
                targets = list(dict.fromkeys(request.ids))
            elif request.filter is not None:
                async for page in matching_ids(self._engine(), caller, request.filter):
                    targets += page
                    if len(targets) > MAX_MATCHED:
                        problems.append(f"filter: matches more than {MAX_MATCHED} executions; narrow it")
                        break
        except ValidationFailed as exc:
            problems += exc.problems
        if problems:
            raise ValidationFailed("the bulk operation cannot be run", problems)
        if request.dryRun:
            return BulkDryRun(action=request.action, matched=len(targets), sample=targets[:SAMPLE])
        self._refuse_if_draining()
        params = {name: getattr(request, name) for name in FIELDS_FOR.get(request.action, ())}
        return await self._create_job(caller, request.action, targets, request.reason, request.maxPerSecond,
                                      params=params, filter=request.filter)  # fmt: skip

    async def _create_job(
        self,
        caller: Caller,
        action: str,
        targets: list[int],
        reason: str | None,
        max_per_second: int | None,
        *,
        params: dict[str, Any],
        filter: dict[str, Any] | None = None,
        undo_of: int | None = None,
        job_id: int | None = None,
    ) -> BulkCreated:
        job_id = job_id or await self.bulk_store.new_id()
        now = iso(self.clock.now_ms())
        fields: dict[str, str | int] = {
            "jobID": job_id,
            "tenant": caller.tenant,
            "action": action,
            "status": "running",
            "matched": len(targets),
            "cursor": 0,
            "done": 0,
            "refused": 0,
            "failed": 0,
            "createdAt": now,
            "updatedAt": now,
            "by": caller.by,
            "requestId": caller.request_id,
            "reason": reason or "",
            "params": json.dumps(params, separators=(",", ":")),
            "owner": self.node_id,
            "epoch": 1,
        }
        if filter is not None:
            fields["filter"] = json.dumps(filter, separators=(",", ":"))
        if max_per_second is not None:
            fields["maxPerSecond"] = max_per_second
        if undo_of is not None:
            fields["undoOf"] = undo_of
        await self.bulk_store.own(self.node_id, caller.tenant, job_id)  # before the job names this node its owner
        await self.bulk_store.create(caller.tenant, job_id, fields, targets)
        log.info("bulk job %s: %s of %s executions (tenant %s)", job_id, action, len(targets), caller.tenant)
        self._start_runner(caller.tenant, job_id, 1, {k: str(v) for k, v in fields.items()})
        return BulkCreated(jobID=job_id, status="running", matched=len(targets))

    async def bulk_job(self, caller: Caller, job_id: int) -> BulkJobView:
        return job_view(job_id, await self._job(caller, job_id))

    async def bulk_jobs(self, caller: Caller, *, limit: int, cursor: str | None) -> BulkJobList:
        ids = await self.bulk_store.job_ids(caller.tenant, _cursor(cursor, "bulk operations"), limit + 1)
        more, ids = len(ids) > limit, ids[:limit]
        rows = await self.bulk_store.many(caller.tenant, ids)
        items = [job_view(i, row) for i, row in zip(ids, rows, strict=True) if row]
        return BulkJobList(items=items, nextCursor=str(ids[-1]) if more and ids else None)

    async def bulk_items(self, caller: Caller, job_id: int, *, limit: int, cursor: str | None) -> BulkItems:
        await self._job(caller, job_id)
        if cursor is not None and not _stream_id(cursor):
            raise ValidationFailed("bad cursor", [f"cursor: {cursor!r} is not a cursor this API gave"])
        entries = await self.bulk_store.items(caller.tenant, job_id, cursor, limit + 1)
        more, entries = len(entries) > limit, entries[:limit]
        items = [
            BulkItem.model_validate(
                {
                    "executionID": int(fields.get("e", "0")),
                    "outcome": fields.get("o", "failed"),
                    "reason": fields.get("r") or None,
                    "at": iso(int(fields.get("t", "0"))),
                }
            )
            for _, fields in entries
        ]
        return BulkItems(items=items, nextCursor=entries[-1][0] if more and entries else None)

    async def bulk_steer(self, caller: Caller, job_id: int, verb: str, request: BulkSteerRequest) -> BulkJobView:
        """Pause, resume or cancel a job (409 with its status where that status does not allow it)."""
        await self._job(caller, job_id)
        if verb == "resume":  # this node may run it from now on: in its set before the write that says so
            await self.bulk_store.own(self.node_id, caller.tenant, job_id)
        answer = await self.bulk_store.steer(caller.tenant, job_id, verb, self.node_id, iso(self.clock.now_ms()))
        if answer[0] == "MISSING":
            raise NotFound(f"bulk operation {job_id} not found")
        if answer[0] == "CONFLICT":
            raise InvalidTransition(f"cannot {verb} a bulk operation that is {answer[1]}", answer[1])
        if answer[0] == "OK" and answer[2] == "1":
            fields = await self.bulk_store.read(caller.tenant, job_id)
            self._start_runner(caller.tenant, job_id, int(answer[3]), fields)
        elif verb == "resume" and not self._runs_here(caller.tenant, job_id):
            await self.bulk_store.disown(self.node_id, caller.tenant, job_id)  # another node still runs it
        return await self.bulk_job(caller, job_id)

    async def bulk_undo(self, caller: Caller, job_id: int, request: BulkSteerRequest) -> BulkCreated:
        """A resume job over exactly the executions the bulk pause `job_id` paused and that it still holds paused
        (each item checks that: see `bulk_items._still_paused_by`)."""
        fields = await self._job(caller, job_id)
        if fields.get("action") != "pause":
            raise ValidationFailed("only a bulk pause can be undone", [f"jobID: bulk operation {job_id} is a "
                                   f"{fields.get('action')}, not a pause"])  # fmt: skip
        status = fields.get("status", "")
        if status in ("running", "paused"):
            raise InvalidTransition(
                f"bulk operation {job_id} is {status}: cancel it (or let it end) before undoing it", status
            )
        if not fields.get("endedAt"):  # cancelled, and its last stretch not yet written: what it paused may grow
            raise InvalidTransition(f"bulk operation {job_id} is still finishing its last items; try again", status)
        new_id = await self.bulk_store.new_id()
        if not await self.bulk_store.set_field(caller.tenant, job_id, "undoneBy", str(new_id)):
            again = await self.bulk_store.read(caller.tenant, job_id)
            raise InvalidTransition(f"bulk operation {job_id} was undone by job {again.get('undoneBy')}", status)
        targets = sorted(await self.bulk_store.paused_by(caller.tenant, job_id), reverse=True)
        reason = request.reason or f"undo of bulk operation {job_id}"
        return await self._create_job(caller, "resume", targets, reason, None, params={}, undo_of=job_id, job_id=new_id)

    async def _job(self, caller: Caller, job_id: int) -> dict[str, str]:
        fields = await self.bulk_store.read(caller.tenant, job_id)
        if not fields or fields.get("tenant") != caller.tenant:
            raise NotFound(f"bulk operation {job_id} not found")
        return fields

    # --- what the items need of the node (bulk_items.BulkEngine) ---------------------------------------------

    async def execution_fields(self, caller: Caller, execution_id: int, names: list[str]) -> dict[str, str]:
        [row] = await self.store.many_fields([execution_id], [*names, "tenant"])
        return row if row.get("tenant") == caller.tenant else {}

    async def paused_by_job(self, tenant: str, job_id: int, execution_id: int) -> str | None:
        return await self.bulk_store.paused_at(tenant, job_id, execution_id)

    async def pause_here(self, caller: Caller, execution_ids: list[int], reason: str | None) -> dict[int, Any]:
        try:
            self._refuse_if_draining()
        except Unavailable:
            return {}  # each goes the whole way, and is refused there as a single pause would be
        deadline_s = self.settings.pause_grace_ms / 1000 + 30  # `_ask`'s
        command = Command("pause", caller, reason)
        return await ask_local(self.registry, execution_ids, command, window=CONCURRENCY, deadline_s=deadline_s)

    # --- runners ---------------------------------------------------------------------------------------------

    def _engine(self) -> BulkEngine:
        """This node as its jobs' items see it (`Node` has every method `BulkEngine` names)."""
        return cast("BulkEngine", self)

    def _runs_here(self, tenant: str, job_id: int) -> bool:
        return any(key[:2] == (tenant, job_id) for key in self._runners)

    def _start_runner(self, tenant: str, job_id: int, epoch: int, fields: dict[str, str]) -> None:
        key = (tenant, job_id, epoch)
        if key in self._runners:
            return
        runner = JobRunner(self.bulk_store, self._engine(), self.clock, self.node_id, tenant, job_id, epoch, fields)
        task = asyncio.create_task(self._run(runner), name=f"bulk-{job_id}")
        self._runners[key] = task
        task.add_done_callback(lambda _: self._runners.pop(key, None))

    async def _run(self, runner: JobRunner) -> None:
        try:
            ended: Ended = await runner.run()
        except asyncio.CancelledError:
            raise  # the node stops: the job stays this node's, and is adopted once its heartbeat lapses
        except Exception as exc:
            check_cancelled()
            log.exception("bulk job %s: failed", runner.job_id)
            try:
                await runner.store.change_owner(
                    runner.tenant, runner.job_id, "fail", self.node_id, runner.epoch, repr(exc)[:300],
                    iso(self.clock.now_ms()),
                )  # fmt: skip
            except Exception:
                check_cancelled()
                return  # left to whoever adopts it
            ended = Ended("failed", let_go=True)
        log.info("bulk job %s: %s", runner.job_id, ended.status)
        self._runners.pop((runner.tenant, runner.job_id, runner.epoch), None)
        if ended.let_go and not self._runs_here(runner.tenant, runner.job_id):  # not resumed here meanwhile
            try:
                await self.bulk_store.disown(self.node_id, runner.tenant, runner.job_id)
            except Exception:  # a superset: the next reader of the set takes it out
                check_cancelled()

    async def stop_bulk_runners(self) -> None:
        tasks = list(self._runners.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def bulk_idle(self) -> None:
        """Until no job runs here (tests, the bench)."""
        while self._runners:
            await asyncio.gather(*list(self._runners.values()), return_exceptions=True)

    async def adopt_jobs_of(self, dead: str) -> bool:
        """The jobs of a node whose heartbeat lapsed: the running ones are adopted (and go on here from their
        cursor), the paused ones let go (a resume starts them wherever it lands), the rest leave its set. True if
        something of it could not be dealt with now (the next pass tries again)."""
        left = False
        for tenant, job_id in await self.bulk_store.owned(dead):
            try:
                left |= not await self._adopt(dead, tenant, job_id)
            except Exception as exc:
                check_cancelled()
                log.warning("bulk job %s of node %s: not adopted: %r", job_id, dead, exc)
                left = True
        return left

    async def _adopt(self, dead: str, tenant: str, job_id: int) -> bool:
        fields = await self.bulk_store.read(tenant, job_id)
        epoch = fields.get("epoch", "")
        now = iso(self.clock.now_ms())
        if fields.get("owner") == dead and fields.get("status") == "running":
            await self.bulk_store.own(self.node_id, tenant, job_id)
            answer = await self.bulk_store.change_owner(
                tenant, job_id, "adopt", dead, int(epoch or 0), self.node_id, now
            )
            if answer[0] == "OK":
                log.info("bulk job %s: adopted from node %s at item %s", job_id, dead, fields.get("cursor"))
                self._start_runner(tenant, job_id, int(answer[1]), fields)
            else:
                await self.bulk_store.disown(self.node_id, tenant, job_id)
        elif fields.get("owner") == dead:  # paused (or ended without letting go): nobody's
            await self.bulk_store.change_owner(tenant, job_id, "release", dead, int(epoch or 0), "", now)
        await self.bulk_store.disown(dead, tenant, job_id)
        return True


def _stream_id(text: str) -> bool:
    head, _, tail = text.partition("-")
    return head.isascii() and head.isdigit() and len(head) <= 19 and (not tail or (tail.isdigit() and len(tail) <= 19))


def _problems(request: BulkRequest) -> list[str]:
    """Every problem of a bulk request that can be seen without reading anything."""
    problems: list[str] = []
    if (request.filter is None) == (request.ids is None):
        problems.append("filter, ids: give exactly one of them")
    takes = FIELDS_FOR.get(request.action, ())
    for name in ("signal", "payload", "variables", "version", "mapping"):
        given = getattr(request, name) is not None
        if given and name not in takes:
            problems.append(f"{name}: not taken by action {request.action}")
    if request.action == "signal" and request.signal is None:
        problems.append("signal: the signal's name is required for action signal")
    if request.action in NEEDS_VARIABLES and request.variables is None:
        problems.append("variables: a merge patch of the variables is required for action edit-variables")
    if request.action == "migrate" and request.version is None:
        problems.append("version: the version to migrate to is required for action migrate")
    return problems
