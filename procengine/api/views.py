"""What the engine answers with: pydantic models shared by the service layer and the front door.

Field names follow the seed document (camelCase) so that they are the JSON the clients see.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema, model_validator

from procengine.api.process_views import ExecutionCounts
from procengine.depth import clipped

StatusName = Literal["running", "paused", "completed", "failed", "cancelled"]

STORABLE_REF: Final = "#/components/schemas/StorableValue"
"""Where the OpenAPI document describes a JSON value an execution's memory can hold (`http/openapi.py`)."""
Storable = Annotated[Any, WithJsonSchema({"$ref": STORABLE_REF})]
"""Any JSON value, as far as validation goes (the engine measures and encodes it); documented as storable."""


Shown = BeforeValidator(clipped)
"""On a stored value a view shows (memory, an output, a log's detail): the parts nested deeper than
depth.RENDER_DEPTH become a note, so that a value stored before the nesting limit, or written into Redis by hand,
still renders (the JSON serializer stops at 255 levels, and the answer was a 500 for ever)."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProcessSummary(_View):
    processID: int
    key: str
    version: int


class ProcessView(ProcessSummary):
    name: str
    tenant: str
    createdAt: str
    definition: Annotated[dict[str, Any], Shown]
    deprecated: bool = False
    """Takes no new start (`PATCH /processes/{processID}`)."""
    executions: ExecutionCounts | None = None
    """How many of the tenant's stored executions of this version are in each status."""


class ProcessList(_View):
    items: list[ProcessView]


class StartResult(_View):
    executionID: int
    status: StatusName
    processID: int | None = None
    processVersion: int | None = None


class BatchItemError(_View):
    """Why one start of a batch was refused: the contract's code and message, and the HTTP status the same
    start would have been answered with on its own."""

    code: str = Field(examples=["NOT_FOUND"])
    message: str
    status: int = Field(examples=[404])
    details: Any = Field(default=None, description="Only when there is more to say, e.g. the problems of a 422.")


class BatchStartItem(_View):
    """The outcome of the start at `index` in the request: `started` (a new execution), `existing` (its
    idempotencyKey named an execution started before, or an earlier item of the batch), or `failed` (`error`)."""

    index: int
    outcome: Literal["started", "existing", "failed"]
    executionID: int | None = None
    status: StatusName | None = None
    processID: int | None = None
    processVersion: int | None = None
    error: BatchItemError | None = None


class BatchStartResult(_View):
    """One item per start asked for, in the request's order, and how many of each outcome."""

    items: list[BatchStartItem]
    started: int
    existing: int
    failed: int


class PauseResult(_View):
    executionID: int
    status: Literal["paused"] = "paused"
    completedNodes: int
    totalNodes: int
    pausedAt: str
    inflightNodes: int = 0


class ResumeResult(_View):
    executionID: int
    status: Literal["running"] = "running"
    resumedAt: str
    pendingNodes: int
    pausedDurationMs: int = 0


class CancelResult(_View):
    executionID: int
    status: Literal["cancelled"] = "cancelled"
    cancelledAt: str


class RetryResult(_View):
    """A failed execution goes on (`POST …/{id}/retry`): running again, same id."""

    executionID: int
    status: Literal["running"] = "running"
    retriedAt: str
    pendingNodes: int
    """The stack depth after the retry, as a resume's."""
    retried: list[str] = Field(default_factory=list)
    """The elements that failed and start again, attempts reset (a call-process's: its child retried or started
    again)."""
    retriedChildren: list[int] = Field(default_factory=list)
    """Failed children of retried call-process elements, retried in place (same child id)."""


class StartedRun(_View):
    elementKey: str
    lane: str
    """The thread, or the branch or iteration of a parallel or for-each, it ran in."""


class SteppedRun(_View):
    elementKey: str
    lane: str
    outcome: str
    """completed, under way (it waits: a signal, a timer, a child, its branches; or a task still in flight), or
    failed (held)."""


class SteppedResult(_View):
    """`POST …/{id}/step`: what ran, one element per lane, and the status after (paused, unless the step ended it)."""

    executionID: int
    status: StatusName
    ran: list[SteppedRun]


class BreakpointsResult(_View):
    """`PUT …/{id}/breakpoints`: exact: the execution will pause before every run of these elements that has not
    begun, and `alreadyStarted` are the runs that had (they will not stop)."""

    executionID: int
    pauseBefore: list[str | dict[str, str]]
    alreadyStarted: list[StartedRun]


