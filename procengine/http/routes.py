"""The route table: every route the front door serves, in one place.

`add_routes` registers exactly these rows and keeps them on the app; `openapi.py` documents exactly
the rows it finds there, so the served API and its document cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aiohttp import web

from procengine.api.process_views import ProcessDeleted, ProcessPatch
from procengine.api.views import (
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
    StatusTable,
    SteppedResult,
    StepRequest,
    StepResult,
    VariablesPatch,
    VariablesResult,
)
from procengine.engine.definitions import ProcessDefinition
from procengine.http import endpoints as h
from procengine.http.bulk_endpoints import BULK_ROUTES
from procengine.http.console import events
from procengine.http.context import ROUTES_KEY
from procengine.http.endpoints import Probe
from procengine.http.openapi import serve_openapi
from procengine.http.params import CheckpointsQuery, ElementsQuery, EventsQuery, ExecutionQuery, ReasonQuery
from procengine.http.schedule_endpoints import SCHEDULE_ROUTES
from procengine.http.spec import BASE_PATH, RouteSpec
from procengine.http.task_endpoints import TASK_ROUTES

__all__ = ["ROUTES", "add_routes"]

_P = BASE_PATH + "/processes"
_E = BASE_PATH + "/executions/processes"

ROUTES: Final[tuple[RouteSpec, ...]] = (
    # probes and the document: outside the base path, no auth
    RouteSpec("GET", "/health", h.health, "Liveness: the process answers", Probe, tag="probes"),
    RouteSpec("GET", "/ready", h.ready, "Readiness: Redis answers", Probe, errors=(503,), tag="probes"),
    RouteSpec("GET", "/openapi.json", serve_openapi, "This OpenAPI document", None, tag="meta"),
    RouteSpec(
        "GET", "/metrics", h.metrics, "Prometheus metrics of this node (text exposition format)", None,
        tag="meta", media_type="text/plain",
    ),
    # process definitions
    RouteSpec(
        "POST", _P, h.register_process,
        "Register a definition (JSON, or YAML with a YAML content type); 200 if identical to the latest version",
        ProcessSummary, status=201, also=(200,), body="required", request_model=ProcessDefinition, tag="processes",
    ),
    RouteSpec("GET", _P, h.list_processes, "List the tenant's definitions", ProcessList, tag="processes"),
    RouteSpec(
        "GET", _P + "/{processID}", h.get_process,
        "Read a definition version: its body, whether it is deprecated, how many executions of it are in each status",
        ProcessView, tag="processes",
    ),
    RouteSpec(
        "PATCH", _P + "/{processID}", h.deprecate_process,
        "Deprecate a version (or no longer): it takes no new start, by processID or by key while it is the "
        "latest (single, batch, call-process child, fork: 409 PROCESS_DEPRECATED); its executions go on",
        ProcessView, body="required", request_model=ProcessPatch, tag="processes",
    ),
    RouteSpec(
        "DELETE", _P + "/{processID}", h.delete_process,
        "Delete a version that no stored execution uses (409 PROCESS_IN_USE says how many do); the highest version "
        "left becomes its key's latest; its number is never given again",
        ProcessDeleted, query_model=ReasonQuery, errors=(409,), tag="processes",
    ),
    # executions
    RouteSpec(
        "POST", _E, h.start_execution,
        "Start an execution by processID or processKey; 200 with the first execution if idempotencyKey matched",
        StartResult, status=201, also=(200,), body="required", request_model=StartRequest, errors=(404, 409, 429),
        tag="executions",
    ),
    RouteSpec(
        "POST", _E + "/batch", h.start_executions,
        "Start up to 1,000 executions in one request, each item a start of its own (process, variables, "
        "idempotencyKey); one outcome per item in order: started, existing (its idempotencyKey matched), or failed "
        "with the code and status it would have had alone. More than 1,000 items: 422, nothing started",
        BatchStartResult, body="required", request_model=BatchStartRequest, tag="executions",
    ),
    RouteSpec(
        "GET", _E, h.list_executions, "List the tenant's executions, newest first, paged",
        ExecutionList, query_model=ExecutionQuery, tag="executions",
    ),
    RouteSpec(
        "POST", _E + "/{id}/pause", h.pause_execution, "Pause a running execution (after its snapshot is durable)",
        PauseResult, body="optional", request_model=ControlRequest, errors=(409,), tag="executions",
    ),
    RouteSpec(
        "POST", _E + "/{id}/resume", h.resume_execution, "Resume a paused execution from its snapshot",
        ResumeResult, body="optional", request_model=ControlRequest, errors=(409,), tag="executions",
    ),
    RouteSpec(
        "POST", _E + "/{id}/cancel", h.cancel_execution, "Cancel a running or paused execution",
        CancelResult, body="optional", request_model=ControlRequest, errors=(409,), tag="executions",
    ),
    RouteSpec(
        "POST", _E + "/{id}/retry", h.retry_execution,
        "Retry a failed execution, same id: it goes on from the elements that failed (attempts reset), its "
        "variables merge-patched in the same write if asked; the answer of the first retry for a repeated "
        "idempotencyKey",
        RetryResult, body="optional", request_model=RetryRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "PATCH", _E + "/{id}/variables", h.edit_variables,
        "Change a paused execution's variables: the body is a JSON merge patch (RFC 7396; null removes a name)",
        VariablesResult, body="required", request_model=VariablesPatch, query_model=ReasonQuery, errors=(409,),
        tag="repair",
    ),
    # step controls (actors/steps.py): one element of a paused or failed execution's stack; it is paused after
    RouteSpec(
        "POST", _E + "/{id}/elements/{elementKey}/retry", h.retry_element,
        "Start an element of a paused or failed execution's stack again (attempt 1, a new execution order, no "
        "timer); the execution is paused after it (resume goes on from there)",
        StepResult, body="optional", request_model=ElementRetryRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/elements/{elementKey}/skip", h.skip_element,
        "Skip an element of a paused or failed execution's stack: recorded skipped, its next followed; an output "
        "given is stored as if it had run. The execution is paused after it",
        StepResult, body="optional", request_model=SkipRequest, errors=(409, 413), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/elements/{elementKey}/complete", h.complete_element,
        "Complete a pending task of a paused or failed execution as if its handler had returned output (its "
        "output mapping applies); 422 for an element that is not a task. The execution is paused after it",
        StepResult, body="optional", request_model=CompleteRequest, errors=(409, 413), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/elements/{elementKey}/fail", h.fail_element,
        "Fail an element of a paused or failed execution's stack with an error of a type: a catch clause for it "
        "takes the lane on (the execution is paused after it); no catch: the execution ends failed",
        StepResult, body="required", request_model=FailRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/move", h.move_lane,
        "Put a lane of a paused or failed execution before another element of its thread (or of its branch's or "
        "iteration's body): a fresh entry, attempt 1; the execution is paused after it",
        StepResult, body="required", request_model=MoveRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/elements/{elementKey}/run-now", h.run_element_now,
        "End the retry backoff or the delay an element of a running execution waits on: it goes on at once; 409 "
        "if it waits on no such timer",
        StepResult, body="optional", request_model=RunNowRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "PATCH", _E + "/{id}/elements/{elementKey}", h.change_element_policy,
        "Change a pending task's retry policy and/or timeout for this run of it (running or paused execution): "
        "from its next failure and its next attempt",
        StepResult, body="required", request_model=ElementPolicyRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "GET", _E + "/{id}/status", h.execution_status,
        "Status, progress, timing, threads, and blockedOn: why each waiting lane is not moving",
        ExecutionStatusView, tag="executions",
    ),
    RouteSpec(
        "POST", _E + "/{id}/signals/{name}", h.send_signal,
        "Deliver a signal; the body is its payload (any JSON value, empty is null). A name no wait-signal of the "
        "execution's definition can take is 422, not kept",
        SignalResult, status=202, body="any", headers=("Idempotency-Key",), errors=(409, 413), tag="executions",
    ),
    RouteSpec("GET", _E + "/{id}/log", h.execution_log, "The audit trail, oldest first", LogView, tag="executions"),
    RouteSpec(
        "GET", _E + "/{id}/elements", h.execution_elements,
        "Element executions: a record per element, and per branch or iteration of a fan-out, in pages",
        ElementsView, query_model=ElementsQuery, tag="executions",
    ),
    RouteSpec(
        "GET", _E + "/{id}/state", h.execution_state, "The decoded stack and memory snapshots", StateView,
        tag="executions",
    ),
    RouteSpec(
        "GET", _E + "/{id}/checkpoints", h.execution_checkpoints,
        "The execution's kept checkpoints, newest first, in pages (`--history-checkpoints`, `--history-bytes`): "
        "places to look at, diff, rewind to or fork from",
        CheckpointList, query_model=CheckpointsQuery, tag="executions",
    ),
    RouteSpec(
        "GET", _E + "/{id}/checkpoints/{seq}", h.execution_checkpoint,
        "One kept checkpoint: its stack and memory decoded as `…/state` shows them; 404 unless kept",
        CheckpointView, tag="executions",
    ),
    RouteSpec(
        "GET", _E + "/{id}/checkpoints/{a}/diff/{b}", h.checkpoints_diff,
        "What changed from kept checkpoint a to b: variables and node outputs (added, removed, changed) and the "
        "pending elements of each lane",
        CheckpointDiff, tag="executions",
    ),
    RouteSpec(
        "PUT", _E + "/{id}/breakpoints", h.set_breakpoints,
        "Set where a running or paused execution pauses before an element (the whole set; [] clears it), in any "
        "lane that reaches it, optionally only `when` a CEL condition holds. Exact: the execution will pause before "
        "every run of these elements that has not begun, and `alreadyStarted` lists the runs that had",
        BreakpointsResult, body="required", request_model=BreakpointsRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/step", h.step_execution,
        "Step mode: a paused execution runs exactly the next element of each lane (or of `lane`) and pauses again; "
        "the answer says what ran (an element that ends the execution ends it)",
        SteppedResult, body="optional", request_model=StepRequest, errors=(409,), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/fork", h.fork_execution,
        "Start a new execution of the same process version from one of this one's kept checkpoints (its latest if "
        "none is named), its variables merge-patched if asked, running unless `paused`; answered as a start, and "
        "each execution's log names the other",
        StartResult, status=201, body="optional", request_model=ForkRequest, errors=(409, 413, 429), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/rewind", h.rewind_execution,
        "Put a paused, failed or cancelled execution back to one of its kept checkpoints, same id, its variables "
        "merge-patched in the same write if asked: paused there, resume goes on from it (the elements after it "
        "run again); 404 for a checkpoint not kept, 409 while running",
        RewindResult, body="required", request_model=RewindRequest, errors=(409, 413), tag="repair",
    ),
    RouteSpec(
        "POST", _E + "/{id}/migrate", h.migrate_execution,
        "Move a paused or failed execution to another version of its process (same id, same status): identical "
        "element keys map by default, `mapping` renames; the plan is validated first and every problem listed (422), "
        "or with `dryRun` only answered (200, problems included, nothing written); 404 for a version the process "
        "lacks, 409 while running or once completed or cancelled",
        MigrateResult, body="required", request_model=MigrateRequest, errors=(409, 422), tag="repair",
    ),
    RouteSpec(
        "GET", _E + "/{id}/events", events.execution_events,
        "The log entries as server-sent events, as they are written (after Last-Event-ID, else from the first); "
        "ends after the final transition",
        LogEntry, query_model=EventsQuery, headers=("Last-Event-ID",), tag="events", media_type="text/event-stream",
    ),
    RouteSpec(
        "GET", BASE_PATH + "/executions/events", events.status_events,
        "The tenant's executions' status changes as server-sent events (after Last-Event-ID, else from now)",
        StatusEvent, query_model=EventsQuery, headers=("Last-Event-ID",), tag="events",
        media_type="text/event-stream",
    ),
    *BULK_ROUTES,  # bulk operations (issue 23): http/bulk_endpoints.py
    *TASK_ROUTES,  # external task workers (issue 24): http/task_endpoints.py
    *SCHEDULE_ROUTES,  # schedules (issue 24): http/schedule_endpoints.py
    RouteSpec("GET", BASE_PATH + "/statuses", h.list_statuses, "The status table", StatusTable, tag="statuses"),
)  # fmt: skip


def add_routes(app: web.Application, routes: Sequence[RouteSpec] = ROUTES) -> None:
    """Register `routes` on `app` and keep the table on it for the OpenAPI document."""
    for spec in routes:
        app.router.add_route(spec.method, spec.path, spec.handler)
    app[ROUTES_KEY] = tuple(routes)
