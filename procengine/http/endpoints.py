"""One handler per route: parse the request, call the `NodeService`, wrap the answer in the envelope.

Handlers hold no try/except for error mapping: every failure is an exception that `front_door_middleware`
renders. Which route calls which handler is the table in `routes.py`.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from procengine.api.process_views import ProcessPatch
from procengine.api.views import (
    BatchStartRequest,
    BreakpointsRequest,
    CompleteRequest,
    ControlRequest,
    ElementPolicyRequest,
    ElementRetryRequest,
    FailRequest,
    ForkRequest,
    MigrateRequest,
    MoveRequest,
    RetryRequest,
    RewindRequest,
    RunNowRequest,
    SkipRequest,
    StartRequest,
    StatusRow,
    StatusTable,
    StepRequest,
)
from procengine.errors import Unavailable
from procengine.http.body import read_any, read_document, read_model, read_optional_model
from procengine.http.context import caller, engine, settings
from procengine.http.params import (
    CheckpointsQuery,
    ElementsQuery,
    ReasonQuery,
    checkpoint_seq,
    element_key,
    execution_id,
    idempotency_key,
    process_id,
    read_list_query,
    read_query,
    signal_name,
)
from procengine.http.responses import ok, ok_json
from procengine.statuses import Status

__all__ = [
    "Probe",
    "cancel_execution",
    "change_element_policy",
    "complete_element",
    "delete_process",
    "deprecate_process",
    "edit_variables",
    "execution_elements",
    "execution_log",
    "execution_state",
    "execution_status",
    "fail_element",
    "get_process",
    "health",
    "list_executions",
    "list_processes",
    "list_statuses",
    "metrics",
    "move_lane",
    "pause_execution",
    "ready",
    "register_process",
    "resume_execution",
    "retry_element",
    "retry_execution",
    "run_element_now",
    "send_signal",
    "skip_element",
    "start_execution",
    "start_executions",
]


class Probe(BaseModel):
    """The answer of /health ("ok") and /ready ("ready")."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "ready"]


STATUS_TABLE: Final = StatusTable(
    items=[StatusRow(id=s.id, name=s.value, isFinal=s.is_final, isSuccess=s.is_success) for s in Status]
)


# --- probes (outside the base path, no auth) ---------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return ok(Probe(status="ok"))


async def metrics(request: web.Request) -> web.Response:
    body, content_type = engine(request).metrics_text()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type  # carries the exposition format's version parameter
    return response