class MigrationStep(_View):
    """One lane's pending element in a migration plan: its element in the old version and the one it takes."""

    lane: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    type: str
    parked: bool = False
    """An element a failed parallel or for-each parked for its retry."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class MigrateResult(_View):
    """`POST …/{id}/migrate`: the plan, its problems (a dry run answers them; otherwise a plan with problems is a 422
    listing them), and whether it was applied."""

    executionID: int
    status: StatusName
    fromVersion: int
    toVersion: int
    fromProcessID: int
    toProcessID: int
    plan: list[MigrationStep]
    problems: list[str]
    applied: bool
    migratedAt: str | None = None


class RewindResult(_View):
    """An execution put back to one of its kept checkpoints (`POST …/{id}/rewind`): paused there, same id."""

    executionID: int
    status: Literal["paused"] = "paused"
    checkpoint: int
    """The kept checkpoint it went back to (its `seq`)."""
    rewoundFrom: str
    """The status it had: paused, failed or cancelled."""
    rewoundAt: str
    pendingNodes: int
    """The stack depth now: what resume goes on from."""
    variables: Annotated[dict[str, Any], Shown]
    """{added, removed, changed} of the variables, from what it had to what it has now (the patch included)."""


class VariablesResult(_View):
    """A paused execution's variables after an edit (`PATCH …/{id}/variables`)."""

    executionID: int
    status: Literal["paused"] = "paused"
    variables: Annotated[dict[str, Any], Shown]
    changed: list[str]
    """The names the patch added, changed or removed (sorted)."""


class PendingElement(_View):
    """One entry of an execution's stack, as a step control's answer shows it."""

    elementKey: str
    lane: str
    """The thread's key, or the branch or iteration path (`main/ship[3]`)."""
    attempt: int


StepAction = Literal["retry", "skip", "complete", "fail", "move", "run-now", "policy"]


class StepResult(_View):
    """A step control applied to one element of a paused or failed execution (`POST …/{id}/elements/{key}/…`)."""

    executionID: int
    action: StepAction
    elementKey: str
    lane: str
    """Where the element stood (the thread's key, or a branch or iteration path)."""
    status: Literal["running", "paused", "failed"]
    """The execution's status after it: paused (a failed one too: resume goes on from the new position), or failed
    when a `fail` no catch clause took ended it; running after a run-now."""
    caught: str | None = None
    """A `fail` that a catch clause took: the element the lane goes on with."""
    stack: list[PendingElement]
    """The stack after the step (what resume goes on from)."""
    policy: dict[str, Any] | None = None
    """After a policy change: the element's policy for this run of it ({retry?, timeoutMs?})."""


class SignalResult(_View):
    executionID: int
    signal: str
    accepted: bool = True


class Progress(_View):
    totalNodes: int
    completedNodes: int
    failedNodes: int
    percentage: float


class Timing(_View):
    startedAt: str
    stoppedAt: str | None
    durationMs: int
    pausedAt: str | None = None
    pausedDurationMs: int = 0


class ThreadView(_View):
    threadExecutionID: int
    processThreadID: int
    threadKey: str
    status: str
    completedNodes: int
    totalNodes: int


BlockedKind = Literal[
    "signal", "delay", "backoff", "task", "paused", "owner-dead", "child", "held-failed", "breakpoint"
]
"""Why a lane does not move (docs/api.md). `held-failed` and `breakpoint` are kept for the work that brings them
(an element held as failed on a paused execution; a breakpoint): no answer gives them yet."""


class BlockedOn(_View):
    """One lane of an execution that is not moving, and why: see docs/api.md, "Why is it not moving?"."""

    lane: str
    """The thread's key, or the path of a branch or iteration (`main/ship[3]`)."""
    elementKey: str
    kind: BlockedKind
    since: str | None
    """When the lane began to wait so (null when it cannot be known)."""
    until: str | None = None
    """When the wait ends by itself: a delay's due time, a wait's timeout, a retry's time, a task's timeout."""
    detail: Annotated[dict[str, Any], Shown] = Field(default_factory=dict)


