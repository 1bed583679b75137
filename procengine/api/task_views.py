"""The bodies and answers of external task workers (`/tasks/fetch`, `/tasks/{taskID}/…`, issue 24): workers in any
language take a queue's tasks over REST and give their results back (node/task_queues.py, docs/workers.md)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from procengine.api.views import STORABLE_REF, Storable

__all__ = [
    "MAX_FETCH",
    "ExtendResult",
    "FetchRequest",
    "FetchResult",
    "FetchedTask",
    "QueueList",
    "QueueName",
    "QueueView",
    "SettleResult",
    "TaskCompleteRequest",
    "TaskExtendRequest",
    "TaskFailRequest",
    "TaskID",
]

QueueName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
"""An external task queue's name: a short identifier (part of a Redis key and of a worker's command line)."""
TaskID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]
"""An external task's id: `<executionID>.<executionOrder>.<attempt>`, the attempt it is."""
LockToken = Annotated[str, Field(min_length=1, max_length=100)]
WorkerID = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
LockMs = Annotated[int, Field(ge=1000, le=3_600_000)]
MAX_FETCH: Final = 256


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class FetchRequest(_Request):
    """`POST …/tasks/fetch`: lock up to `max` tasks of the caller's tenant's `queues` for `lockMs`, waiting up to
    `waitMs` for one to come (a long poll: answered as soon as there is at least one)."""

    queues: list[QueueName] = Field(min_length=1, max_length=32)
    max: int = Field(default=1, ge=1, le=MAX_FETCH)
    lockMs: LockMs = 30_000
    waitMs: int = Field(default=0, ge=0, le=60_000)
    workerId: WorkerID


class FetchedTask(_View):
    taskId: str
    lockToken: str
    queue: str
    handler: str
    executionId: int
    elementKey: str
    attempt: int
    input: dict[str, Storable]
    idempotencyKey: str
    traceContext: dict[str, str] = Field(
        default_factory=dict, description="W3C trace context carrier (traceparent, tracestate) of the attempt's span."
    )
    lockExpiresAt: str


class FetchResult(_View):
    tasks: list[FetchedTask]


class TaskCompleteRequest(_Request):
    """`POST …/tasks/{taskID}/complete`: the task's output (becomes the element's output, as a handler's return)."""

    lockToken: LockToken
    output: Annotated[Any, WithJsonSchema({"anyOf": [{"$ref": STORABLE_REF}, {"type": "null"}]})] = None


class TaskFailRequest(_Request):
    """`POST …/tasks/{taskID}/fail`: the attempt failed with `error`; `type` is the error type a `catch` matches
    (as a handler's exception class name); `retryable: false` fails the element at once, whatever its retry policy."""

    lockToken: LockToken
    error: str = Field(min_length=1, max_length=10_000)
    type: Annotated[str, Field(min_length=1, max_length=200)] = "TaskFailed"
    retryable: bool = True


class TaskExtendRequest(_Request):
    """`POST …/tasks/{taskID}/extend`: hold the lock `lockMs` from now."""

    lockToken: LockToken
    lockMs: LockMs


class SettleResult(_View):
    taskId: str
    status: Literal["completed", "failed"]


class ExtendResult(_View):
    taskId: str
    lockExpiresAt: str


class QueueView(_View):
    queue: str
    depth: int = Field(description="Tasks offered and not locked by a worker.")
    oldestWaitingMs: int = Field(description="Age of the oldest of them (0: none).")
    inFlight: int = Field(description="Tasks a worker holds the lock of.")
    locksExpired: int = Field(description="Locks that expired and whose tasks were offered again, ever.")


class QueueList(_View):
    items: list[QueueView]
