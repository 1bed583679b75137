"""Typed state of the front door: what the app holds (engine, settings) and what a request carries (its id
and its caller), each behind an accessor so that handlers never index the mappings themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from procengine.api.service import Caller, NodeService
from procengine.settings import Settings

if TYPE_CHECKING:
    from procengine.http.spec import RouteSpec

__all__ = [
    "CALLER_KEY",
    "ENGINE_KEY",
    "OPENAPI_KEY",
    "REQUEST_ID_KEY",
    "ROUTES_KEY",
    "SETTINGS_KEY",
    "STREAMING_KEY",
    "caller",
    "engine",
    "request_id",
    "settings",
]

ENGINE_KEY: web.AppKey[NodeService] = web.AppKey("engine")
SETTINGS_KEY = web.AppKey("settings", Settings)
ROUTES_KEY: web.AppKey[tuple[RouteSpec, ...]] = web.AppKey("routes")
"""The route table the app was built from; the OpenAPI document is generated from exactly this."""
OPENAPI_KEY = web.AppKey("openapi", bytes)
"""The OpenAPI document, rendered once when the app is created."""

REQUEST_ID_KEY = web.RequestKey("request_id", str)
CALLER_KEY = web.RequestKey("caller", Caller)
STREAMING_KEY = web.RequestKey("streaming", bool)
"""Set by a handler that has started its answer (an event stream): it can no longer be turned into an error."""


def engine(request: web.Request) -> NodeService:
    return request.app[ENGINE_KEY]


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS_KEY]


def request_id(request: web.Request) -> str:
    """The id the request-id middleware gave this request ("-" outside the middleware, e.g. in a bare test)."""
    if REQUEST_ID_KEY in request:
        return request[REQUEST_ID_KEY]
    return "-"


def caller(request: web.Request) -> Caller:
    """Who is asking; set by the auth middleware for every path under the base path."""
    try:
        return request[CALLER_KEY]
    except KeyError:
        raise RuntimeError(f"no caller on {request.path}: the route is outside the authenticated base path") from None
