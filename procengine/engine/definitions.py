"""Process definitions as users write them (JSON or YAML), parsed with pydantic v2.

This module only describes shapes; `validation.py` checks a document element by element, `graph.py`
the graph (missing targets, unreachable elements, cycles without exit), `compiled.py` compiles the CEL.
Numbers are strict: `durationMs: false`, `"1000"` or `1000.0` are refused, never read as 0 or 1000.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, TypeAdapter, model_validator

from procengine.api.task_views import QueueName
from procengine.api.views import MAX_ATTEMPTS, MAX_DURATION_MS
from procengine.engine.attributes import MAX_ATTRIBUTES, AttributeName, AttributeType

ElementType = Literal[
    "task",
    "if-condition",
    "switch",
    "set-variable",
    "delay",
    "wait-signal",
    "parallel",
    "for-each",
    "call-process",
    "fail",
    "end",
]
ELEMENT_TYPES: tuple[ElementType, ...] = get_args(ElementType)
MAX_BRANCHES = 50
"""Branches of one parallel element."""
MAX_CONCURRENCY = 1000
"""The highest maxConcurrency of a for-each."""

Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


Duration = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]
"""Milliseconds of a delay or a backoff: at most 100 years (a due time stays a 64-bit integer and a date)."""
PositiveDuration = Annotated[int, Field(gt=0, le=MAX_DURATION_MS)]


class RetryPolicy(_Model):
    maxAttempts: Annotated[int, Field(gt=0, le=MAX_ATTEMPTS)] = 1
    backoffMs: Duration = 0
    backoffMultiplier: float = Field(default=2.0, ge=1.0, le=100.0)
    maxBackoffMs: PositiveDuration = 3_600_000

    def delay_before(self, attempt: int) -> int:
        """Milliseconds to wait before `attempt` (2 is the first retry)."""
        raw = self.backoffMs * self.backoffMultiplier ** max(attempt - 2, 0)
        return int(min(raw, self.maxBackoffMs))


ErrorName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^(\*|[A-Za-z_][A-Za-z0-9_.]*)$")]


class CatchClause(_Model):
    """A failure of one of these types (after the retries) continues at `next`, with its description in `into`."""

    errors: list[ErrorName] = Field(min_length=1, max_length=50)
    """Error types: a handler's exception class name, Timeout, ExpressionError, LimitExceeded, ..., or * for any."""
    next: Identifier
    into: Identifier | None = None

    def catches(self, error_type: str) -> bool:
        return "*" in self.errors or error_type in self.errors


Catch = Annotated[list[CatchClause], Field(default_factory=list, max_length=20)]

OnExhausted = Literal["pause", "fail"]
"""What an element's failure for good does once no catch clause takes it: `fail` its lane (and the execution), or
`pause` the execution with the element held as failed on its stack (resume retries it). None on an element: the
server's default (`--on-exhausted`, per tenant `--on-exhausted-for`)."""


class _ElementBase(_Model):
    key: Identifier
    next: Identifier | None = None


class TaskElement(_ElementBase):
    type: Literal["task"]
    handler: Annotated[str, Field(min_length=1)]
    queue: QueueName | None = None
    """Run by external workers that fetch it from this queue of the tenant (docs/workers.md), not in the engine:
    the engine need not have the handler."""
    input: dict[str, str] = Field(default_factory=dict)
    output: Identifier | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeoutMs: PositiveDuration | None = None
    catch: Catch
    onExhausted: OnExhausted | None = None


class IfConditionElement(_Model):
    key: Identifier
    type: Literal["if-condition"]
    condition: Annotated[str, Field(min_length=1)]
    then: Identifier | None = None
    else_: Identifier | None = Field(default=None, alias="else")
    catch: Catch


class SwitchCase(_Model):
    when: Annotated[str, Field(min_length=1)]
    next: Identifier


class SwitchElement(_Model):
    """The first case whose `when` is true names the next element; else `default` (none: the thread ends)."""

    key: Identifier
    type: Literal["switch"]
    cases: list[SwitchCase] = Field(min_length=1, max_length=100)
    default: Identifier | None = None
    catch: Catch


class SetVariableElement(_ElementBase):
    type: Literal["set-variable"]
    set: dict[Identifier, str] = Field(default_factory=dict)
    attributes: dict[AttributeName, str] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)
    """Search attributes the definition declares, each a CEL expression (evaluated like `set`'s)."""
    catch: Catch

    @model_validator(mode="after")
    def _sets_something(self) -> SetVariableElement:
        if not self.set and not self.attributes:
            raise ValueError("a set-variable sets variables (set) or attributes (attributes), at least one")
        return self


