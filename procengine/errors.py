"""The one exception tree of procengine; the HTTP middleware maps it to status codes.

ProcEngineError
├── BadRequest            400 BAD_REQUEST        malformed JSON or YAML
├── ValidationFailed      422 VALIDATION_ERROR   a body or definition that breaks the rules
├── Unauthorized          401 UNAUTHORIZED       missing or unknown bearer token
├── NotFound              404 NOT_FOUND          unknown (or another tenant's) resource
├── PayloadTooLarge       413 PAYLOAD_TOO_LARGE  body over the configured limit
├── InvalidTransition     409 INVALID_TRANSITION pause/resume/cancel not allowed from the current status
├── StateCorrupted        409 STATE_CORRUPTED    a snapshot that cannot be resumed
├── TooManyRequests       429 RATE_LIMITED       more starts per second than the tenant may make (Retry-After)
├── Unavailable           503 UNAVAILABLE        Redis cannot be reached or refused a command (Retry-After)
│   ├── OwnedElsewhere    (internal) another live node drives the execution: the request is forwarded to it
│   └── NotReplicated     a write no replica acknowledged in time (--durability replicated)
├── Fenced                (internal) a stale owner's write was refused
└── CodecError            (internal) a stored blob could not be decoded
"""

from __future__ import annotations

from typing import Any, ClassVar


class ProcEngineError(Exception):
    """Root of every error procengine raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(ProcEngineError):
    """The body could not be parsed at all."""

    status = 400
    code = "BAD_REQUEST"


class ValidationFailed(ProcEngineError):
    """The body parsed but breaks the rules; `details` lists every problem."""

    status = 422
    code = "VALIDATION_ERROR"

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message, details=problems)
        self.problems = problems


class Unauthorized(ProcEngineError):
    """No bearer token, or one the server does not know."""

    status = 401
    code = "UNAUTHORIZED"


class NotFound(ProcEngineError):
    """The resource does not exist for this tenant."""

    status = 404
    code = "NOT_FOUND"


class PayloadTooLarge(ProcEngineError):
    """The body is over the configured size limit."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class InvalidTransition(ProcEngineError):
    """The execution's current status does not allow the requested transition."""

    status = 409
    code = "INVALID_TRANSITION"

    def __init__(self, message: str, current_status: str) -> None:
        super().__init__(message, details={"status": current_status})
        self.current_status = current_status


class StateCorrupted(ProcEngineError):
    """The stored stack or memory cannot be resumed from."""

    status = 409
    code = "STATE_CORRUPTED"


class TooManyRequests(ProcEngineError):
    """The tenant is over a rate limit; `retry_after_s` is sent as Retry-After."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ProcEngineError):
    """Redis (or the execution's owner) cannot be reached, or Redis refused a command; `retry_after_s` is sent as
    Retry-After (None: a retry will not help until an operator acts)."""

    status = 503
    code = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_s: int | None = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OwnedElsewhere(Unavailable):
    """Another live node owns the execution; `owner` is its node id (the engine forwards the request there)."""

    def __init__(self, execution_id: int, owner: str) -> None:
        super().__init__(f"execution {execution_id} is owned by node {owner}")
        self.owner = owner


class NotReplicated(Unavailable):
    """With --durability replicated: the write reached the master but no replica acknowledged it in time."""


class Fenced(ProcEngineError):
    """A write carried a fencing epoch older than the execution's: this node no longer owns it."""

    status = 503
    code = "UNAVAILABLE"


class CodecError(ProcEngineError):
    """A stored blob is not valid msgpack in the expected shape."""

    status = 409
    code = "STATE_CORRUPTED"


_BY_CODE: dict[str, type[ProcEngineError]] = {
    cls.code: cls for cls in (BadRequest, Unauthorized, NotFound, PayloadTooLarge, StateCorrupted, Unavailable)
}


def to_wire(exc: ProcEngineError) -> dict[str, Any]:
    """An error as another node can raise it again (a forwarded request's answer)."""
    wire: dict[str, Any] = {"code": exc.code, "message": exc.message, "details": exc.details}
    if isinstance(exc, Unavailable):
        wire["retryAfter"] = exc.retry_after_s
    return wire


def from_wire(wire: dict[str, Any]) -> ProcEngineError:
    """The error `to_wire` described: the same class, status, code, message and details."""
    code, message, details = str(wire.get("code")), str(wire.get("message")), wire.get("details")
    if code == InvalidTransition.code:
        return InvalidTransition(message, str((details or {}).get("status", "")))
    if code == ValidationFailed.code:
        return ValidationFailed(message, [str(problem) for problem in details or []])
    if code == Unavailable.code:
        retry_after = wire.get("retryAfter", 1)
        return Unavailable(message, retry_after_s=retry_after if isinstance(retry_after, int) else None)
    kind = _BY_CODE.get(code)
    if kind is None:
        return Unavailable(f"the execution's owner failed: {message}")
    return kind(message, details=details)
