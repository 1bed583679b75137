"""The front door's one middleware, in this order:

1. the request id — takes `X-Request-ID` (or makes one) and echoes it on every answer;
2. auth — for paths under the base path, turns the bearer token into the request's `Caller`;
3. errors — the one place where exceptions become error envelopes, so handlers hold no try/except for
   that (auth's `Unauthorized` included); the store raises Redis's errors as `Unavailable` (store/failures.py),
   a 503 with what the store said;
4. the store watch (watch.py) — a request that runs while Redis does not answer is cut short and answers 503
   within a second, instead of waiting for the socket timeouts of a hung Redis.

One middleware rather than three: each aiohttp middleware layer costs a few microseconds per request, which
is a tenth of a status read served from memory.
"""

from __future__ import annotations

import functools
import hmac
import itertools
import logging
import re
import secrets
from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from procengine.api.service import Caller
from procengine.errors import ProcEngineError, TooManyRequests, Unauthorized, Unavailable
from procengine.http import context
from procengine.http.responses import error_response
from procengine.http.spec import under_base_path
from procengine.http.watch import WATCH_KEY
from procengine.runtime.tracing import carrier

__all__ = ["DEFAULT_TENANT", "REQUEST_ID_HEADER", "front_door_middleware"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
DEFAULT_TENANT = "default"

# Our own ids: a random prefix per process and a counter (a uuid4 per request cost 9% of a status read).
_NODE_PREFIX = f"{secrets.token_hex(6)}-"
_SEQUENCE = itertools.count(1)

# A client's id is kept only if it is short and plain: it lands in logs and in the audit trail.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# aiohttp's own exceptions (router misses, body limit) and the contract's codes for them.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    503: "UNAVAILABLE",
}


@web.middleware
async def front_door_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if _CLIENT_REQUEST_ID.fullmatch(given) else f"{_NODE_PREFIX}{next(_SEQUENCE):x}"
    request[context.REQUEST_ID_KEY] = rid
    try:
        _authenticate(request)  # inside the try: its Unauthorized is rendered like every other error
        response = await request.app[WATCH_KEY].serve(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects pass through, with the request id
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        response = _from_http_exception(request, exc)
    except Exception as exc:
        response = _from_exception(request, exc)
    response.headers[REQUEST_ID_HEADER] = rid
    return response


def _from_exception(request: web.Request, exc: Exception) -> web.Response:
    if isinstance(exc, ProcEngineError):
        return _from_engine_error(request, exc)
    rid = context.request_id(request)
    log.exception("unhandled error on %s %s (request %s)", request.method, request.path, rid, exc_info=exc)
    # The traceback stays in the server log; the client gets the id to quote.
    return error_response(500, "INTERNAL", f"internal error (request id {rid})")


def _from_engine_error(request: web.Request, exc: ProcEngineError) -> web.Response:
    if exc.status >= 500:
        log.warning(
            "%s on %s %s (request %s): %s",
            type(exc).__name__,
            request.method,
            request.path,
            context.request_id(request),
            exc.message,
        )
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="procengine"'
    if isinstance(exc, Unavailable | TooManyRequests) and exc.retry_after_s is not None:  # every 503, every 429
        headers["Retry-After"] = str(exc.retry_after_s)
    return error_response(exc.status, exc.code, exc.message, exc.details, headers=headers or None)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    name, phrase = _describe(status)
    code = _HTTP_CODES.get(status, name)
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPNotFound):
        message = f"{request.method} {request.path} not found"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        headers["Allow"] = allowed
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"request body is over the limit of {context.settings(request).max_body_bytes} bytes"
    else:
        message = phrase
    return error_response(status, code, message, headers=headers or None)


def _describe(status: int) -> tuple[str, str]:
    """(code, message) for an HTTP status the contract has no code for: `IM_A_TEAPOT`, "i'm a teapot"."""
    try:
        known = HTTPStatus(status)
    except ValueError:
        return "ERROR", "error"
    return known.name, known.phrase.lower()


def _authenticate(request: web.Request) -> None:
    """For paths under the base path, the bearer token becomes the request's `Caller` (or Unauthorized)."""
    if _needs_caller(request):
        settings = context.settings(request)
        if settings.single_tenant:
            tenant = DEFAULT_TENANT
        else:
            tenant = _tenant_for(request.headers.get("Authorization"), settings.api_tokens)
        headers = request.headers
        trace = None if "traceparent" not in headers else carrier(headers["traceparent"], headers.get("tracestate"))
        request[context.CALLER_KEY] = Caller(
            tenant=tenant,
            by=tenant,
            request_id=context.request_id(request),
            traceparent=None if trace is None else trace["traceparent"],
            tracestate=None if trace is None else trace.get("tracestate"),
        )


def _needs_caller(request: web.Request) -> bool:
    # Judge by the route it matched and by the decoded path, so no spelling of a path can reach an
    # authenticated route without a token.
    resource = request.match_info.route.resource
    return (resource is not None and _under_base_path(resource.canonical)) or under_base_path(request.path)


_under_base_path = functools.lru_cache(maxsize=256)(under_base_path)
"""For route templates (a few dozen): cached, most requests are decided without decoding their path."""


def _tenant_for(authorization: str | None, tokens: Mapping[str, str]) -> str:
    if not authorization:
        raise Unauthorized("missing bearer token: send Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization must be: Bearer <token>")
    # Compare against every known token in constant time; do not stop at the first match.
    found: str | None = None
    # aiohttp hands a header's non-UTF-8 bytes over as surrogates: give them back as the bytes that came, which
    # then match no token (a plain .encode() raised, and the client got a 500)
    given = token.encode("utf-8", "surrogateescape")
    for known, tenant in tokens.items():
        if hmac.compare_digest(given, known.encode()):
            found = tenant
    if found is None:
        raise Unauthorized("unknown bearer token")
    return found
