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

from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from procengine.api.process_views import ExecutionCounts, ProcessDeleted, ProcessPatch
from procengine.api.views import (
    BATCH_LIMIT,
    BatchStartItem,
    BatchStartRequest,
    BatchStartResult,
    CancelResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointView,
    ControlRequest,
    ElementsView,
    ExecutionList,
    ExecutionStatusView,
    ExecutionSummary,
    LogEntry,
    LogView,
    PauseResult,
    ProcessList,
    ProcessSummary,
    ProcessView,
    ResumeResult,
    SignalResult,
    StartRequest,
    StartResult,
    StateView,
    StatusEvent,
    StatusName,
    StatusTable,
)
from procengine.client.bulk import AsyncBulk
from procengine.client.errors import (
    ValidationError,
)
from procengine.client.repair import AsyncRepair, breakpoint_item
from procengine.client.schedules import AsyncSchedules
from procengine.client.streams import EventStream
from procengine.client.tasks import AsyncTasks
from procengine.client.transport import dump, execution_path, request_body

__all__ = ["FINAL_EVENTS", "AsyncClient"]

M = TypeVar("M", bound=BaseModel)

FINAL_EVENTS: Final = frozenset({"completed", "failed", "cancelled"})
"""The log events after which an execution's event stream ends."""

_JSON: Final = "application/json"
_YAML: Final = "application/yaml"


class AsyncClient(AsyncRepair, AsyncBulk, AsyncTasks, AsyncSchedules):
    """A client of one procengine server, as one tenant (its token). Use it as an async context manager, or
    call `close()`: it holds a connection pool.

    `url` (else PROCENGINE_URL, else http://127.0.0.1:8080) is the server's root; `token` (else
    PROCENGINE_TOKEN) its bearer token. `timeout` bounds each request; an event stream is only bounded by
    `stream_idle_timeout` (the server sends a heartbeat every few seconds, so silence means a dead
    connection). A stream that breaks before its end is resumed with Last-Event-ID up to `reconnects` times
    in a row.
    """

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
            body, kind = dump(definition), _JSON
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
            "pauseBefore": None if pause_before is None else [breakpoint_item(given) for given in pause_before],
            "attributes": None if not attributes else {name: _jsonable(v) for name, v in attributes.items()},
        }
        start = request_body(StartRequest, {name: value for name, value in fields.items() if value is not None})
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
                requests.append(request_body(StartRequest, fields))
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
        return await self._data("GET", execution_path(execution_id, "status"), ExecutionStatusView)

    async def pause(self, execution_id: int, reason: str | None = None) -> PauseResult:
        """Pause a running execution; answers once its snapshot is durable. InvalidTransition otherwise."""
        return await self._data("POST", execution_path(execution_id, "pause"), PauseResult, body=_control(reason))

    async def resume(self, execution_id: int, reason: str | None = None) -> ResumeResult:
        """Resume a paused execution from its snapshot (StateCorrupted if it cannot be resumed from)."""
        return await self._data("POST", execution_path(execution_id, "resume"), ResumeResult, body=_control(reason))

    async def cancel(self, execution_id: int, reason: str | None = None) -> CancelResult:
        """Cancel a running or paused execution, at once."""
        return await self._data("POST", execution_path(execution_id, "cancel"), CancelResult, body=_control(reason))

    async def signal(
        self, execution_id: int, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> SignalResult:
        """Deliver the signal `name` with `payload` (any JSON value; None sends an empty body, read as null).
        With `idempotency_key` it is delivered once however often it is sent (and may be retried)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        return await self._data(
            "POST",
            execution_path(execution_id, f"signals/{quote(name, safe='')}"),
            SignalResult,
            body=b"" if payload is None else dump(payload),
            headers=headers,
            retry=idempotency_key is not None,
        )

    async def log(self, execution_id: int) -> LogView:
        """The audit trail, oldest first."""
        return await self._data("GET", execution_path(execution_id, "log"), LogView)

    async def elements(self, execution_id: int, *, limit: int | None = None, cursor: str | None = None) -> ElementsView:
        """A page of the element executions (a record per element, and per branch or iteration of a fan-out); give
        back `nextCursor` for the next page."""
        query = {"limit": limit, "cursor": cursor}
        params = {name: str(value) for name, value in query.items() if value is not None}
        return await self._data("GET", execution_path(execution_id, "elements"), ElementsView, params=params)

    async def state(self, execution_id: int) -> StateView:
        """The decoded stack and memory snapshots."""
        return await self._data("GET", execution_path(execution_id, "state"), StateView)

    async def checkpoints(
        self, execution_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> CheckpointList:
        """A page of the execution's kept checkpoints, newest first; give back `nextCursor` for the next page."""
        query = {"limit": limit, "cursor": cursor}
        params = {name: str(value) for name, value in query.items() if value is not None}
        return await self._data("GET", execution_path(execution_id, "checkpoints"), CheckpointList, params=params)

    async def checkpoint(self, execution_id: int, seq: int) -> CheckpointView:
        """One kept checkpoint: its stack and memory decoded (NotFound unless kept)."""
        return await self._data("GET", execution_path(execution_id, f"checkpoints/{seq}"), CheckpointView)

    async def checkpoint_diff(self, execution_id: int, a: int, b: int) -> CheckpointDiff:
        """What changed from kept checkpoint `a` to `b`."""
        return await self._data("GET", execution_path(execution_id, f"checkpoints/{a}/diff/{b}"), CheckpointDiff)

    async def statuses(self) -> StatusTable:
        """The status table."""
        return await self._data("GET", "/statuses", StatusTable)

    # --- event streams ---------------------------------------------------------------------------

    def events(self, execution_id: int, after: str | None = None) -> EventStream[LogEntry]:
        """The execution's log entries as they are written, from the first (or after the entry `after`);
        ends after the final transition. `async with` it to be connected before going on."""
        return EventStream(self._stream(execution_path(execution_id, "events"), after, LogEntry, ends=True))

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
        return await self._text(self.url + "/metrics")


def _control(reason: str | None) -> bytes | None:
    """The optional body of pause, resume and cancel; none at all without a reason."""
    if reason is None:
        return None
    return request_body(ControlRequest, {"reason": reason}).model_dump_json().encode()


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
