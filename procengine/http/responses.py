"""The two envelopes every answer is wrapped in:

{"success": true,  "data": ...}
{"success": false, "error": {"code": "...", "message": "...", "details": ...}}   (details only if any)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ErrorBody", "ErrorEnvelope", "error_response", "ok", "ok_json", "raw_json"]

_JSON = "application/json"


def ok(data: BaseModel, status: int = 200) -> web.Response:
    """A success envelope; pydantic's Rust serializer renders `data` straight to JSON (no dict round trip)."""
    return ok_json(data.model_dump_json().encode(), status)


def ok_json(data: bytes, status: int = 200) -> web.Response:
    """A success envelope around `data`, already JSON."""
    body = b'{"success":true,"data":' + data + b"}"
    return web.Response(body=body, status=status, content_type=_JSON, charset="utf-8")


def raw_json(body: bytes, status: int = 200) -> web.Response:
    """A pre-rendered JSON document, served without an envelope (the OpenAPI document)."""
    return web.Response(body=body, status=status, content_type=_JSON, charset="utf-8")


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(examples=["NOT_FOUND"])
    message: str
    details: Any = Field(default=None, description="Only when there is more to say, e.g. the problems of a 422.")


class ErrorEnvelope(BaseModel):
    """What `error_response` renders; the OpenAPI document's schema of every error answer."""

    model_config = ConfigDict(frozen=True)

    success: Literal[False] = False
    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    # default=str: an error answer must never fail to render, whatever an exception put in `details`.
    body = json.dumps({"success": False, "error": error}, separators=(",", ":"), default=str).encode()
    return web.Response(body=body, status=status, content_type=_JSON, charset="utf-8", headers=headers)
