"""What the URL carries: integer ids in the path, the signal name, and the query of the execution list."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from procengine.api.filters import ATTR_PREFIX, ExecutionFilter
from procengine.api.problems import problems, validate
from procengine.api.views import ELEMENTS_PAGE, StatusName
from procengine.engine.definitions import ErrorName, Identifier
from procengine.errors import BadRequest, NotFound, ValidationFailed

__all__ = [
    "EVENT_ID_EXAMPLE",
    "EVENT_ID_PATTERN",
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_ID",
    "CheckpointsQuery",
    "ElementsQuery",
    "EventsQuery",
    "ExecutionQuery",
    "NumberedPageQuery",
    "ReasonQuery",
    "checkpoint_seq",
    "element_key",
    "execution_id",
    "idempotency_key",
    "path_id",
    "process_id",
    "read_list_query",
    "read_query",
    "signal_name",
]

MAX_ID: Final = 2**63 - 1
"""Ids are Redis integers: anything larger cannot exist."""

# Canonical positive integers only: "007", "+7", "7.0" and non-ASCII digits name nothing (404, as unknown ids).
_ID: Final = re.compile(r"[1-9][0-9]{0,18}")
_IDENTIFIER: Final = TypeAdapter(Identifier)
_INTEGER: Final = re.compile(r"0|-?[1-9][0-9]{0,18}")


def _integer_text(value: object) -> object:
    """A query number is written as a plain integer ("50"): never "50.0", "5e1", "+50", " 50", "1_000" or "true"."""
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise PydanticCustomError(
                "int_text", "Input should be an integer in plain digits, got {given}", {"given": repr(value[:50])}
            )
        return int(value)
    return value


# The bounds come before the validator, so that they land in the integer's JSON schema (`minimum`, `maximum`)
# instead of beside it as pydantic's own `ge`/`le`, which no OpenAPI tool reads.
QueryId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integer_text)]
PageSize = Annotated[int, Field(ge=1, le=500), BeforeValidator(_integer_text)]
ElementPageSize = Annotated[int, Field(ge=1, le=ELEMENTS_PAGE), BeforeValidator(_integer_text)]


EVENT_ID_PATTERN: Final = r"^[0-9]{1,19}(-[0-9]{1,19})?$"
"""A Redis stream id as the event streams give it (`<ms>-<seq>`), or its time alone as Redis also takes it (`0`:
from the first); 19 digits a part always fit the 64 bits Redis reads, so Redis never refuses one."""
EVENT_ID_EXAMPLE: Final = "1796108161882-0"


class ExecutionQuery(BaseModel):
    """`GET /executions/processes?status=&processID=&processKey=&startedAfter=&startedBefore=&errorType=&limit=
    &cursor=`, and `attr.<name>=` / `attr.<name>.<gte|lte|gt|lt>=` (`read_list_query`); numbers strictly, no empty
    values."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    query_description: ClassVar[str] = (
        "Search attributes filter too: `attr.<name>=<value>` (a keyword's or a bool's value, a word of a text, a "
        "number's or a time's value) and `attr.<name>.gte=`, `.gt=`, `.lte=`, `.lt=` (a number's or an ISO-8601 "
        "time's range), for the attributes the tenant's definitions declare, each parameter once; an attribute no "
        "definition declares, or a value its type cannot read (`attr.amount.gte=abc`), is 422 VALIDATION_ERROR "
        "naming it. Filters combine (all must hold). A filtered page may come short, even empty, with a "
        "`nextCursor`: go on with it until it is null."
    )

    status: StatusName | None = Field(default=None, description="Only executions in this status.")
    processID: QueryId | None = Field(default=None, description="Only executions of this process.")
    processKey: Identifier | None = Field(default=None, description="Only executions of any version of this process.")
    startedAfter: str | None = Field(
        default=None,
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="Only executions started at or after this ISO-8601 time (`2026-12-08T10:00:00Z`).",
    )
    startedBefore: str | None = Field(
        default=None,
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="Only executions started before this ISO-8601 time.",
    )
    errorType: ErrorName | None = Field(
        default=None, description="Only failed executions whose error has this type (`Timeout`, a handler's class)."
    )
    limit: PageSize = Field(default=50, description="Page size.")
    cursor: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,19}$",
        description="`nextCursor` of the previous page (opaque: give it back as it came).",
    )


class ElementsQuery(BaseModel):
    """`GET .../elements?limit=&cursor=`: a page of the element records (one per element and branch or iteration)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    limit: ElementPageSize = Field(default=ELEMENTS_PAGE, description="Page size.")
    cursor: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,4000}$",
        description="`nextCursor` of the previous page (opaque: give it back as it came).",
    )


class NumberedPageQuery(BaseModel):
    """`?limit=&cursor=` of a list whose cursor is a number this API gave (the checkpoints, the bulk jobs)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    limit: PageSize = Field(default=50, description="Page size.")
    cursor: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,19}$",
        description="`nextCursor` of the previous page (opaque: give it back as it came).",
    )


class CheckpointsQuery(NumberedPageQuery):
    """`GET …/{id}/checkpoints?limit=&cursor=`: a page of the kept checkpoints, newest first."""