class ExecutionStatusView(_View):
    executionID: int
    processID: int
    processKey: str
    processVersion: int
    status: StatusName
    isActive: bool
    progress: Progress
    timing: Timing
    threads: list[ThreadView]
    error: Annotated[dict[str, Any] | None, Shown] = None
    parentExecutionID: int | None = None
    """The execution whose call-process started this one."""
    children: list[int] = Field(default_factory=list)
    """The executions this one's call-process elements started, oldest first."""
    attributes: dict[str, Any] = Field(default_factory=dict)
    """The execution's search attributes (a time as ISO-8601); {} when it has none."""
    blockedOn: list[BlockedOn] = Field(default_factory=list)
    """A lane per entry that is not moving, and why (empty once the execution is final). Last: the status
    answer is rendered with it apart (`api/rendered.py`)."""


class ExecutionSummary(_View):
    executionID: int
    processID: int
    processKey: str
    processVersion: int
    status: StatusName
    startedAt: str
    stoppedAt: str | None
    parentExecutionID: int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    """The execution's search attributes (a time as ISO-8601); {} when it has none."""


class ExecutionList(_View):
    items: list[ExecutionSummary]
    nextCursor: str | None


class LogEntry(_View):
    id: str
    at: str
    event: str
    elementKey: str | None = None
    detail: Annotated[dict[str, Any], Shown] = Field(default_factory=dict)


class StatusEvent(_View):
    """One status change of one of the tenant's executions (GET /executions/events)."""

    id: str
    """The event's id: give it back as Last-Event-ID to go on after it."""
    executionID: int
    status: StatusName
    processKey: str


class LogView(_View):
    executionID: int
    items: list[LogEntry]


class AttemptView(_View):
    """One attempt of a task (`attemptHistory`): every field is there, null when it has no value."""

    attempt: int
    status: Literal["running", "completed", "failed", "interrupted"]
    startedAt: str | None
    stoppedAt: str | None
    durationMs: int | None
    error: str | None
    errorType: str | None


class ElementView(_View):
    key: str
    type: str
    threadKey: str
    path: str | None = None
    """The branch or iteration of a parallel or for-each the element last ran in (None: the thread itself)."""
    status: str
    attempts: int
    startedAt: str | None = None
    stoppedAt: str | None = None
    output: Annotated[Any, Shown] = None
    error: str | None = None
    errorType: str | None = None
    """What kind of failure: the handler's exception class, Timeout, ExpressionError, LimitExceeded, Unstorable, ..."""
    caught: str | None = None
    """A failure a catch clause took: the element the thread went on with."""
    input: Annotated[Any, Shown] = None
    """A task's evaluated input, as its latest attempt was called with it (null for other elements)."""
    attemptHistory: list[AttemptView] | None = None
    """A task's attempts, oldest first, the latest 20 (null for other elements)."""


ELEMENTS_PAGE: Final = 1000
"""The most element records one page of `GET .../elements` holds (and how many it holds unless asked for fewer)."""


class ElementsView(_View):
    executionID: int
    items: list[ElementView]
    nextCursor: str | None = None
    """Give it back as `cursor` for the next page; null on the last."""


class StateView(_View):
    executionID: int
    active: bool
    savedAt: str | None
    stack: Annotated[dict[str, Any] | None, Shown]
    memory: Annotated[dict[str, Any] | None, Shown]
    pauseBefore: list[str | dict[str, str]] = Field(default_factory=list)
    """Its breakpoints (`PUT …/breakpoints`, or a start's `pauseBefore`): element keys, or {element, when}."""


class CheckpointSummary(_View):
    seq: int
    """The checkpoint's number in the execution's history (1 for its first, counting every one written)."""
    savedAt: str
    elementKey: str | None
    """The element whose step it follows (null for a write of no element's: a pause, a resume, a repair)."""
    lanes: list[str]
    """The lanes with an element pending in it (threads, branches, iterations)."""
    bytes: int
    """What it takes in Redis's history list."""


class CheckpointList(_View):
    executionID: int
    items: list[CheckpointSummary]
    """Newest first."""
    nextCursor: str | None = None
    """Give it back as `cursor` for the next page; null on the last."""


class CheckpointView(CheckpointSummary):
    executionID: int
    stack: Annotated[dict[str, Any] | None, Shown]
    memory: Annotated[dict[str, Any] | None, Shown]


