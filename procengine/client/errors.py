"""The API's error answers as exceptions, one class per code of the contract (docs/api.md, "Errors").

A script catches what it can act on: `NotFound`, `InvalidTransition` (which carries the status the execution
is in, so the caller can re-sync without another read), `Unavailable` (which carries the server's
Retry-After); every one of them is a `ProcEngineClientError` with the answer's `code`, HTTP `status` and
`message`, so one `except` is enough for the rest.

These are the client's own classes, not `procengine.errors`: the server's tree holds internal errors (fencing,
codecs) a client never sees, and a client must not need the engine to be installed in full to catch them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "InternalError",
    "InvalidTransition",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "ProcEngineClientError",
    "StateCorrupted",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "ValidationError",
    "error_from_answer",
    "parse_retry_after",
]


class ProcEngineClientError(Exception):
    """Root of every error the client raises: an error answer of the server, or no usable answer at all.

    `code` is the contract's code (`NOT_FOUND`, ...), `status` the HTTP status (0: no answer came),
    `details` what the answer's `error.details` held, `request_id` the answer's X-Request-ID (quote it to
    the server's operators: it is in their log).
    """

    code: str = "ERROR"
    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details = details
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


class BadRequest(ProcEngineClientError):
    """400: the body is not JSON or YAML, holds YAML that JSON could not say, or a required body is empty."""

    code = "BAD_REQUEST"
    status = 400


class Unauthorized(ProcEngineClientError):
    """401: the server wants a bearer token and got none, a malformed one or one it does not know."""

    code = "UNAUTHORIZED"
    status = 401


class NotFound(ProcEngineClientError):
    """404: no such execution or process for this tenant (another tenant's ids do not exist either)."""

    code = "NOT_FOUND"
    status = 404


class MethodNotAllowed(ProcEngineClientError):
    """405: a known path with a method it does not take (a client older or newer than the server)."""

    code = "METHOD_NOT_ALLOWED"
    status = 405


class Conflict(ProcEngineClientError):
    """409: the request does not fit the execution as it is now; nothing was changed."""

    status = 409


class InvalidTransition(Conflict):
    """409: pause, resume, cancel or signal is not allowed in the execution's current status, which
    `current_status` holds (from the answer's `details.status`)."""

    code = "INVALID_TRANSITION"

    def __init__(self, message: str, current_status: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.current_status = current_status


class StateCorrupted(Conflict):
    """409: a paused execution whose stack or memory cannot be resumed from; it stays paused (cancel it)."""

    code = "STATE_CORRUPTED"


class PayloadTooLarge(ProcEngineClientError):
    """413: the body is over the server's limit, or a signal or start variables would not fit in the
    execution's memory; nothing was stored."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class ValidationError(ProcEngineClientError):
    """422: a body, query or definition that breaks the rules; `problems` lists every one as "path: problem"."""

    code = "VALIDATION_ERROR"
    status = 422

    def __init__(self, message: str, problems: list[str], **kwargs: Any) -> None:
        super().__init__(message, details=problems, **kwargs)
        self.problems = problems


class InternalError(ProcEngineClientError):
    """500: a bug in the server; its log has the traceback under the answer's request id."""

    code = "INTERNAL"
    status = 500


class Unavailable(ProcEngineClientError):
    """503: the server cannot serve this now (its Redis, a busy execution, too many event streams).
    `retry_after` is the server's Retry-After in seconds; None when a retry cannot help until an operator
    acts. The client has already retried as often as it was told to before raising this."""

    code = "UNAVAILABLE"
    status = 503

    def __init__(self, message: str, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """429: the tenant is over its starts per second (--max-starts-per-second); nothing was started.
    `retry_after` is the server's Retry-After in seconds."""

    code = "RATE_LIMITED"
    status = 429


class ConnectionFailed(ProcEngineClientError):
    """No answer: the server could not be reached, or the connection broke before the answer was whole."""

    code = "CONNECTION_FAILED"


class UnexpectedAnswer(ProcEngineClientError):
    """An answer that is not the API's envelope or not the shape the client expects (not a procengine
    server, a proxy's error page, or a server of another version)."""

    code = "UNEXPECTED_ANSWER"


_BY_CODE: Final[Mapping[str, type[ProcEngineClientError]]] = {
    kind.code: kind
    for kind in (
        BadRequest,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        StateCorrupted,
        PayloadTooLarge,
        InternalError,
    )
}
_BY_STATUS: Final[Mapping[int, type[ProcEngineClientError]]] = {
    kind.status: kind for kind in (BadRequest, Unauthorized, NotFound, MethodNotAllowed, PayloadTooLarge, InternalError)
}


def error_from_answer(
    status: int, body: Any, *, retry_after: str | None = None, request_id: str | None = None
) -> ProcEngineClientError:
    """The exception for an error answer: by the envelope's `error.code`, else (a proxy's page, no
    envelope) by the HTTP status."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code: str = error["code"]
        message = str(error.get("message", "")) or f"HTTP {status}"
        details = error.get("details")
    else:
        code = ""
        message = f"HTTP {status}: the answer is not the API's error envelope"
        details = None
    extra: dict[str, Any] = {"status": status, "request_id": request_id}
    if code == InvalidTransition.code:
        # the current status is in details.status; an error-level currentStatus is read too (the contract's draft)
        current = details.get("status") if isinstance(details, dict) else None
        if current is None and isinstance(error, dict):
            current = error.get("currentStatus")
        return InvalidTransition(message, str(current or ""), details=details, **extra)
    if status == 409 and code != StateCorrupted.code:  # PROCESS_DEPRECATED, PROCESS_IN_USE, and any other 409
        return Conflict(message, code=code or f"HTTP_{status}", details=details, **extra)
    if code == ValidationError.code or (not code and status == 422):
        problems = [str(problem) for problem in details] if isinstance(details, list) else []
        return ValidationError(message, problems, **extra)
    if code == RateLimited.code or (not code and status == 429):
        return RateLimited(message, parse_retry_after(retry_after), details=details, **extra)
    if code == Unavailable.code or (not code and status == 503):
        return Unavailable(message, parse_retry_after(retry_after), details=details, **extra)
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if kind is not None and (not code or code == kind.code):
        return kind(message, details=details, **extra)
    return ProcEngineClientError(message, code=code or f"HTTP_{status}", details=details, **extra)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: a number of seconds or an HTTP date (RFC 9110); None if absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
