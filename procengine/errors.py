"""The one exception tree of procengine; the HTTP middleware maps it to status codes.

ProcEngineError
├── BadRequest            400 BAD_REQUEST        malformed JSON or YAML
├── ValidationFailed      422 VALIDATION_ERROR   a body or definition that breaks the rules
├── Unauthorized          401 UNAUTHORIZED       missing or unknown bearer token
├── NotFound              404 NOT_FOUND          unknown (or another tenant's) resource
├── PayloadTooLarge       413 PAYLOAD_TOO_LARGE  body over the configured limit
├── InvalidTransition     409 INVALID_TRANSITION pause/resume/cancel not allowed from the current status
│   └── Refused           (logged as `refused` in the execution's log)
├── StateCorrupted        409 STATE_CORRUPTED    a snapshot that cannot be resumed
├── TaskLockStale         409 TASK_LOCK_STALE    a task's complete/fail/extend with a lock it no longer holds
├── TaskLockRevoked       409 TASK_LOCK_REVOKED  … with a lock the engine revoked (pause past grace, cancel, timeout)
├── TaskAlreadySettled    409 TASK_ALREADY_SETTLED  … of a task this lock completed or failed already
├── ProcessDeprecated     409 PROCESS_DEPRECATED a start of a process version that is deprecated
├── ProcessInUse          409 PROCESS_IN_USE     a delete of a process version that stored executions use
├── CodecError            409 STATE_CORRUPTED    a stored blob could not be decoded
├── TooManyRequests       429 RATE_LIMITED       more starts per second than the tenant may make (Retry-After)
├── Unavailable           503 UNAVAILABLE        cannot be served now; try again (Retry-After)
│   ├── OwnedElsewhere    (internal) another live node drives the execution: the request is forwarded to it
│   ├── NotReplicated     a write no replica acknowledged in time (--durability replicated)
│   ├── Fenced            a stale owner's write was refused: this node no longer owns the execution
│   ├── RequestExpired    a request's deadline passed before its transition was written: not applied
│   ├── ActorStopped      the actor stopped before it handled the request; the node sends it again
│   └── StoreFailed       Redis failed a command (store/failures.py turns redis-py's errors into these)
│       ├── StoreUnreachable  no answer: connection refused or lost, timed out, no cluster node, not RESP
│       └── StoreRefused      Redis answered with an error (out of memory, read-only replica, WRONGTYPE, ...)
│           └── StoreDenied   Redis's ACL does not allow the command
├── RedisServerError      500  the embedded redis-server could not be found, started or stopped
├── NoRedis               (CLI) no Redis to inspect
├── MailboxFull           (internal) the actor is not keeping up: the node answers 503
├── MailboxClosed         (internal) the actor stopped taking messages: the node activates it again
├── MalformedControl      (internal) a control-channel message that cannot be acted on: dropped
├── ExpressionError       (element) a CEL expression failed to compile or to evaluate
├── ExternalTaskFailed    (element) a worker failed an external task: the element's error type is the worker's
├── LimitExceeded         (element) a value, a list or an expression's cost over its limit
│   └── ExpressionTooCostly   an expression would cost more than its budget
├── SandboxError          (internal) the CEL child process failed or died: an ExpressionError
├── SandboxTimeout        (internal) the CEL child process ran past its deadline: a LimitExceeded
└── TooManyNodes          (internal) a size walk used up its node budget before it could say

(internal): never answered as such, handled where it is raised or caught one layer up. (element): fails the
element, whose error type is the class name (`catch` can take it); never an answer of the API.
This module imports nothing of procengine: every layer imports it.
"""

from __future__ import annotations

from enum import Enum
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


class NotHeldByJob(ProcEngineError):
    """A bulk pause's undo finds an execution its pause no longer holds (resumed since, paused again by another): left
    alone, counted as refused with this reason (node/bulk_items.py); never an answer to a request of its own."""

    status = 409
    code = "NOT_HELD_BY_JOB"


class InvalidTransition(ProcEngineError):
    """The execution's current status does not allow the requested transition."""

    status = 409
    code = "INVALID_TRANSITION"

    def __init__(self, message: str, current_status: str) -> None:
        super().__init__(message, details={"status": current_status})
        self.current_status = current_status


VERB_PHRASES = {"advance": "step", "breakpoints": "set the breakpoints of"}
"""What a refusal says a command would have done, where its verb does not say it."""