class CheckpointDiff(_View):
    executionID: int
    fromSeq: int
    toSeq: int
    variables: Annotated[dict[str, Any], Shown]
    """{added: {name: value}, removed: {name: value}, changed: {name: {from, to}}} from `fromSeq` to `toSeq`."""
    nodeOutputs: Annotated[dict[str, Any], Shown]
    """The same for the elements' outputs."""
    stack: Annotated[dict[str, Any], Shown]
    """{added: [entry], removed: [entry], changed: [{from, to}]}: the pending elements of each lane."""


class StatusRow(_View):
    id: int
    name: StatusName
    isFinal: bool
    isSuccess: bool


class StatusTable(_View):
    items: list[StatusRow]


# --- requests (bodies the front door parses, and the control channel reuses) -----------------


class _Request(BaseModel):
    """Strict: a number is a JSON number of the right kind (no `true`, `"1"` or `1.0` for an integer)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BreakpointSpec(_Request):
    """A breakpoint with a condition: pause before `element` only when `when` (CEL, over the lane's variables)
    holds; an error in it pauses too, and the log says so."""

    element: str = Field(min_length=1, max_length=200)
    when: str | None = Field(default=None, min_length=1, max_length=4000)


class StartRequest(_Request):
    """Start by `processID` (one version) or `processKey` (its latest version); both must agree."""

    # The one rule the fields cannot say: a process is named, by a processID or a processKey that is not null.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["processID"], "properties": {"processID": {"type": "integer"}}},
                {"required": ["processKey"], "properties": {"processKey": {"type": "string"}}},
            ]
        }
    )

    processID: int | None = Field(default=None, ge=1)
    processKey: str | None = Field(default=None, min_length=1)
    variables: dict[str, Storable] = Field(default_factory=dict)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=200)
    pauseBefore: list[str | BreakpointSpec] | None = Field(default=None, max_length=1000)
    """Breakpoints from the start (as `PUT …/{id}/breakpoints` sets them): element keys, or {element, when}."""
    attributes: dict[str, Any] | None = Field(default=None, max_length=50)
    """Search attributes the definition declares, name -> value (a time as ISO-8601): checked against the declared
    types (422 listing each problem), indexed, and filterable on the execution list. None (left out): none."""

    @model_validator(mode="after")
    def _names_a_process(self) -> StartRequest:
        if self.processID is None and self.processKey is None:
            raise ValueError("give processID or processKey")
        return self


BATCH_LIMIT: Final = 1000
"""The most starts one `POST .../executions/processes/batch` may ask for (more: 422, nothing started)."""


class BatchStartRequest(_Request):
    """Many starts in one request: each item is a start of its own (its process, variables, idempotencyKey)."""

    items: list[StartRequest] = Field(min_length=1, max_length=BATCH_LIMIT)


class ControlRequest(_Request):
    reason: str | None = Field(default=None, max_length=1000)


class RetryRequest(_Request):
    """`POST …/{id}/retry`: all optional. `variables` is a JSON merge patch (RFC 7396: `null` removes a name)
    applied in the same write that makes the execution run again."""

    variables: dict[str, Storable] | None = None
    reason: str | None = Field(default=None, max_length=1000)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=200)


class BreakpointsRequest(_Request):
    """`PUT …/{id}/breakpoints`: the whole set (an empty list clears them): element keys, or {element, when}."""

    pauseBefore: list[str | BreakpointSpec] = Field(max_length=1000)
    reason: str | None = Field(default=None, max_length=1000)


class StepRequest(_Request):
    """`POST …/{id}/step`: all optional: one lane only (else every lane with an element pending)."""

    lane: str | None = Field(default=None, min_length=1, max_length=1000)
    reason: str | None = Field(default=None, max_length=1000)


class ForkRequest(_Request):
    """`POST …/{id}/fork`: all optional: the kept checkpoint to start from (its latest if absent), a JSON merge patch
    of its variables, and `paused` to start it paused there."""

    checkpoint: int | None = Field(default=None, ge=1, le=2**63 - 1)
    variables: dict[str, Storable] | None = None
    paused: bool = False
    reason: str | None = Field(default=None, max_length=1000)


class RewindRequest(_Request):
    """`POST …/{id}/rewind`: the kept checkpoint to go back to (`seq` of `GET …/{id}/checkpoints`), and optionally a
    JSON merge patch of its variables (RFC 7396) applied in the same write."""

    checkpoint: int = Field(ge=1, le=2**63 - 1)
    variables: dict[str, Storable] | None = None
    reason: str | None = Field(default=None, max_length=1000)


ElementKeyText = Annotated[str, Field(min_length=1, max_length=200)]


class MigrateRequest(_Request):
    """`POST …/{id}/migrate`: the version of the execution's process to move it to, the elements renamed in it
    (`{oldKey: newKey}`; an element kept under its key needs none), and whether only to plan (`dryRun`)."""

    version: int = Field(ge=1, le=2**63 - 1)
    mapping: dict[ElementKeyText, ElementKeyText] = Field(default_factory=dict, max_length=10_000)
    """{old element key: new element key}."""
    dryRun: bool = False
    reason: str | None = Field(default=None, max_length=1000)


class VariablesPatch(RootModel[dict[str, Storable]]):
    """`PATCH …/{id}/variables`: a JSON merge patch (RFC 7396) of the variables: a name set to `null` is removed, an
    object merges into the object it names, anything else replaces the value."""


class _StepRequest(_Request):
    lane: str | None = Field(default=None, min_length=1, max_length=1000)
    """Where the element stands when it stands in several lanes (parallel branches, for-each iterations)."""
    reason: str | None = Field(default=None, max_length=1000)


class ElementRetryRequest(_StepRequest):
    """`POST …/{id}/elements/{elementKey}/retry`: all optional."""


class MoveRequest(_Request):
    """`POST …/{id}/move`: put the lane before `before`, an element of its thread (or of its branch or iteration's
    body); paused or failed execution."""

    lane: str = Field(min_length=1, max_length=1000)
    before: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=1000)


MAX_DURATION_MS = 3_153_600_000_000
"""100 years: the longest timeout, delay or backoff a definition or a policy change may give, so that a due time
stays a 64-bit integer in the snapshot and a date in an answer."""
MAX_ATTEMPTS = 1_000_000
"""The most attempts a retry policy may give a task."""


class RetryPolicyChange(_Request):
    """What changes in a task's retry policy, checked as a definition's is (the same fields and bounds): the fields
    given replace those of the policy in force (changed before, else the definition's); the others stay."""

    maxAttempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    backoffMs: int | None = Field(default=None, ge=0, le=MAX_DURATION_MS)
    backoffMultiplier: float | None = Field(default=None, ge=1.0, le=100.0)
    maxBackoffMs: int | None = Field(default=None, ge=1, le=MAX_DURATION_MS)


class ElementPolicyRequest(_StepRequest):
    """`PATCH …/{id}/elements/{elementKey}`: a pending task's retry policy and/or timeout, for this run of it."""

    # The one rule the fields cannot say: something changes, a retry policy or a timeout that is not null.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["retry"], "properties": {"retry": {"type": "object"}}},
                {"required": ["timeoutMs"], "properties": {"timeoutMs": {"type": "integer"}}},
            ]
        }
    )

    retry: RetryPolicyChange | None = None
    timeoutMs: int | None = Field(default=None, ge=1, le=MAX_DURATION_MS)

    @model_validator(mode="after")
    def _changes_something(self) -> ElementPolicyRequest:
        if self.retry is None and self.timeoutMs is None:
            raise ValueError("give retry or timeoutMs")
        return self


class RunNowRequest(_StepRequest):
    """`POST …/{id}/elements/{elementKey}/run-now`: all optional."""


class SkipRequest(_StepRequest):
    """`POST …/{id}/elements/{elementKey}/skip`: all optional; an `output` given (even null) is stored as if the
    element had run (its node output, and its output variable where it has one)."""

    output: Annotated[Any, WithJsonSchema({"anyOf": [{"$ref": STORABLE_REF}, {"type": "null"}]})] = None


class CompleteRequest(_StepRequest):
    """`POST …/{id}/elements/{elementKey}/complete`: a task completed as if its handler had returned `output`."""

    output: Annotated[Any, WithJsonSchema({"anyOf": [{"$ref": STORABLE_REF}, {"type": "null"}]})] = None


class FailRequest(_StepRequest):
    """`POST …/{id}/elements/{elementKey}/fail`: the element fails with `error` of type `type` (a catch clause for
    that type takes it)."""

    error: str = Field(min_length=1, max_length=1000)
    type: str = Field(default="Error", min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
