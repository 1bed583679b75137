"""What a bulk operation does to each execution: the same call as the action's single form, through the node service
(so it is forwarded to the execution's owner, fenced and audited as that form is), and what its answer counts as.

`matching_ids` is the one place the executions a filter matches are found, page by page: the list query's plan of `GET
…/executions/processes` with the whole of its filter (attributes, start times, error type, process key), so a job
refuses what the list refuses, read as ids (`Search.matching_ids`: a filter whose one index holds exactly its matches,
`{processID, status: running}` say, is read from that index alone, without a row).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from procengine.api.filters import ATTR_PREFIX, ExecutionFilter
from procengine.api.service import Caller
from procengine.api.views import (
    CancelResult,
    ControlRequest,
    MigrateRequest,
    MigrateResult,
    PauseResult,
    ResumeResult,
    RetryRequest,
    RetryResult,
    SignalResult,
    VariablesResult,
)
from procengine.errors import (
    InvalidTransition,
    NotFound,
    NotHeldByJob,
    PayloadTooLarge,
    ProcEngineError,
    StateCorrupted,
    Unavailable,
    ValidationFailed,
)
from procengine.node.search import Search
from procengine.runtime.cancellation import check_cancelled
from procengine.statuses import Status
from procengine.store.bulk_jobs import ItemOutcome
from procengine.store.executions import PAUSED_BY_BULK

__all__ = ["ACTIONS", "FILTER_PAGE", "BulkEngine", "JobParams", "apply_item", "matching_ids", "pause_outcome"]

log = logging.getLogger(__name__)

FILTER_PAGE: Final = 1000
"""Execution ids read per page when a filter is resolved."""
ITEM_ATTEMPTS: Final = 3
"""How often an item is tried while the execution cannot be reached (503) before it counts as failed."""
TEXT_FILTERS: Final = {
    "processKey": "process_key",
    "startedAfter": "started_after",
    "startedBefore": "started_before",
    "errorType": "error_type",
}
"""The list's text filters: the name a bulk `filter` gives -> ExecutionFilter's."""
FILTER_NAMES: Final = ("status", "processID", *TEXT_FILTERS, "attr.<name>", "attr.<name>.<gte|lte|gt|lt>")


class BulkEngine(Protocol):
    """What a bulk operation needs of the node service (`procengine.node.node.Node`)."""

    search: Search
    """The execution list's filters (`matching_ids` reads every match through it)."""

    async def pause(self, caller: Caller, execution_id: int, request: ControlRequest) -> PauseResult: ...

    async def resume(self, caller: Caller, execution_id: int, request: ControlRequest) -> ResumeResult: ...

    async def cancel(self, caller: Caller, execution_id: int, request: ControlRequest) -> CancelResult: ...

    async def signal(
        self, caller: Caller, execution_id: int, name: str, payload: Any, idempotency_key: str | None = None
    ) -> SignalResult: ...

    async def retry(self, caller: Caller, execution_id: int, request: RetryRequest) -> RetryResult: ...

    async def edit_variables(
        self, caller: Caller, execution_id: int, patch: Any, reason: str | None = None
    ) -> VariablesResult: ...

    async def migrate(self, caller: Caller, execution_id: int, request: MigrateRequest) -> MigrateResult: ...

    async def execution_fields(self, caller: Caller, execution_id: int, names: list[str]) -> dict[str, str]:
        """Fields of the caller's execution ({} if it is not the caller's)."""
        ...

    async def paused_by_job(self, tenant: str, job_id: int, execution_id: int) -> str | None:
        """The pausedAt the bulk pause `job_id` recorded for the execution (None: it did not pause it)."""
        ...

    async def pause_here(self, caller: Caller, execution_ids: list[int], reason: str | None) -> dict[int, Any]:
        """The single pause of each of `execution_ids` whose actor this node drives, put straight into its mailbox
        (node/bulk_local.py): executionID -> its answer (a PauseResult, or the error it raised); the others are
        not in it (they go the whole way: `apply_item`)."""
        ...


@dataclass(frozen=True, slots=True)
class JobParams:
    """A job's action and what its items need, as its hash holds them."""

    job_id: int
    action: str
    reason: str | None
    signal: str | None = None
    payload: Any = None
    variables: dict[str, Any] | None = None
    version: int | None = None
    mapping: dict[str, str] | None = None
    undo_of: int | None = None


ItemCall = Callable[[BulkEngine, Caller, int, JobParams], Awaitable[str]]
"""Apply the action to one execution; what it answers is the pausedAt of a pause ("" otherwise)."""


