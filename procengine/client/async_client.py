"""`AsyncClient`: every route of the REST API as a typed coroutine, the event streams as async iterators.

Answers are parsed into the pydantic models the server renders them from (`procengine.api.views`), so a field
the server adds or renames shows up in both, or in neither. Error answers become the exceptions of
`procengine.client.errors`, one per code of the contract.

A 503 that carries Retry-After is retried after that many seconds (at most `retries` times, each wait at
most `max_retry_wait`): the server says so when the store is down for a moment, an execution's mailbox is
full or its owner is changing. A start or a signal without an idempotency key is not retried, because the
server may have done it before it failed; with a key, a repeat is answered as the first was. A 503 without
Retry-After (an id counter at its maximum) is raised at once: only an operator can fix it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import aiohttp
import pydantic
from pydantic import BaseModel

from procengine.api.problems import problems as listed_problems
from procengine.api.process_views import ExecutionCounts, ProcessDeleted, ProcessPatch
from procengine.api.views import (
    BATCH_LIMIT,
    BatchStartItem,
    BatchStartRequest,
    BatchStartResult,
    BreakpointsRequest,
    BreakpointsResult,
    CancelResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointView,
    CompleteRequest,
    ControlRequest,
    ElementPolicyRequest,
    ElementRetryRequest,
    ElementsView,
    ExecutionList,
    ExecutionStatusView,
    ExecutionSummary,
    FailRequest,
    ForkRequest,
    LogEntry,
    LogView,
    MigrateRequest,
    MigrateResult,
    MoveRequest,
    PauseResult,
    ProcessList,
    ProcessSummary,
    ProcessView,
    ResumeResult,
    RetryRequest,
    RetryResult,
    RewindRequest,
    RewindResult,
    RunNowRequest,
    SignalResult,
    SkipRequest,
    StartRequest,
    StartResult,
    StateView,
    StatusEvent,
    StatusName,
    StatusTable,
    SteppedResult,
    StepRequest,
    StepResult,
    VariablesResult,
)
from procengine.client.bulk import AsyncBulk
from procengine.client.connection import BASE_PATH, resolve_token, resolve_url
from procengine.client.errors import (
    ConnectionFailed,
    ProcEngineClientError,
    Unavailable,
    UnexpectedAnswer,
    ValidationError,
    error_from_answer,
)
from procengine.client.schedules import AsyncSchedules
from procengine.client.sse import parse_events
from procengine.client.streams import OPENED, EventStream, Opened

__all__ = ["FINAL_EVENTS", "AsyncClient"]

M = TypeVar("M", bound=BaseModel)

FINAL_EVENTS: Final = frozenset({"completed", "failed", "cancelled"})
"""The log events after which an execution's event stream ends."""

_JSON: Final = "application/json"
_YAML: Final = "application/yaml"
_NO_BODY: Final = object()


class _NoOutput:
    def __repr__(self) -> str:
        return "NO_OUTPUT"


NO_OUTPUT: Final = _NoOutput()
"""`skip`'s default: no output given (None sends `null`, which is stored)."""


