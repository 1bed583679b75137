"""The aiohttp application of the front door, and the bind check `procengine serve` runs first."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from procengine.api.service import NodeService
from procengine.http.console.static_routes import add_console_routes
from procengine.http.context import ENGINE_KEY, OPENAPI_KEY, ROUTES_KEY, SETTINGS_KEY
from procengine.http.middleware import front_door_middleware
from procengine.http.openapi import render_openapi
from procengine.http.routes import add_routes
from procengine.http.watch import WATCH_KEY, StoreWatch
from procengine.settings import Settings

__all__ = ["check_bind_allowed", "create_app", "is_loopback"]


def create_app(engine: NodeService, settings: Settings) -> web.Application:
    """The front door over `engine`: every route of the table in `routes.py`, behind the middlewares.

    The caller owns the engine (opens and closes it); the app only routes requests to it.
    """
    app = web.Application(
        # the request id on every answer, auth, errors (auth's included) as envelopes: middleware.py
        middlewares=[front_door_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[ENGINE_KEY] = engine
    app[SETTINGS_KEY] = settings
    app[WATCH_KEY] = watch = StoreWatch(engine)  # a hung Redis is said within a second: watch.py
    app.cleanup_ctx.append(watch.ticking)
    add_routes(app)
    add_console_routes(app)
    routes = app[ROUTES_KEY]
    app[OPENAPI_KEY] = render_openapi(routes, secured=bool(settings.api_tokens))
    return app


def check_bind_allowed(settings: Settings) -> None:
    """Refuse to serve without API tokens on anything but loopback: everyone would be tenant `default`."""
    if settings.single_tenant and not is_loopback(settings.host):
        raise ValueError(
            f"refusing to listen on {settings.host!r} without API tokens: every caller would be the "
            "unauthenticated tenant 'default'. Listen on loopback (--host 127.0.0.1), or configure tokens "
            "with --token TOKEN=TENANT or PROCENGINE_API_TOKENS='tokA=tenantA,...'."
        )


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (bracketed, or IPv4-mapped); False for anything else,
    including "" and 0.0.0.0, which listen everywhere."""
    name = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