async def _pause(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    try:
        return (await engine.pause(caller, execution_id, ControlRequest(reason=job.reason))).pausedAt
    except InvalidTransition as exc:
        paused_at = await _paused_already(engine, caller, execution_id, job, exc)
        if paused_at is None:
            raise
        return paused_at


async def _paused_already(
    engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams, exc: InvalidTransition
) -> str | None:
    """A pause refused as paused, applied again after a failover: its pausedAt if this job paused it (before its
    outcome was written), else None."""
    if exc.current_status != Status.PAUSED.value:
        return None
    fields = await engine.execution_fields(caller, execution_id, ["status", "pausedAt", PAUSED_BY_BULK])
    if fields.get("status") == Status.PAUSED.value and fields.get(PAUSED_BY_BULK) == str(job.job_id):
        return fields.get("pausedAt", "")
    return None


async def _resume(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    if job.undo_of is not None:  # an undo resumes only what the bulk pause paused and is still paused by it
        await _still_paused_by(engine, caller, execution_id, job.undo_of)
    await engine.resume(caller, execution_id, ControlRequest(reason=job.reason))
    return ""


async def _cancel(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    await engine.cancel(caller, execution_id, ControlRequest(reason=job.reason))
    return ""


async def _signal(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    # keyed by the job: applied again after a failover, a signal is delivered once
    await engine.signal(caller, execution_id, job.signal or "", job.payload, f"bulk-{job.job_id}")
    return ""


async def _retry(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    request = RetryRequest(variables=job.variables, reason=job.reason, idempotencyKey=f"bulk-{job.job_id}")
    await engine.retry(caller, execution_id, request)
    return ""


async def _edit(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    await engine.edit_variables(caller, execution_id, job.variables or {}, job.reason)
    return ""


async def _migrate(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> str:
    assert job.version is not None  # checked when the job was created
    request = MigrateRequest(version=job.version, mapping=job.mapping or {}, reason=job.reason)
    try:
        await engine.migrate(caller, execution_id, request)
    except ValidationFailed:
        # applied again after a failover: already of that version (before its outcome was written)?
        fields = await engine.execution_fields(caller, execution_id, ["processVersion"])
        if fields.get("processVersion") != str(job.version):
            raise
    return ""


ACTIONS: Final[dict[str, ItemCall]] = {
    "pause": _pause,
    "resume": _resume,
    "cancel": _cancel,
    "signal": _signal,
    "retry": _retry,
    "edit-variables": _edit,
    "migrate": _migrate,
}


async def _still_paused_by(engine: BulkEngine, caller: Caller, execution_id: int, job_id: int) -> None:
    """An execution a bulk pause paused, and that has stayed paused since that pause: its pausedAt is the one the
    pause answered. One resumed by hand (running, or final) or paused again since (by hand or another job) is left
    alone. Read just before the resume: one resumed and paused again between the read and the resume is resumed."""
    recorded = await engine.paused_by_job(caller.tenant, job_id, execution_id)
    if recorded is None:
        raise NotHeldByJob(f"not paused by job {job_id}")
    fields = await engine.execution_fields(caller, execution_id, ["status", "pausedAt", PAUSED_BY_BULK])
    if not fields:
        raise NotFound(f"execution {execution_id} not found")
    if fields.get("status") != Status.PAUSED.value:
        raise NotHeldByJob(f"resumed since (execution is {fields.get('status')})")
    if fields.get("pausedAt") != recorded or fields.get(PAUSED_BY_BULK) != str(job_id):
        raise NotHeldByJob("paused again since")


async def apply_item(engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams) -> ItemOutcome:
    """Apply the job's action to one execution: done; refused where its state does not allow it (409), it is not
    the tenant's (404) or the action does not fit it (422, 413); failed when it cannot be reached after a few
    tries, or anything else goes wrong (one bad item never stops the job)."""
    call = ACTIONS.get(job.action)
    if call is None:  # a job's hash naming no action of this version (the API takes none other)
        return ItemOutcome(execution_id, "failed", f"unknown action {job.action[:50]!r}")
    for attempt in range(ITEM_ATTEMPTS):
        try:
            paused_at = await call(engine, caller, execution_id, job)
        except Unavailable as exc:
            if attempt + 1 == ITEM_ATTEMPTS:
                return ItemOutcome(execution_id, "failed", _short(exc.message))
            await asyncio.sleep(0.2 * 2**attempt)
            continue
        except Exception as exc:
            check_cancelled()
            return _outcome_of_error(execution_id, job, exc)
        return ItemOutcome(execution_id, "done", "", paused_at)
    return ItemOutcome(execution_id, "failed", "unreachable")  # not reached: the last attempt returns


async def pause_outcome(
    engine: BulkEngine, caller: Caller, execution_id: int, job: JobParams, answer: Any
) -> ItemOutcome:
    """What a pause answered by the execution's actor itself (`BulkEngine.pause_here`: its result, or the error it
    raised) counts as: what `apply_item` would count the same answer as."""
    if isinstance(answer, PauseResult):
        return ItemOutcome(execution_id, "done", "", answer.pausedAt)
    if isinstance(answer, InvalidTransition):
        paused_at = await _paused_already(engine, caller, execution_id, job, answer)
        if paused_at is not None:
            return ItemOutcome(execution_id, "done", "", paused_at)
    return _outcome_of_error(execution_id, job, answer)


def _outcome_of_error(execution_id: int, job: JobParams, exc: BaseException) -> ItemOutcome:
    """Refused where the execution's state does not allow the action (409), it is not the tenant's (404) or the
    action does not fit it (422, 413); failed for anything else (one bad item never stops the job)."""
    if isinstance(exc, InvalidTransition):
        return ItemOutcome(execution_id, "refused", f"execution is {exc.current_status}")
    if isinstance(exc, NotFound):
        return ItemOutcome(execution_id, "refused", "not found")
    if isinstance(exc, NotHeldByJob):
        return ItemOutcome(execution_id, "refused", exc.message)
    if isinstance(exc, StateCorrupted):
        return ItemOutcome(execution_id, "refused", "state corrupted")
    if isinstance(exc, ValidationFailed | PayloadTooLarge):
        return ItemOutcome(execution_id, "refused", _short(exc.message))
    if isinstance(exc, ProcEngineError):
        return ItemOutcome(execution_id, "failed", _short(exc.message))
    log.warning("bulk job %s: execution %s: %r", job.job_id, execution_id, exc, extra={"executionID": execution_id})
    return ItemOutcome(execution_id, "failed", type(exc).__name__)


def _short(message: str) -> str:
    """A reason short enough to count by (it is a field name in the job's hash)."""
    return message if len(message) <= 120 else message[:117] + "..."


def filter_problems(wanted: dict[str, Any]) -> list[str]:
    """What makes `wanted` not a filter of the list, each named (what the tenant's definitions declare, and the
    times' form, the list's own check says)."""
    problems = []
    for name, value in wanted.items():
        if name.startswith(ATTR_PREFIX):
            if ExecutionFilter.parameters({name: ""})[1]:
                problems.append(f"filter.{name}: not attr.<name> or attr.<name>.<gte|lte|gt|lt>")
            elif value is None or not isinstance(value, str | int | float | bool):
                problems.append(f"filter.{name}: {value!r} is not a text, a number or a boolean")
        elif name in TEXT_FILTERS:
            if not isinstance(value, str):
                problems.append(f"filter.{name}: {value!r} is not a text")
        elif name not in ("status", "processID"):
            problems.append(f"filter.{name}: unknown (known: {', '.join(FILTER_NAMES)})")
    status = wanted.get("status")
    if status is not None and status not in {s.value for s in Status}:
        problems.append(f"filter.status: {status!r} is not a status ({', '.join(s.value for s in Status)})")
    process_id = wanted.get("processID")
    if process_id is not None and not (
        isinstance(process_id, int) and not isinstance(process_id, bool) and process_id > 0
    ):
        problems.append(f"filter.processID: {process_id!r} is not a process id")
    return problems


async def matching_ids(engine: BulkEngine, caller: Caller, wanted: dict[str, Any]) -> AsyncIterator[list[int]]:
    """The caller's executions the list filter `wanted` matches, newest first, a page at a time (ValidationFailed,
    before any page, for a filter that is not one)."""
    problems = filter_problems(wanted)
    if problems:
        raise ValidationFailed("the filter is not one the executions list takes", problems)
    async for page in engine.search.matching_ids(caller.tenant, _execution_filter(wanted), page=FILTER_PAGE):
        yield page


def _execution_filter(wanted: dict[str, Any]) -> ExecutionFilter:
    """A checked bulk `filter` as the list takes its query (an attribute's value as its query text would be)."""
    given = {name: _as_text(value) for name, value in wanted.items() if name.startswith(ATTR_PREFIX)}
    attributes, _ = ExecutionFilter.parameters(given)
    texts = {field: wanted[name] for name, field in TEXT_FILTERS.items() if name in wanted}
    return ExecutionFilter(
        status=wanted.get("status"), process_id=wanted.get("processID"), attributes=attributes, **texts
    )


def _as_text(value: str | float | bool) -> str:
    """A filter value as the list's query would carry it: a text as it is, a number or a boolean as JSON writes it."""
    return value if isinstance(value, str) else json.dumps(value)