class DelayElement(_ElementBase):
    type: Literal["delay"]
    durationMs: Duration | None = None
    until: Annotated[str, Field(min_length=1)] | None = None
    """CEL: a timestamp, an RFC 3339 string or a duration from when the delay starts."""
    catch: Catch

    @model_validator(mode="after")
    def _one_of(self) -> DelayElement:
        if (self.durationMs is None) == (self.until is None):
            raise ValueError("a delay takes durationMs or until (one of them)")
        return self


class WaitSignalElement(_ElementBase):
    type: Literal["wait-signal"]
    signal: Identifier
    into: Identifier | None = None
    timeoutMs: PositiveDuration | None = None
    """No signal within this (paused time not counted): go on at `onTimeout`, or without one fail (Timeout)."""
    timeoutAt: Annotated[str, Field(min_length=1)] | None = None
    """The same, by a CEL time (a timestamp, an RFC 3339 string, or a duration from when the wait starts)."""
    onTimeout: Identifier | None = None
    catch: Catch

    @model_validator(mode="after")
    def _timeout_for_on_timeout(self) -> WaitSignalElement:
        if self.timeoutMs is not None and self.timeoutAt is not None:
            raise ValueError("a wait takes timeoutMs or timeoutAt, not both")
        if self.onTimeout is not None and self.timeoutMs is None and self.timeoutAt is None:
            raise ValueError("onTimeout needs timeoutMs or timeoutAt")
        return self


class Body(_Model):
    """A small list of elements with its own start, run as a lane of its own: a for-each's body."""

    start: Identifier | None = None
    elements: list[Element] = Field(min_length=1, max_length=500)

    @property
    def start_key(self) -> str:
        return self.start if self.start is not None else self.elements[0].key


class Branch(Body):
    """One branch of a parallel element."""

    key: Identifier


class ParallelElement(_ElementBase):
    """Runs every branch at once and goes on at `next` when all of them have ended. What a branch writes is its
    own until the join; then each branch's variables are merged into the thread's (two branches may not write
    the same name: refused at registration) and `output`, if named, gets them per branch."""

    type: Literal["parallel"]
    branches: list[Branch] = Field(min_length=1, max_length=MAX_BRANCHES)
    output: Identifier | None = None
    catch: Catch


class ForEachElement(_ElementBase):
    """Runs `body` once per item of the CEL list `items` (at most `maxConcurrency` at a time), the item in the
    variable `as`; each iteration's variables are its own, and its `result` (CEL over them; by default the
    variables it wrote) goes into `output`, in the order of the items."""

    type: Literal["for-each"]
    items: Annotated[str, Field(min_length=1)]
    as_: Identifier = Field(default="item", alias="as")
    maxConcurrency: PositiveInt = Field(default=10, le=MAX_CONCURRENCY)
    body: Body
    result: Annotated[str, Field(min_length=1)] | None = None
    output: Identifier | None = None
    catch: Catch


class CallProcessElement(_ElementBase):
    """Starts an execution of another process of the tenant (its child), waits for it to end, and puts its
    variables (or `result`, CEL over them) into `output`. A child that fails or is cancelled fails the element
    with type ChildFailed; pause, resume and cancel of the parent reach the child."""

    type: Literal["call-process"]
    process: Identifier
    """The key of the process to run."""
    version: PositiveInt | None = None
    """A pinned version; without it the latest version when the child starts."""
    input: dict[Identifier, str] = Field(default_factory=dict)
    """The child's start variables, each a CEL expression over the variables here."""
    result: Annotated[str, Field(min_length=1)] | None = None
    output: Identifier | None = None
    catch: Catch
    onExhausted: OnExhausted | None = None


class FailElement(_Model):
    """Ends the execution as failed, with the CEL `message` (evaluated over the variables) as its error."""

    key: Identifier
    type: Literal["fail"]
    message: Annotated[str, Field(min_length=1)]


class EndElement(_Model):
    key: Identifier
    type: Literal["end"]


Element = Annotated[
    TaskElement
    | IfConditionElement
    | SwitchElement
    | SetVariableElement
    | DelayElement
    | WaitSignalElement
    | ParallelElement
    | ForEachElement
    | CallProcessElement
    | FailElement
    | EndElement,
    Field(discriminator="type"),
]
Body.model_rebuild()
Branch.model_rebuild()
ParallelElement.model_rebuild()
ForEachElement.model_rebuild()

FanOut = ParallelElement | ForEachElement


class _ThreadFields(_Model):
    key: Identifier
    start: Identifier | None = None


class ThreadDefinition(_ThreadFields):
    elements: list[Element] = Field(min_length=1)

    @property
    def start_key(self) -> str:
        return self.start if self.start is not None else self.elements[0].key


class ThreadOutline(_ThreadFields):
    """A thread whose elements are checked one by one, apart from it (see `validation.py`)."""

    elements: list[Any] = Field(min_length=1)