class ReasonQuery(BaseModel):
    """`PATCH …/variables?reason=`: why (the body is the patch itself, so the reason comes in the query)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    # 500, not the 1,000 of a body's reason: percent-encoded, 500 characters take up to 6,000 bytes, within the
    # 8,190 of a request line the server reads (past it the answer is a bare 400 before any handler)
    reason: str | None = Field(default=None, min_length=1, max_length=500, description="Why, for the execution's log.")


def process_id(request: web.Request) -> int:
    return _path_id(request, "processID", "process")


def execution_id(request: web.Request) -> int:
    return _path_id(request, "id", "execution")


def path_id(request: web.Request, param: str, noun: str) -> int:
    """An integer id in the path (`{param}`), else no such `noun` (404)."""
    return _path_id(request, param, noun)


def _path_id(request: web.Request, param: str, noun: str) -> int:
    raw = request.match_info[param]
    if _ID.fullmatch(raw) and int(raw) <= MAX_ID:
        return int(raw)
    raise NotFound(f"{noun} {raw[:50]!r} not found")


def checkpoint_seq(request: web.Request, param: str = "seq") -> int:
    """A checkpoint's `{seq}` (or `{a}`, `{b}` of a diff): a positive integer, else no checkpoint (404)."""
    return _path_id(request, param, "checkpoint")


def element_key(request: web.Request) -> str:
    """The `{elementKey}` of a step control's route: an element key, or nothing the execution could have (404)."""
    raw = request.match_info["elementKey"]
    try:
        return _IDENTIFIER.validate_python(raw)
    except ValidationError:
        raise NotFound(f"element {raw[:50]!r} not found") from None


def signal_name(request: web.Request) -> str:
    """The `{name}` of a signal route; it must be a name a `wait-signal` element could wait for."""
    raw = request.match_info["name"]
    try:
        return _IDENTIFIER.validate_python(raw)
    except ValidationError as exc:
        raise ValidationFailed("signal name is invalid", [f"name: {p}" for p in problems(exc)]) from None


IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
_IDEMPOTENCY_KEY: Final = re.compile(r"[\x21-\x7e]{1,200}")


def idempotency_key(request: web.Request) -> str | None:
    """The `Idempotency-Key` header of a signal: 1 to 200 visible ASCII characters, or none."""
    given = request.headers.getall(IDEMPOTENCY_KEY_HEADER, [])
    if not given:
        return None
    if len(given) > 1 or not _IDEMPOTENCY_KEY.fullmatch(given[0]):
        raise ValidationFailed(
            "Idempotency-Key is invalid", [f"{IDEMPOTENCY_KEY_HEADER}: give it once, 1 to 200 visible ASCII characters"]
        )
    return given[0]


class EventsQuery(BaseModel):
    """`GET .../events?after=`: where an event stream goes on from (the Last-Event-ID header wins)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    after: str | None = Field(
        default=None,
        pattern=EVENT_ID_PATTERN,
        examples=[EVENT_ID_EXAMPLE],
        description="Go on after this event, like the Last-Event-ID header (which wins when both are given).",
    )


Q = TypeVar("Q", bound=BaseModel)

ATTRIBUTE_FILTERS: Final = (
    "attr.<name>=<value> (a keyword's or bool's value, a word of a text, a number's or time's value) and "
    "attr.<name>.gte=, .gt=, .lte=, .lt= (a number's or an ISO-8601 time's range), for the attributes the tenant's "
    "definitions declare; repeatable over names, each parameter once"
)


def read_list_query(request: web.Request) -> tuple[ExecutionQuery, ExecutionFilter]:
    """The execution list's query: its named parameters, and the filter with its `attr.*` ones; a malformed `attr.`
    parameter (`attr.x.between`) is a 400 like any unknown one, an attribute no definition declares a 422 (the
    node's, which knows the declarations)."""
    query = read_query(request, ExecutionQuery, prefix=ATTR_PREFIX)
    given: dict[str, str] = {}
    refused: list[str] = []
    for name in dict.fromkeys(request.query):
        if not name.startswith(ATTR_PREFIX):
            continue
        values = request.query.getall(name)
        if len(values) > 1:
            refused.append(f"{name[:100]}: given {len(values)} times; give it once")
        elif values[0] == "":
            refused.append(f"{name[:100]}: empty value; leave the parameter out to mean any")
        else:
            given[name] = values[0]
    attributes, malformed = ExecutionFilter.parameters(given)
    if malformed:
        known = ", ".join(ExecutionQuery.model_fields)
        raise BadRequest(
            "the query has a parameter this operation does not know",
            details=[
                f"{name[:100]}: unknown query parameter; known: {known}, {ATTRIBUTE_FILTERS}" for name in malformed
            ],
        )
    if refused:
        raise ValidationFailed("query is invalid", refused)
    return query, ExecutionFilter(
        status=query.status,
        process_id=query.processID,
        process_key=query.processKey,
        started_after=query.startedAfter,
        started_before=query.startedBefore,
        error_type=query.errorType,
        attributes=attributes,
    )


def read_query(request: web.Request, model: type[Q], *, prefix: str | None = None) -> Q:
    """The query as `model` (`prefix`: parameters named so are the caller's to read); a repeated or empty
    parameter (`?status=`) is refused (422): leave it out to mean any. A parameter the model does not know
    (`?order_id=42`) is a 400 (the contract's §7) naming the known ones: ignored, it would answer everything as if
    it had filtered."""
    known = ", ".join(model.model_fields) + (f", {prefix}*" if prefix else "")
    unknown = [
        f"{name[:50]}: unknown query parameter; known: {known}"
        for name in dict.fromkeys(request.query)
        if name not in model.model_fields and not (prefix and name.startswith(prefix))
    ]
    if unknown:
        raise BadRequest("the query has a parameter this operation does not know", details=unknown)
    values: dict[str, str] = {}
    refused: list[str] = []
    for name in model.model_fields:
        given = request.query.getall(name, [])
        if len(given) > 1:
            refused.append(f"{name}: given {len(given)} times; give it once")
        elif given and given[0] == "":
            refused.append(f"{name}: empty value; leave the parameter out to mean any")
        elif given:
            values[name] = given[0]
    if refused:
        raise ValidationFailed("query is invalid", refused)
    return validate(model, values, "query")