class AsyncClient(AsyncBulk, AsyncSchedules):
    """A client of one procengine server, as one tenant (its token). Use it as an async context manager, or
    call `close()`: it holds a connection pool.

    `url` (else PROCENGINE_URL, else http://127.0.0.1:8080) is the server's root; `token` (else
    PROCENGINE_TOKEN) its bearer token. `timeout` bounds each request; an event stream is only bounded by
    `stream_idle_timeout` (the server sends a heartbeat every few seconds, so silence means a dead
    connection). A stream that breaks before its end is resumed with Last-Event-ID up to `reconnects` times
    in a row.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        reconnects: int = 3,
        stream_idle_timeout: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.api_url = self.url + BASE_PATH
        self._token = resolve_token(token)
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.reconnects = reconnects
        self.stream_idle_timeout = stream_idle_timeout
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (not a session that was given)."""
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def __repr__(self) -> str:
        return f"AsyncClient(url={self.url!r}, token={'***' if self._token else None})"

    # --- processes -------------------------------------------------------------------------------

    async def register(
        self, definition: Mapping[str, Any] | str | bytes, *, content_type: str | None = None
    ) -> ProcessSummary:
        """Register a definition: a mapping (sent as JSON) or a document's text, YAML or JSON (sent as YAML
        unless it starts with `{` or `content_type` says otherwise). An identical definition answers the
        version it is already registered as; an invalid one raises ValidationError with every problem."""
        if isinstance(definition, Mapping):
            body, kind = _dump(definition), _JSON
        else:
            body = definition.encode() if isinstance(definition, str) else definition
            kind = content_type or (_JSON if body.lstrip().startswith(b"{") else _YAML)
        return await self._data("POST", "/processes", ProcessSummary, body=body, content_type=kind)

    async def processes(self) -> ProcessList:
        """Every version of every definition of the tenant."""
        return await self._data("GET", "/processes", ProcessList)

    async def process(self, process_id: int) -> ProcessView:
        """One registered version, with its definition."""
        return await self._data("GET", f"/processes/{int(process_id)}", ProcessView)

    async def process_counts(self, process_id: int) -> ExecutionCounts:
        """How many of the tenant's stored executions of one version are in each status."""
        counts = (await self.process(process_id)).executions
        return counts if counts is not None else ExecutionCounts()

    async def deprecate_process(
        self, process_id: int, *, deprecated: bool = True, reason: str | None = None
    ) -> ProcessView:
        """Deprecate a version (no new start of it: Conflict with code PROCESS_DEPRECATED), or with
        `deprecated=False` no longer; its executions go on either way."""
        body = ProcessPatch(deprecated=deprecated, reason=reason).model_dump_json(exclude_none=True).encode()
        return await self._data("PATCH", f"/processes/{int(process_id)}", ProcessView, body=body)

    async def undeprecate_process(self, process_id: int, *, reason: str | None = None) -> ProcessView:
        """`deprecate_process(process_id, deprecated=False)`: the version takes new starts again."""
        return await self.deprecate_process(process_id, deprecated=False, reason=reason)

    async def delete_process(self, process_id: int, *, reason: str | None = None) -> ProcessDeleted:
        """Delete a version no stored execution uses (Conflict with code PROCESS_IN_USE otherwise: its `details`
        say how many); the highest version left becomes its key's latest."""
        params = {"reason": reason} if reason else None
        return await self._data("DELETE", f"/processes/{int(process_id)}", ProcessDeleted, params=params)

    # --- executions ------------------------------------------------------------------------------

    async def start(
        self,
        process_key: str | None = None,
        *,
        process_id: int | None = None,
        variables: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        pause_before: Sequence[str | Mapping[str, str]] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> StartResult:
        """Start an execution of the latest version of `process_key`, or of the version `process_id`.
        With `idempotency_key`, a repeat returns the first execution (and the request may be retried);
        `pause_before`: breakpoints from the start (as `set_breakpoints` sets them); `attributes`: search
        attributes the definition declares (a time as ISO-8601 text or a `datetime`)."""
        fields = {
            "processKey": process_key,
            "processID": process_id,
            "variables": dict(variables or {}),
            "idempotencyKey": idempotency_key,
            "pauseBefore": None if pause_before is None else [_breakpoint(given) for given in pause_before],
            "attributes": None if not attributes else {name: _jsonable(v) for name, v in attributes.items()},
        }
        start = _request_model(StartRequest, {name: value for name, value in fields.items() if value is not None})
        body = start.model_dump_json(exclude_none=True).encode()
        return await self._data(
            "POST", "/executions/processes", StartResult, body=body, retry=idempotency_key is not None
        )

    async def start_many(
        self,
        starts: Iterable[Mapping[str, Any]],
        *,
        process_key: str | None = None,
        process_id: int | None = None,
    ) -> BatchStartResult:
        """Start many executions: each of `starts` is a start request's fields (`variables`, `idempotencyKey`, and
        `processKey` or `processID`, else `process_key` or `process_id` here). Sent 1,000 to a request
        (`POST .../executions/processes/batch`); one outcome per start, in order (`index` counts from the first
        start given): `started`, `existing` (its idempotencyKey matched) or `failed` with the error it would
        have had alone. A request whose every start has an idempotencyKey is retried like a start with one."""
        default = {"processKey": process_key, "processID": process_id}
        default = {name: value for name, value in default.items() if value is not None}
        requests: list[StartRequest] = []
        problems: list[str] = []
        for index, start in enumerate(starts):
            fields = dict(start) if "processKey" in start or "processID" in start else {**default, **start}
            try:
                requests.append(_request_model(StartRequest, fields))
            except ValidationError as exc:
                problems += [f"starts.{index}.{problem}" for problem in exc.problems]
        if problems:
            raise ValidationError(f"starts are invalid: {len(problems)} problems", problems)
        items: list[BatchStartItem] = []
        for first in range(0, len(requests), BATCH_LIMIT):
            chunk = requests[first : first + BATCH_LIMIT]
            body = BatchStartRequest(items=chunk).model_dump_json(exclude_none=True).encode()
            answer = await self._data(
                "POST",
                "/executions/processes/batch",
                BatchStartResult,
                body=body,
                retry=all(request.idempotencyKey is not None for request in chunk),
            )
            items += [item.model_copy(update={"index": item.index + first}) for item in answer.items]
        return BatchStartResult(
            items=items,
            started=sum(item.outcome == "started" for item in items),
            existing=sum(item.outcome == "existing" for item in items),
            failed=sum(item.outcome == "failed" for item in items),
        )

    async def executions(
        self,
        *,
        status: StatusName | None = None,
        process_id: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        process_key: str | None = None,
        started_after: str | datetime | None = None,
        started_before: str | datetime | None = None,
        error_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ExecutionList:
        """One page of the tenant's executions, newest first; give back `nextCursor` for the next page
        (a filtered page may hold fewer than `limit` items while more pages follow). `attributes`: name -> a value
        (equal; a word of a text) or a range of a number or time, {"gte": 100, "lt": 500}; `started_after`
        (at or after) and `started_before` (before): ISO-8601 text or a `datetime`."""
        query = {
            "status": status,
            "processID": process_id,
            "processKey": process_key,
            "startedAfter": started_after,
            "startedBefore": started_before,
            "errorType": error_type,
            "limit": limit,
            "cursor": cursor,
        }
        params = {name: _query_text(value) for name, value in query.items() if value is not None}
        params.update(attribute_params(attributes or {}))
        return await self._data("GET", "/executions/processes", ExecutionList, params=params)

    async def iter_executions(
        self,
        *,
        status: StatusName | None = None,
        process_id: int | None = None,
        page_size: int = 100,
        process_key: str | None = None,
        started_after: str | datetime | None = None,
        started_before: str | datetime | None = None,
        error_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[ExecutionSummary, None]:
        """Every execution that matches, newest first, page after page (the filters as `executions` takes them)."""
        filters: dict[str, Any] = {
            "process_key": process_key,
            "started_after": started_after,
            "started_before": started_before,
            "error_type": error_type,
            "attributes": attributes,
        }
        cursor: str | None = None
        while True:
            page = await self.executions(
                status=status, process_id=process_id, limit=page_size, cursor=cursor, **filters
            )
            for item in page.items:
                yield item
            if page.nextCursor is None:
                return
            cursor = page.nextCursor

    async def status(self, execution_id: int) -> ExecutionStatusView:
        """Status, progress, timing, threads, error, parent and children."""
        return await self._data("GET", _execution(execution_id, "status"), ExecutionStatusView)

    async def pause(self, execution_id: int, reason: str | None = None) -> PauseResult:
        """Pause a running execution; answers once its snapshot is durable. InvalidTransition otherwise."""
        return await self._data("POST", _execution(execution_id, "pause"), PauseResult, body=_control(reason))

    async def resume(self, execution_id: int, reason: str | None = None) -> ResumeResult:
        """Resume a paused execution from its snapshot (StateCorrupted if it cannot be resumed from)."""
        return await self._data("POST", _execution(execution_id, "resume"), ResumeResult, body=_control(reason))

    async def cancel(self, execution_id: int, reason: str | None = None) -> CancelResult:
        """Cancel a running or paused execution, at once."""
        return await self._data("POST", _execution(execution_id, "cancel"), CancelResult, body=_control(reason))

    async def retry(
        self,
        execution_id: int,
        *,
        variables: Mapping[str, Any] | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RetryResult:
        """Retry a failed execution, same id: it goes on from the elements that failed (attempts reset), with
        `variables` merge-patched (RFC 7396: None removes a name) in the same write. InvalidTransition unless
        failed. With `idempotency_key` a repeat answers as the first (and it may be retried)."""
        given = {"variables": None if variables is None else dict(variables), "reason": reason,
                 "idempotencyKey": idempotency_key}  # fmt: skip
        body = {name: value for name, value in given.items() if value is not None}
        _request_model(RetryRequest, body)  # refused here as the server would; sent as given (null removes)
        return await self._data(
            "POST",
            _execution(execution_id, "retry"),
            RetryResult,
            body=_dump(body),
            retry=idempotency_key is not None,
        )

    async def edit_variables(
        self, execution_id: int, patch: Mapping[str, Any], *, reason: str | None = None
    ) -> VariablesResult:
        """Change a paused execution's variables by a JSON merge patch (RFC 7396: None removes a name, a mapping
        merges into the mapping it names). InvalidTransition unless paused."""
        params = {"reason": reason} if reason is not None else None
        return await self._data(
            "PATCH", _execution(execution_id, "variables"), VariablesResult, body=_dump(dict(patch)), params=params
        )

    # --- step controls: one element of a paused or failed execution (it is paused after) ---------------

    async def fork(
        self,
        execution_id: int,
        checkpoint: int | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        paused: bool = False,
        reason: str | None = None,
    ) -> StartResult:
        """Start a new execution of the same process version from kept checkpoint `checkpoint` of this one (its
        latest if None), `variables` merge-patched, running unless `paused`. NotFound unless kept."""
        given = {"checkpoint": checkpoint, "variables": None if variables is None else dict(variables),
                 "paused": paused or None, "reason": reason}  # fmt: skip
        body = {name: value for name, value in given.items() if value is not None}
        _request_model(ForkRequest, body)
        return await self._data("POST", _execution(execution_id, "fork"), StartResult, body=_dump(body))

    async def rewind(
        self,
        execution_id: int,
        checkpoint: int,
        *,
        variables: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> RewindResult:
        """Put a paused, failed or cancelled execution back to its kept checkpoint `checkpoint` (a `seq` of
        `checkpoints`), same id, `variables` merge-patched in the same write: paused there. NotFound for a checkpoint
        not kept, InvalidTransition while running."""
        given = {
            "checkpoint": checkpoint,
            "variables": None if variables is None else dict(variables),
            "reason": reason,
        }
        body = {name: value for name, value in given.items() if value is not None}
        _request_model(RewindRequest, body)
        return await self._data("POST", _execution(execution_id, "rewind"), RewindResult, body=_dump(body))

    async def migrate(
        self,
        execution_id: int,
        version: int,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> MigrateResult:
        """Move a paused or failed execution to `version` of its process (same id, same status), the elements
        renamed in it named by `mapping` ({old key: new key}). `dry_run`: only the plan and its problems, nothing
        written. ValidationError listing every problem of a plan that cannot be applied, NotFound for a version the
        process lacks, InvalidTransition in any other status."""
        given = {
            "version": version,
            "mapping": None if mapping is None else dict(mapping),
            "dryRun": dry_run or None,
            "reason": reason,
        }
        body = {name: value for name, value in given.items() if value is not None}
        _request_model(MigrateRequest, body)
        return await self._data("POST", _execution(execution_id, "migrate"), MigrateResult, body=_dump(body))

    async def step(self, execution_id: int, *, lane: str | None = None, reason: str | None = None) -> SteppedResult:
        """Step mode: a paused execution runs exactly the next element of each lane (or of `lane`) and pauses again;
        the answer says what ran. InvalidTransition unless paused."""
        body = {name: value for name, value in {"lane": lane, "reason": reason}.items() if value is not None}
        _request_model(StepRequest, body)
        return await self._data("POST", _execution(execution_id, "step"), SteppedResult, body=_dump(body))

    async def set_breakpoints(
        self, execution_id: int, pause_before: Sequence[str | Mapping[str, str]], *, reason: str | None = None
    ) -> BreakpointsResult:
        """Set where a running or paused execution pauses before an element (the whole set; [] clears it): element
        keys, or {"element": key, "when": CEL}. The answer's `alreadyStarted` are the runs that had begun (they will
        not stop); before every other run of those elements the execution will pause."""
        body: dict[str, Any] = {"pauseBefore": [_breakpoint(item) for item in pause_before]}
        if reason is not None:
            body["reason"] = reason
        _request_model(BreakpointsRequest, body)
        return await self._data("PUT", _execution(execution_id, "breakpoints"), BreakpointsResult, body=_dump(body))

    async def retry_element(
        self, execution_id: int, element: str, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        """Start `element` of a paused or failed execution's stack again (attempt 1); the execution is paused after
        it (resume goes on). `lane` names where it stands when it stands in several (branches, iterations)."""
        return await self._step(execution_id, element, "retry", ElementRetryRequest, {"lane": lane, "reason": reason})

    async def skip(
        self,
        execution_id: int,
        element: str,
        *,
        output: Any = NO_OUTPUT,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Skip `element`: recorded skipped, its `next` followed; an `output` given (None too) is stored as if it
        had run. The execution is paused after it."""
        body: dict[str, Any] = {"lane": lane, "reason": reason}
        if output is not NO_OUTPUT:
            body["output"] = output
        return await self._step(execution_id, element, "skip", SkipRequest, body, keep=("output",))

    async def complete(
        self,
        execution_id: int,
        element: str,
        output: Any = None,
        *,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Complete the task `element` as if its handler had returned `output`. The execution is paused after it."""
        body = {"output": output, "lane": lane, "reason": reason}
        return await self._step(execution_id, element, "complete", CompleteRequest, body, keep=("output",))

    async def fail(
        self,
        execution_id: int,
        element: str,
        error: str,
        *,
        type: str = "Error",
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Fail `element` with `error` of `type`: a catch clause for it takes the lane on (paused after), else the
        execution ends failed."""
        body = {"error": error, "type": type, "lane": lane, "reason": reason}
        return await self._step(execution_id, element, "fail", FailRequest, body)

    async def move(self, execution_id: int, lane: str, before: str, *, reason: str | None = None) -> StepResult:
        """Put `lane` (a thread's key, or a branch or iteration path) of a paused or failed execution before the
        element `before` of its thread or branch: a fresh entry, attempt 1. The execution is paused after it."""
        given = {"lane": lane, "before": before, "reason": reason}
        body = {name: value for name, value in given.items() if value is not None}
        _request_model(MoveRequest, body)
        return await self._data("POST", _execution(execution_id, "move"), StepResult, body=_dump(body))

    async def run_now(
        self, execution_id: int, element: str, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        """End the retry backoff or the delay `element` of a running execution waits on: it goes on at once.
        InvalidTransition unless running and waiting on such a timer."""
        return await self._step(execution_id, element, "run-now", RunNowRequest, {"lane": lane, "reason": reason})

    async def change_policy(
        self,
        execution_id: int,
        element: str,
        *,
        retry: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Change the pending task `element`'s retry policy (`retry`: maxAttempts, backoffMs, backoffMultiplier,
        maxBackoffMs, as a definition's) and/or timeout for this run of it, on a running or paused execution."""
        given = {"retry": None if retry is None else dict(retry), "timeoutMs": timeout_ms, "lane": lane,
                 "reason": reason}  # fmt: skip
        body = {name: value for name, value in given.items() if value is not None}
        _request_model(ElementPolicyRequest, body)
        path = _execution(execution_id, f"elements/{quote(element, safe='')}")
        return await self._data("PATCH", path, StepResult, body=_dump(body))

    async def _step(
        self,
        execution_id: int,
        element: str,
        action: str,
        model: type[BaseModel],
        given: dict[str, Any],
        keep: tuple[str, ...] = (),
    ) -> StepResult:
        body = {name: value for name, value in given.items() if value is not None or name in keep}
        _request_model(model, body)  # refused here as the server would
        path = _execution(execution_id, f"elements/{quote(element, safe='')}/{action}")
        return await self._data("POST", path, StepResult, body=_dump(body))

    async def signal(
        self, execution_id: int, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> SignalResult:
        """Deliver the signal `name` with `payload` (any JSON value; None sends an empty body, read as null).
        With `idempotency_key` it is delivered once however often it is sent (and may be retried)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        return await self._data(
            "POST",
            _execution(execution_id, f"signals/{quote(name, safe='')}"),
            SignalResult,
            body=b"" if payload is None else _dump(payload),
            headers=headers,
            retry=idempotency_key is not None,
        )

    async def log(self, execution_id: int) -> LogView:
        """The audit trail, oldest first."""
        return await self._data("GET", _execution(execution_id, "log"), LogView)

    async def elements(self, execution_id: int, *, limit: int | None = None, cursor: str | None = None) -> ElementsView:
        """A page of the element executions (a record per element, and per branch or iteration of a fan-out); give
        back `nextCursor` for the next page."""
        query = {"limit": limit, "cursor": cursor}
        params = {name: str(value) for name, value in query.items() if value is not None}
        return await self._data("GET", _execution(execution_id, "elements"), ElementsView, params=params)

    async def state(self, execution_id: int) -> StateView:
        """The decoded stack and memory snapshots."""
        return await self._data("GET", _execution(execution_id, "state"), StateView)

    async def checkpoints(
        self, execution_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> CheckpointList:
        """A page of the execution's kept checkpoints, newest first; give back `nextCursor` for the next page."""
        query = {"limit": limit, "cursor": cursor}
        params = {name: str(value) for name, value in query.items() if value is not None}
        return await self._data("GET", _execution(execution_id, "checkpoints"), CheckpointList, params=params)

    async def checkpoint(self, execution_id: int, seq: int) -> CheckpointView:
        """One kept checkpoint: its stack and memory decoded (NotFound unless kept)."""
        return await self._data("GET", _execution(execution_id, f"checkpoints/{seq}"), CheckpointView)

    async def checkpoint_diff(self, execution_id: int, a: int, b: int) -> CheckpointDiff:
        """What changed from kept checkpoint `a` to `b`."""
        return await self._data("GET", _execution(execution_id, f"checkpoints/{a}/diff/{b}"), CheckpointDiff)

    async def statuses(self) -> StatusTable:
        """The status table."""
        return await self._data("GET", "/statuses", StatusTable)

    # --- event streams ---------------------------------------------------------------------------

    def events(self, execution_id: int, after: str | None = None) -> EventStream[LogEntry]:
        """The execution's log entries as they are written, from the first (or after the entry `after`);
        ends after the final transition. `async with` it to be connected before going on."""
        return EventStream(self._stream(_execution(execution_id, "events"), after, LogEntry, ends=True))

    def status_events(self, after: str | None = None) -> EventStream[StatusEvent]:
        """The status changes of the tenant's executions from when it connects (or after the event `after`).
        It does not end: break out of it, and close it (`async with` it)."""
        return EventStream(self._stream("/executions/events", after, StatusEvent, ends=False))

    # --- outside the base path -------------------------------------------------------------------

    async def health(self) -> str:
        """`ok` while the server's process answers."""
        return str((await self._call("GET", self.url + "/health"))["status"])

    async def ready(self) -> str:
        """`ready` while the server's Redis answers; Unavailable otherwise."""
        return str((await self._call("GET", self.url + "/ready"))["status"])

    async def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        document: dict[str, Any] = await self._call("GET", self.url + "/openapi.json", enveloped=False)
        return document

    async def metrics(self) -> str:
        """The node's Prometheus metrics, as text."""
        session = self._session_now()
        try:
            async with session.get(self.url + "/metrics", timeout=self._timeout()) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _connection_failed(self.url, exc) from exc
        if response.status >= 400:
            raise error_from_answer(response.status, _json_or_none(text.encode()))
        return text

    # --- the plumbing ----------------------------------------------------------------------------

    async def _data(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        body: bytes | None = None,
        content_type: str = _JSON,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> M:
        data = await self._call(
            method,
            self.api_url + path,
            body=body,
            content_type=content_type,
            params=params,
            headers=headers,
            retry=retry,
        )
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise UnexpectedAnswer(f"{method} {path}: the answer is not a {model.__name__}: {exc}") from None

    async def _call(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str = _JSON,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        enveloped: bool = True,
    ) -> Any:
        """The `data` of a successful answer (the whole document if not `enveloped`); the error it was
        otherwise, after the retries a 503 with Retry-After allows."""
        sent = {**self._headers(), **(headers or {})}
        if body is not None:
            sent["Content-Type"] = content_type
        attempt = 0
        while True:
            try:
                async with self._session_now().request(
                    method, url, data=body, params=params, headers=sent, timeout=self._timeout()
                ) as response:
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _connection_failed(self.url, exc) from exc
            answer = _json_or_none(raw)
            if response.status < 400:
                return _unwrap(answer, method, url) if enveloped else answer
            error = error_from_answer(
                response.status,
                answer,
                retry_after=response.headers.get("Retry-After"),
                request_id=response.headers.get("X-Request-ID"),
            )
            if not (retry and attempt < self.retries and _retryable(error)):
                raise error
            attempt += 1
            await asyncio.sleep(self._wait(error))

    async def _stream(
        self, path: str, after: str | None, model: type[M], *, ends: bool
    ) -> AsyncGenerator[M | Opened, None]:
        """The items of an event stream, resumed after the last one seen when the connection breaks (a reset,
        a 503, or, for a stream that never ends, an end)."""
        last = after
        failures = 0
        while True:
            headers = {**self._headers(), "Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = last
            problem: ProcEngineClientError
            try:
                async with self._session_now().get(
                    self.api_url + path, headers=headers, timeout=self._stream_timeout()
                ) as response:
                    if response.status >= 400:
                        error = error_from_answer(
                            response.status,
                            _json_or_none(await response.read()),
                            retry_after=response.headers.get("Retry-After"),
                            request_id=response.headers.get("X-Request-ID"),
                        )
                        if not _retryable(error):
                            raise error
                        problem = error
                    else:
                        yield OPENED
                        resumed_after = last
                        async for event in parse_events(response.content.iter_any()):
                            if event.id is not None and event.id == resumed_after:
                                continue  # given again: not news, and no progress to reset `failures` for
                            item = _parse_item(model, event.data, path)
                            last = event.id or last
                            failures = 0
                            yield item
                        if ends:
                            return  # the server ended it: the execution has ended
                        problem = ConnectionFailed(f"the event stream {path} ended")
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = _connection_failed(self.url, exc)
            failures += 1
            if failures > self.reconnects:
                raise problem
            await asyncio.sleep(self._wait(problem) if isinstance(problem, Unavailable) else 0.2 * failures)

    def _session_now(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use: in the running event loop, which it belongs to."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "procengine-client", "Accept": _JSON}, raise_for_status=False
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.timeout)

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=self.stream_idle_timeout)

    def _wait(self, error: ProcEngineClientError) -> float:
        """How long to wait before trying again: the server's Retry-After, within `max_retry_wait`."""
        retry_after = error.retry_after if isinstance(error, Unavailable) else None
        return min(retry_after if retry_after is not None else 1.0, self.max_retry_wait)


def _execution(execution_id: int, what: str) -> str:
    return f"/executions/processes/{int(execution_id)}/{what}"


def _control(reason: str | None) -> bytes | None:
    """The optional body of pause, resume and cancel; none at all without a reason."""
    if reason is None:
        return None
    return _request_model(ControlRequest, {"reason": reason}).model_dump_json().encode()


def _request_model(model: type[M], value: dict[str, Any]) -> M:
    """A request body checked here by the model the server checks it with, refused as the server would."""
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        problems = listed_problems(exc, value)
        noun = "problem" if len(problems) == 1 else "problems"
        raise ValidationError(f"request body is invalid: {len(problems)} {noun}", problems) from None


def _dump(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationError("the value cannot be sent as JSON", [str(exc)]) from None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _unwrap(answer: Any, method: str, url: str) -> Any:
    if not (isinstance(answer, dict) and answer.get("success") is True and "data" in answer):
        raise UnexpectedAnswer(f"{method} {url}: the answer is not the API's envelope")
    return answer["data"]


def _parse_item(model: type[M], data: str, path: str) -> M:
    try:
        return model.model_validate_json(data)
    except pydantic.ValidationError as exc:
        raise UnexpectedAnswer(f"an event of {path} is not a {model.__name__}: {exc}") from None


def _retryable(error: ProcEngineClientError) -> bool:
    return isinstance(error, Unavailable) and error.retry_after is not None


def _connection_failed(url: str, exc: BaseException) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(f"cannot reach the server at {url}: {reason}")


def _breakpoint(given: str | Mapping[str, str]) -> str | dict[str, str]:
    return given if isinstance(given, str) else dict(given)


RANGE_OPERATORS: Final = ("gte", "gt", "lte", "lt")


def attribute_params(attributes: Mapping[str, Any]) -> dict[str, str]:
    """The list's `attr.*` query parameters: a value is `attr.<name>=` (equal), a mapping of range operators
    (`{"gte": 100, "lt": 500}`) one `attr.<name>.<op>=` each."""
    params: dict[str, str] = {}
    for name, value in attributes.items():
        if isinstance(value, Mapping):
            for op, bound in value.items():
                if op not in RANGE_OPERATORS:
                    raise ValueError(f"attribute {name!r}: {op!r} is no range operator ({', '.join(RANGE_OPERATORS)})")
                params[f"attr.{name}.{op}"] = _query_text(bound)
        else:
            params[f"attr.{name}"] = _query_text(value)
    return params


def _jsonable(value: Any) -> Any:
    """An attribute value for a JSON body: a `datetime` as ISO-8601."""
    return _iso(value) if isinstance(value, datetime) else value


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def _iso(moment: datetime) -> str:
    """A `datetime` as ISO-8601 UTC with a `Z` (a naive one is taken as UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