async def ready(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(settings(request).redis_timeout_s):
            why_not = await engine(request).ready()
    except TimeoutError:
        why_not = "the store did not answer in time"
    if why_not is not None:
        raise Unavailable(f"not ready: {why_not}")
    return ok(Probe(status="ready"))


# --- processes ---------------------------------------------------------------------------------


async def register_process(request: web.Request) -> web.Response:
    document = await read_document(request)  # validated by the engine, which lists every problem at once
    summary, created = await engine(request).register_process(caller(request), document)
    return ok(summary, 201 if created else 200)


async def list_processes(request: web.Request) -> web.Response:
    return ok(await engine(request).list_processes(caller(request)))


async def get_process(request: web.Request) -> web.Response:
    return ok(await engine(request).get_process(caller(request), process_id(request)))


async def deprecate_process(request: web.Request) -> web.Response:
    target = process_id(request)
    change = await read_model(request, ProcessPatch)
    return ok(await engine(request).deprecate_process(caller(request), target, change))


async def delete_process(request: web.Request) -> web.Response:
    # 200 with the envelope, not 204: every answer of the API is an envelope (CONTRACT §3), and it says which
    # version is its key's latest now
    target = process_id(request)
    query = read_query(request, ReasonQuery)
    return ok(await engine(request).delete_process(caller(request), target, query.reason))


# --- executions --------------------------------------------------------------------------------


async def start_execution(request: web.Request) -> web.Response:
    start = await read_model(request, StartRequest)
    result, created = await engine(request).start_execution(caller(request), start)
    return ok(result, 201 if created else 200)


async def start_executions(request: web.Request) -> web.Response:
    batch = await read_model(request, BatchStartRequest)
    return ok(await engine(request).start_many(caller(request), batch))


async def list_executions(request: web.Request) -> web.Response:
    query, filters = read_list_query(request)
    page = await engine(request).list_executions(
        caller(request),
        status=query.status,
        process_id=query.processID,
        limit=query.limit,
        cursor=query.cursor,
        filters=filters,
    )
    return ok(page)


async def pause_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    control = await read_optional_model(request, ControlRequest)
    return ok(await engine(request).pause(caller(request), target, control))


async def resume_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    control = await read_optional_model(request, ControlRequest)
    return ok(await engine(request).resume(caller(request), target, control))


async def cancel_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    control = await read_optional_model(request, ControlRequest)
    return ok(await engine(request).cancel(caller(request), target, control))


async def retry_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    retry = await read_optional_model(request, RetryRequest)
    return ok(await engine(request).retry(caller(request), target, retry))


async def edit_variables(request: web.Request) -> web.Response:
    target = execution_id(request)
    query = read_query(request, ReasonQuery)
    patch = await read_document(request)  # an object: the engine says so otherwise (422)
    return ok(await engine(request).edit_variables(caller(request), target, patch, query.reason))


async def retry_element(request: web.Request) -> web.Response:
    target, key = execution_id(request), element_key(request)
    order = await read_optional_model(request, ElementRetryRequest)
    return ok(await engine(request).retry_element(caller(request), target, key, order))


async def skip_element(request: web.Request) -> web.Response:
    target, key = execution_id(request), element_key(request)
    order = await read_optional_model(request, SkipRequest)
    return ok(await engine(request).skip_element(caller(request), target, key, order))


async def complete_element(request: web.Request) -> web.Response:
    target, key = execution_id(request), element_key(request)
    order = await read_optional_model(request, CompleteRequest)
    return ok(await engine(request).complete_element(caller(request), target, key, order))


async def fail_element(request: web.Request) -> web.Response:
    target, key = execution_id(request), element_key(request)
    order = await read_model(request, FailRequest)
    return ok(await engine(request).fail_element(caller(request), target, key, order))


async def change_element_policy(request: web.Request) -> web.Response:
    target, key = execution_id(request), element_key(request)
    change = await read_model(request, ElementPolicyRequest)
    return ok(await engine(request).change_policy(caller(request), target, key, change))


async def move_lane(request: web.Request) -> web.Response:
    target = execution_id(request)
    order = await read_model(request, MoveRequest)
    return ok(await engine(request).move(caller(request), target, order))


async def run_element_now(request: web.Request) -> web.Response:
    target, key = execution_id(request), element_key(request)
    order = await read_optional_model(request, RunNowRequest)
    return ok(await engine(request).run_now(caller(request), target, key, order))


async def send_signal(request: web.Request) -> web.Response:
    target = execution_id(request)
    name = signal_name(request)
    key = idempotency_key(request)
    payload = await read_any(request)
    return ok(await engine(request).signal(caller(request), target, name, payload, key), 202)


async def execution_status(request: web.Request) -> web.Response:
    return ok_json(await engine(request).status_json(caller(request), execution_id(request)))


async def execution_log(request: web.Request) -> web.Response:
    return ok(await engine(request).log(caller(request), execution_id(request)))


async def execution_elements(request: web.Request) -> web.Response:
    target = execution_id(request)
    query = read_query(request, ElementsQuery)
    return ok(await engine(request).elements(caller(request), target, limit=query.limit, cursor=query.cursor))


async def execution_state(request: web.Request) -> web.Response:
    return ok(await engine(request).state(caller(request), execution_id(request)))


async def set_breakpoints(request: web.Request) -> web.Response:
    target = execution_id(request)
    wanted = await read_model(request, BreakpointsRequest)
    return ok(await engine(request).set_breakpoints(caller(request), target, wanted))


async def step_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    order = await read_optional_model(request, StepRequest)
    return ok(await engine(request).step(caller(request), target, order))


async def fork_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    order = await read_optional_model(request, ForkRequest)
    return ok(await engine(request).fork(caller(request), target, order), 201)


async def rewind_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    return ok(await engine(request).rewind(caller(request), target, await read_model(request, RewindRequest)))


async def migrate_execution(request: web.Request) -> web.Response:
    target = execution_id(request)
    return ok(await engine(request).migrate(caller(request), target, await read_model(request, MigrateRequest)))


async def execution_checkpoints(request: web.Request) -> web.Response:
    target = execution_id(request)
    query = read_query(request, CheckpointsQuery)
    return ok(await engine(request).checkpoints(caller(request), target, limit=query.limit, cursor=query.cursor))


async def execution_checkpoint(request: web.Request) -> web.Response:
    target = execution_id(request)
    return ok(await engine(request).checkpoint(caller(request), target, checkpoint_seq(request)))


async def checkpoints_diff(request: web.Request) -> web.Response:
    target = execution_id(request)
    a, b = checkpoint_seq(request, "a"), checkpoint_seq(request, "b")
    return ok(await engine(request).checkpoint_diff(caller(request), target, a, b))


async def list_statuses(request: web.Request) -> web.Response:
    return ok(STATUS_TABLE)