class _ProcessFields(_Model):
    key: Identifier
    name: str = ""
    attributes: dict[AttributeName, AttributeType] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)
    """Search attributes, name -> type (keyword, text, number, bool, time): set by a start and by `set-variable`
    elements, indexed, and filterable on the execution list."""


class ProcessOutline(_ProcessFields):
    """A definition with its elements left unchecked: the frame `validation.py` checks first."""

    threads: list[ThreadOutline] = Field(min_length=1)


class ProcessDefinition(_ProcessFields):
    threads: list[ThreadDefinition] = Field(min_length=1)

    def canonical(self) -> dict[str, Any]:
        """The body with defaults filled in: two definitions are the same version iff this is equal. Fields added
        to an element type after its first release are left out while they hold their default, so a definition
        registered before they existed is the same version now."""
        body = self.model_dump(mode="json", by_alias=True)
        if not body["attributes"]:
            del body["attributes"]
        for thread in body["threads"]:
            _strip_added(thread["elements"])
        return body


def _strip_added(elements: list[dict[str, Any]]) -> None:
    for element in elements:
        for name in ("catch", *_ADDED_FIELDS.get(element["type"], ())):
            if name in element and element[name] in (None, [], {}):
                del element[name]
        for body in bodies_of_doc(element):
            _strip_added(body["elements"])


def bodies_of_doc(element: dict[str, Any]) -> list[dict[str, Any]]:
    """The nested bodies of an element as a document (a parallel's branches, a for-each's body)."""
    if element.get("type") == "parallel":
        return list(element["branches"])
    if element.get("type") == "for-each":
        return [element["body"]]
    return []


_ADDED_FIELDS: dict[str, tuple[str, ...]] = {
    "wait-signal": ("timeoutMs", "onTimeout", "timeoutAt"),
    "delay": ("until",),
    "task": ("onExhausted", "queue"),
    "call-process": ("onExhausted",),
    "set-variable": ("attributes",),
}
"""Per element type, the optional fields it gained after its first release (catch: every type that has it)."""


ELEMENT: TypeAdapter[Element] = TypeAdapter(Element)
"""Validates one element on its own."""


def catch_clauses(element: Element) -> list[CatchClause]:
    clauses: list[CatchClause] = getattr(element, "catch", [])
    return clauses


def bodies(element: Element) -> list[tuple[str, Body]]:
    """The nested bodies of an element, each with the name of its lanes: a parallel's branches by key, a
    for-each's body as "*" (its lanes are named by item index)."""
    if isinstance(element, ParallelElement):
        return [(branch.key, branch) for branch in element.branches]
    if isinstance(element, ForEachElement):
        return [("*", element.body)]
    return []


def walk(elements: list[Element]) -> list[Element]:
    """Every element of a list and of the bodies nested in it, depth first, in document order."""
    found: list[Element] = []
    for element in elements:
        found.append(element)
        for _, body in bodies(element):
            found.extend(walk(body.elements))
    return found


def writes(element: Element) -> set[str]:
    """The variables an element can write in its lane (a parallel's: its branches' too, merged at the join)."""
    names: set[str] = {clause.into for clause in catch_clauses(element) if clause.into is not None}
    if isinstance(element, SetVariableElement):
        names.update(element.set)
    if isinstance(element, WaitSignalElement) and element.into is not None:
        names.add(element.into)
    if isinstance(element, TaskElement | ParallelElement | ForEachElement | CallProcessElement) and element.output:
        names.add(element.output)
    if isinstance(element, ParallelElement):
        for branch in element.branches:
            names.update(body_writes(branch))
    return names


def body_writes(body: Body) -> set[str]:
    return {name for element in body.elements for name in writes(element)}


def successors(element: Element) -> list[str]:
    """Keys an element can hand control to (a missing `next` ends the thread), its catch targets included."""
    caught = [clause.next for clause in catch_clauses(element)]
    return list(dict.fromkeys(_flow(element) + caught))


def _flow(element: Element) -> list[str]:
    """Where the element hands control when it does not fail (a key may come twice)."""
    if isinstance(element, IfConditionElement):
        return [k for k in (element.then, element.else_) if k is not None]
    if isinstance(element, SwitchElement):
        return [case.next for case in element.cases] + ([element.default] if element.default else [])
    if isinstance(element, EndElement | FailElement):
        return []
    if isinstance(element, WaitSignalElement):
        return [k for k in (element.next, element.onTimeout) if k is not None]
    return [element.next] if element.next is not None else []


def can_end(element: Element) -> bool:
    """The thread may end at this element: it has no `next`, an if-condition with a branch left out, a switch
    without a default, or it fails the execution."""
    if isinstance(element, IfConditionElement):
        return element.then is None or element.else_ is None
    if isinstance(element, SwitchElement):
        return element.default is None
    if isinstance(element, WaitSignalElement):
        return element.next is None
    return not _flow(element)
