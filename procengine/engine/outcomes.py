"""What the interpreter decides (`Interpreter` in interpreter.py): the step a lane takes next, and the element
events to record with the next checkpoint. Plain data: the actor carries each step out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from procengine.engine.state import StackEntry

EventName = Literal["element-started", "element-completed", "element-failed", "element-retry"]


@dataclass(slots=True)
class ElementEvent:
    """One element's news for the log and its record. Not frozen, though nothing changes one once made: a frozen
    dataclass sets each of these 17 fields through object.__setattr__, and one is made per element (2 µs of a
    pure element's ~10)."""

    event: EventName
    element_key: str
    element_type: str
    thread_key: str
    attempt: int
    at_ms: int
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    retry_at_ms: int | None = None
    started_at_ms: int | None = None
    rerun: bool = False
    """An element-started of an attempt whose earlier start was cut short."""
    caught: str | None = None
    """An element-failed whose failure a catch clause took: the element the thread goes on with."""
    path: str | None = None
    """The branch or iteration lane the element ran in (None: the thread itself)."""
    input: Any = None
    """An element-started of a task: the input its handler is called with (a note instead, past the memory
    limit: an input is kept, like an output, only up to the size a snapshot may take)."""
    held: bool = False
    """An element-failed whose failure is held on the stack (`onExhausted: pause`): the execution pauses."""


@dataclass(frozen=True, slots=True)
class RunTask:
    entry: StackEntry
    handler: str
    input: dict[str, Any]
    timeout_ms: int | None
    queue: str | None = None
    """An external task: its attempt goes on this queue of the tenant for a worker (None: the node's handler)."""


@dataclass(frozen=True, slots=True)
class Sleep:
    entry: StackEntry
    until_ms: int


@dataclass(frozen=True, slots=True)
class AwaitSignal:
    entry: StackEntry
    signal: str
    until_ms: int | None = None
    """With a timeout: ask again at this time (epoch ms) if no signal came."""


@dataclass(frozen=True, slots=True)
class StartChild:
    """A call-process: start its child execution (then report its id with `child_started`)."""

    entry: StackEntry
    process: str
    version: int | None
    input: dict[str, Any]

    @property
    def start_key(self) -> str:
        """The same for every try of this start (a crash before the child's id was checkpointed, a retry after a
        503): an idempotency key, so the child is started once."""
        return f"{self.entry.execution_order}.{self.entry.attempt}"


@dataclass(frozen=True, slots=True)
class AwaitChild:
    """A call-process waits for its child execution to end (then report it with `child_ended`)."""

    entry: StackEntry
    child_id: int


@dataclass(frozen=True, slots=True)
class AwaitLanes:
    """A parallel or for-each waits for its branches or iterations to end (they wake its lane)."""

    entry: StackEntry


@dataclass(frozen=True, slots=True)
class LaneEnded:
    """A branch or iteration has nothing left to run: it ended, or failed and its fan-out was told."""


@dataclass(frozen=True, slots=True)
class Progressed:
    """The thread moved on; checkpoint and ask again."""


@dataclass(frozen=True, slots=True)
class ThreadEnded:
    """The thread has no pending element."""


@dataclass(frozen=True, slots=True)
class ElementFailed:
    entry: StackEntry
    error: str
    error_type: str
    """What kind of failure: the handler's exception class, Timeout, ExpressionError, LimitExceeded, ..."""


@dataclass(frozen=True, slots=True)
class ElementHeld:
    """The element failed for good and its `onExhausted` is `pause`: its entry stays on the stack with `held` set,
    its lane stops, and the execution pauses (resume retries it)."""

    entry: StackEntry
    error: str
    error_type: str


Step = (
    RunTask
    | Sleep
    | AwaitSignal
    | AwaitLanes
    | StartChild
    | AwaitChild
    | Progressed
    | ThreadEnded
    | LaneEnded
    | ElementFailed
    | ElementHeld
)


@dataclass(slots=True)
class Outcome:
    """What a call decided, and the events to record with the next checkpoint. Other lanes it concerns: lanes
    to run from now on (new branches or iterations), lanes to stop (their fan-out failed: their elements left the
    stack), lanes to wake (a fan-out whose branch or iteration ended)."""

    step: Step
    events: list[ElementEvent] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)
    orphaned: list[int] = field(default_factory=list)
    """Child executions that stopped lanes were waiting for: nothing waits for them any more (cancel them)."""
    interrupted: list[StackEntry] = field(default_factory=list)
    """Elements under way in the stopped lanes (a task, a delay, a wait, a call, a nested fan-out), taken off the
    stack: they never end, so their records must say `interrupted` (an element not yet started has no record)."""
