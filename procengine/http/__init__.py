"""The aiohttp front door: routes, body parsing, the error middleware, auth and the OpenAPI document."""

from __future__ import annotations

from procengine.http.app import check_bind_allowed, create_app

__all__ = ["check_bind_allowed", "create_app"]
