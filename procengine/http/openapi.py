"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Component schemas come from pydantic (`models_json_schema`, which is `model_json_schema` for several
models at once: shared `$defs` are emitted once, and a model used both as input and as output gets
distinct `-Input`/`-Output` names instead of one silently overwriting the other).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from procengine.api.task_views import TaskID
from procengine.api.views import STORABLE_REF
from procengine.engine.definitions import Identifier
from procengine.http.context import OPENAPI_KEY
from procengine.http.params import EVENT_ID_EXAMPLE, EVENT_ID_PATTERN
from procengine.http.responses import ErrorEnvelope, raw_json
from procengine.http.spec import BASE_PATH, RouteSpec

__all__ = ["build_openapi", "render_openapi", "serve_openapi"]

REF_TEMPLATE: Final = "#/components/schemas/{model}"
BODY_TYPES: Final = ("application/json", "application/yaml")
SSE: Final = "text/event-stream"
SECURITY_SCHEME: Final = "bearerAuth"

_ID_SCHEMA: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
PATH_PARAMS: Final[dict[str, tuple[dict[str, Any], str]]] = {
    "processID": (_ID_SCHEMA, "A process definition's id."),
    "id": (_ID_SCHEMA, "An execution's id."),
    "name": (TypeAdapter(Identifier).json_schema(), "The signal's name, as a wait-signal element names it."),
    "elementKey": (TypeAdapter(Identifier).json_schema(), "An element's key, as the definition names it."),
    "seq": (_ID_SCHEMA, "A kept checkpoint's number (`seq` in `…/checkpoints`)."),
    "a": (_ID_SCHEMA, "The checkpoint the diff goes from."),
    "b": (_ID_SCHEMA, "The checkpoint the diff goes to."),
    "jobID": (_ID_SCHEMA, "A bulk operation's id."),
    "taskID": (TypeAdapter(TaskID).json_schema(), "An external task's id (`taskId` in a fetch's answer)."),
    "scheduleID": (_ID_SCHEMA, "A schedule's id."),
}