class Refused(InvalidTransition):
    """A transition refused for the current status; logged as `refused` (`caller` is the api's Caller)."""

    def __init__(self, caller: Any, verb: str, reason: str | None, status: Enum) -> None:
        super().__init__(
            f"cannot {VERB_PHRASES.get(verb, verb)} an execution that is {status.value}", str(status.value)
        )
        self.caller = caller
        self.verb = verb
        self.reason = reason


class StateCorrupted(ProcEngineError):
    """The stored stack or memory cannot be resumed from."""

    status = 409
    code = "STATE_CORRUPTED"


class TaskLockStale(ProcEngineError):
    """An external task's lock is not the caller's any more: it expired and another worker took the task."""

    status = 409
    code = "TASK_LOCK_STALE"


class TaskLockRevoked(ProcEngineError):
    """The engine revoked the external task's lock: its execution was paused past the grace, cancelled, or the
    attempt timed out; the result is not wanted (a paused execution offers the task again at resume)."""

    status = 409
    code = "TASK_LOCK_REVOKED"


class TaskAlreadySettled(ProcEngineError):
    """The external task was completed or failed with this lock already: the second call changes nothing."""

    status = 409
    code = "TASK_ALREADY_SETTLED"


class ProcessDeprecated(ProcEngineError):
    """A start (single, batch, child or fork) of a process version marked deprecated; `details` names it."""

    status = 409
    code = "PROCESS_DEPRECATED"


class ProcessInUse(ProcEngineError):
    """A delete of a process version that stored executions use; `details` says how many."""

    status = 409
    code = "PROCESS_IN_USE"


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


class Fenced(Unavailable):
    """A write carried a fencing epoch older than the execution's: this node no longer owns it."""


class RequestExpired(Unavailable):
    """A request's deadline passed (by the Redis clock) before its transition could be written: not applied."""


class ActorStopped(Unavailable):
    """The actor stopped before handling the request; the node sends it again."""

    def __init__(self, message: str = "the execution's actor stopped; try again") -> None:
        super().__init__(message)


class StoreFailed(Unavailable):
    """Redis failed a command. `message` is what the client is told; `reason`, also `str()` of the error, is
    what redis-py said (for logs and the CLI, which may name hosts the client must not see)."""

    def __init__(self, message: str, *, reason: str, retry_after_s: int | None = 1) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class StoreUnreachable(StoreFailed):
    """No answer from Redis: the connection was refused or lost, timed out, or what answered is not a Redis."""


class StoreRefused(StoreFailed):
    """Redis answered the command with an error."""


class StoreDenied(StoreRefused):
    """Redis's ACL does not allow the command (NOPERM)."""


class CodecError(ProcEngineError):
    """A stored blob is not valid msgpack in the expected shape."""

    status = 409
    code = "STATE_CORRUPTED"


class RedisServerError(ProcEngineError):
    """The embedded redis-server could not be found, started or stopped."""


class NoRedis(ProcEngineError):
    """No Redis to inspect: none given and no embedded redis-server running under the data directory."""


class MailboxFull(ProcEngineError):
    """The actor is not keeping up; the sender should back off."""

    def __init__(self, message: str = "the actor's mailbox is full") -> None:
        super().__init__(message)


class MailboxClosed(ProcEngineError):
    """The actor has stopped taking messages."""

    def __init__(self, message: str = "the actor's mailbox is closed") -> None:
        super().__init__(message)


class MalformedControl(ProcEngineError):
    """A control message that cannot be acted on; the text says why."""


class ExpressionError(ProcEngineError):
    """An expression failed to compile or to evaluate."""


class LimitExceeded(ProcEngineError):
    """A value would take the memory snapshot over its limit, a for-each's list is too long, or an expression
    would cost too much; also the error type of the element it fails."""


class ExpressionTooCostly(LimitExceeded):
    """An expression would cost more than its budget over these variables: its element fails with LimitExceeded."""


class SandboxError(ProcEngineError):
    """The evaluation failed in the child (its message says why), or the child died."""


class SandboxTimeout(ProcEngineError):
    """The evaluation ran past its deadline; the child was killed."""


class ExternalTaskFailed(ProcEngineError):
    """A worker failed an external task (actors/external.py): its error, with the type it gave (the element's error
    type, which a `catch` matches) and whether a retry may help."""

    def __init__(self, message: str, error_type: str, retryable: bool) -> None:
        super().__init__(message)
        self.error_type = error_type or "ExternalTaskFailed"
        self.retryable = retryable


class TooManyNodes(ProcEngineError):
    """The walk used up its `max_nodes` before it could say."""

    def __init__(self, message: str = "the walk used up its node budget") -> None:
        super().__init__(message)


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
