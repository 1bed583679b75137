"""The route table's row type: one `RouteSpec` per route, read both by the router and by the OpenAPI
generator, so that what is served and what is documented cannot drift apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiohttp.typedefs import Handler
from pydantic import BaseModel

__all__ = ["BASE_PATH", "BodyKind", "RouteSpec", "under_base_path"]

BASE_PATH = "/api/v1/process-engine"

BodyKind = Literal["none", "required", "optional", "any"]
"""none: no body read; required/optional: a JSON or YAML object validated by `request_model`;
any: the body is itself the payload, any JSON value (empty is null)."""

_PATH_PARAM = re.compile(r"\{(\w+)\}")


def under_base_path(path: str) -> bool:
    """True for paths that need a caller (and, with tokens configured, a bearer token)."""
    return path == BASE_PATH or path.startswith(BASE_PATH + "/")


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    """Full path in aiohttp's template syntax, which is also OpenAPI's: `/x/{id}`."""
    handler: Handler
    summary: str
    response_model: type[BaseModel] | None
    """Model of `data` in the success envelope, or of each event's `data` in an event stream; None for a
    document served as is (openapi.json)."""
    status: int = 200
    also: tuple[int, ...] = ()
    """Other success statuses answered with the same body (200 for an idempotent repeat)."""
    body: BodyKind = "none"
    request_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()
    """Request headers the route reads (documented from openapi.HEADER_PARAMS)."""
    errors: tuple[int, ...] = ()
    """Error statuses specific to this route (409); the generic ones are derived from the row."""
    tag: str = "engine"
    media_type: str = "application/json"
    """What a success answer is; anything but JSON is documented as a plain string (the metrics text)."""

    @property
    def authenticated(self) -> bool:
        return under_base_path(self.path)

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.removesuffix("_handler")