HEADER_PARAMS: Final[dict[str, tuple[dict[str, Any], str]]] = {
    "Idempotency-Key": (
        {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"},
        "A signal retried with the same key is delivered once and answered as the first time.",
    ),
    "traceparent": (
        {"type": "string"},
        "W3C Trace Context: the caller's span. A start keeps it as its execution's trace context, any other request's "
        "span links to it (docs/tracing.md). A malformed value is ignored, as W3C says, never refused.",
    ),
    "tracestate": ({"type": "string"}, "W3C Trace Context: vendor data kept beside a valid `traceparent`."),
    "Last-Event-ID": (
        {"type": "string", "pattern": EVENT_ID_PATTERN, "examples": [EVENT_ID_EXAMPLE]},
        "Go on after this event (the `id` of the last event received; EventSource sends it when it reconnects).",
    ),
}


TRACE_HEADERS: Final = ("traceparent", "tracestate")


async def serve_openapi(request: web.Request) -> web.Response:
    return raw_json(request.app[OPENAPI_KEY])


def render_openapi(routes: Sequence[RouteSpec], *, secured: bool = True) -> bytes:
    return json.dumps(build_openapi(routes, secured=secured), separators=(",", ":")).encode()


def build_openapi(routes: Sequence[RouteSpec], *, secured: bool = True) -> dict[str, Any]:
    """The document of the server as configured: `secured` (API tokens configured) adds the bearer scheme and
    the 401 answers; without tokens neither is there, because neither happens."""
    refs, schemas = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        operations = paths.setdefault(spec.path, {})
        method = spec.method.lower()
        if method in operations:
            raise ValueError(f"route {spec.method} {spec.path} is in the table twice")
        operations[method] = _operation(spec, refs, schemas, secured)
    components: dict[str, Any] = {"schemas": schemas}
    if secured:
        components["securitySchemes"] = {SECURITY_SCHEME: {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "procengine",
            "version": _version(),
            "description": "A durable process engine. Every answer is wrapped in an envelope: "
            '`{"success": true, "data": ...}` or `{"success": false, "error": {"code", "message", "details"?}}`.',
        },
        "paths": paths,
        "components": components,
    }


_Refs = dict[tuple[type[Any], JsonSchemaMode], dict[str, Any]]


def _schemas(routes: Sequence[RouteSpec]) -> tuple[_Refs, dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorEnvelope, "serialization")]
    for spec in routes:
        if spec.request_model is not None:
            wanted.append((spec.request_model, "validation"))
        if spec.response_model is not None:
            wanted.append((spec.response_model, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF_TEMPLATE)
    return dict(refs), {**top.get("$defs", {}), STORABLE_REF.rsplit("/", 1)[1]: _STORABLE_VALUE}


_STORABLE_VALUE: Final[dict[str, Any]] = {
    "description": "A JSON value an execution's memory can hold (msgpack): its integers lie between -2^63 and "
    "2^64-1, else the answer is 422 `value cannot be stored`.",
    "anyOf": [
        {"type": ["null", "boolean", "string"]},
        {"type": "number", "not": {"type": "integer"}},
        {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1},
        {"type": "array", "items": {"$ref": STORABLE_REF}},
        {"type": "object", "additionalProperties": {"$ref": STORABLE_REF}},
    ],
}
"""Start variables and signal payloads: what the snapshot codec can encode."""


def _operation(spec: RouteSpec, refs: _Refs, schemas: dict[str, Any], secured: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "tags": [spec.tag],
        "security": [{SECURITY_SCHEME: []}] if spec.authenticated and secured else [],
    }
    parameters = [_path_param(name) for name in spec.path_params]
    parameters += [_header_param(name) for name in spec.headers]
    if _traced(spec):
        parameters += [_header_param(name) for name in TRACE_HEADERS]
    if spec.query_model is not None:
        query = spec.query_model.model_json_schema(ref_template=REF_TEMPLATE)
        schemas.update(query.pop("$defs", {}))
        parameters += _query_params(query)
        operation["description"] = (
            "Only the query parameters listed here are taken: any other (a misspelt filter, say) is refused with "
            "400 BAD_REQUEST naming the known ones, rather than ignored."
        )
        more: str | None = getattr(spec.query_model, "query_description", None)
        if more:  # what OpenAPI cannot list as parameters (`attr.<name>`: a name made of a prefix and a value)
            operation["description"] += " " + more
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(spec, refs)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(spec, refs, secured)
    return operation


def _traced(spec: RouteSpec) -> bool:
    """A start or a command to executions (pause, signal, a repair...): the routes whose trace context is used, a
    start's kept, a command's span linked to it (docs/tracing.md). The front door reads it on every request."""
    return spec.method != "GET" and spec.path.startswith(f"{BASE_PATH}/executions/processes")


def _path_param(name: str) -> dict[str, Any]:
    try:
        schema, description = PATH_PARAMS[name]
    except KeyError:
        raise ValueError(f"path parameter {{{name}}} has no schema in openapi.PATH_PARAMS") from None
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _header_param(name: str) -> dict[str, Any]:
    schema, description = HEADER_PARAMS[name]
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


def _query_params(model_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(model_schema.get("required", []))
    params = []
    for name, prop in model_schema.get("properties", {}).items():
        schema = _not_null({k: v for k, v in prop.items() if k not in ("title", "description")})
        param = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema without pydantic's `null` branch and `default: null`: a query has
    no way to say null, leaving the parameter out is how to mean "any" (an empty value is refused)."""
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" not in schema or len(branches) == len(schema["anyOf"]):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**rest, **branches[0]} if len(branches) == 1 else {**rest, "anyOf": branches}


def _request_body(spec: RouteSpec, refs: _Refs) -> dict[str, Any] | None:
    if spec.body == "none":
        return None
    if spec.body == "any":
        return {
            "required": False,
            "description": "The payload itself: any JSON value the execution's memory can hold; an empty body is null.",
            "content": {"application/json": {"schema": {"$ref": STORABLE_REF}}},
        }
    if spec.request_model is None:
        raise ValueError(f"route {spec.method} {spec.path} reads a body but names no request_model")
    schema = refs[(spec.request_model, "validation")]
    if spec.body == "optional":  # an empty body or `null` gives the model's defaults (http/body.py)
        schema = {"anyOf": [schema, {"type": "null"}]}
    return {
        "required": spec.body == "required",
        "content": {content_type: {"schema": schema} for content_type in BODY_TYPES},
    }


def _responses(spec: RouteSpec, refs: _Refs, secured: bool) -> dict[str, Any]:
    if spec.media_type == SSE:
        success: dict[str, Any] = _event_schema(spec, refs)
    elif spec.media_type != "application/json":
        success = {"type": "string"}
    elif spec.response_model is None:
        success = {"type": "object"}
    else:
        success = {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": refs[(spec.response_model, "serialization")]},
        }
    responses: dict[str, Any] = {}
    for status in (spec.status, *spec.also):
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {spec.media_type: {"schema": success}},
        }
        if spec.operation_id in _LINKS_FROM:
            responses[str(status)]["links"] = _LINKS_FROM[spec.operation_id]
    error = {"content": {"application/json": {"schema": refs[(ErrorEnvelope, "serialization")]}}}
    for status in sorted(_error_statuses(spec) - (set() if secured else {401})):
        responses[str(status)] = {"description": _ERROR_TEXT.get(status, HTTPStatus(status).phrase), **error}
    responses["default"] = {"description": "Unexpected error (500 INTERNAL, with a request id to quote)", **error}
    return responses


def _event_schema(spec: RouteSpec, refs: _Refs) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1 has the schema of an event stream describe each event): its `id` to
    give back as Last-Event-ID, its name, and `data`, the JSON of the route's response model."""
    if spec.response_model is None:
        raise ValueError(f"route {spec.method} {spec.path} streams events but names no response_model")
    return {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": refs[(spec.response_model, "serialization")],
            },
        },
    }


_ERROR_TEXT: Final = {
    400: "BAD_REQUEST: the body is not valid JSON or YAML",
    401: "UNAUTHORIZED: missing or unknown bearer token",
    404: "NOT_FOUND: no such resource for this tenant",
    409: "INVALID_TRANSITION or STATE_CORRUPTED",
    413: "PAYLOAD_TOO_LARGE: the body is over the configured limit",
    422: "VALIDATION_ERROR: details lists every problem",
    429: "RATE_LIMITED: over the tenant's starts per second (Retry-After)",
    503: "UNAVAILABLE: Redis cannot be reached",
}


_EXECUTION_ID = {"id": "$response.body#/data/executionID"}
_LINKS_FROM: Final[dict[str, dict[str, Any]]] = {
    "start_execution": {
        name: {"operationId": operation, "parameters": _EXECUTION_ID, "description": what}
        for name, operation, what in (
            ("status", "execution_status", "The started execution's status"),
            ("pause", "pause_execution", "Pause it"),
            ("resume", "resume_execution", "Resume it"),
            ("cancel", "cancel_execution", "Cancel it"),
            ("signal", "send_signal", "Send it a signal"),
            ("retry", "retry_execution", "Retry it once it has failed"),
            ("variables", "edit_variables", "Change its variables while it is paused"),
            ("retryElement", "retry_element", "Start one element of it again, paused or failed"),
            ("skipElement", "skip_element", "Skip one element of it, paused or failed"),
            ("completeElement", "complete_element", "Complete one task of it, paused or failed"),
            ("failElement", "fail_element", "Fail one element of it, paused or failed"),
            ("move", "move_lane", "Put a lane of it before another element, paused or failed"),
            ("runNow", "run_element_now", "End the backoff or delay one element of it waits on"),
            ("elementPolicy", "change_element_policy", "Change one task's retry policy or timeout"),
            ("log", "execution_log", "Its audit log"),
            ("elements", "execution_elements", "Its element executions"),
            ("state", "execution_state", "Its stack and memory snapshots"),
            ("checkpoints", "execution_checkpoints", "Its kept checkpoints"),
            ("breakpoints", "set_breakpoints", "Set where it pauses before an element"),
            ("step", "step_execution", "Run the next element of each of its lanes, paused, and pause again"),
            ("fork", "fork_execution", "Start a new execution from one of its kept checkpoints"),
            ("rewind", "rewind_execution", "Put it back to one of its kept checkpoints, paused, failed or cancelled"),
            ("migrate", "migrate_execution", "Move it to another version of its process, paused or failed"),
            ("checkpoint", "execution_checkpoint", "One kept checkpoint of it"),
            ("checkpointDiff", "checkpoints_diff", "What changed between two of its kept checkpoints"),
            ("events", "execution_events", "Its log as server-sent events"),
        )
    },
    "register_process": {
        "read": {
            "operationId": "get_process",
            "parameters": {"processID": "$response.body#/data/processID"},
            "description": "The registered version",
        },
    },
}
"""OpenAPI links: what a client can do with the id an answer gives."""


def _error_statuses(spec: RouteSpec) -> set[int]:
    statuses = set(spec.errors)
    if spec.authenticated:
        statuses |= {401, 503}
    if spec.path_params:
        statuses.add(404)
    if "name" in spec.path_params or spec.query_model is not None:
        statuses.add(422)
    if spec.query_model is not None:
        statuses.add(400)  # an unknown query parameter
    if spec.body != "none":
        statuses |= {400, 413, 422}
    return statuses


def _version() -> str:
    try:
        return package_version("procengine")
    except PackageNotFoundError:
        return "0+unknown"
