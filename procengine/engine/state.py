"""The execution's durable state: the stack (pending elements) and the memory (variables, outputs).

`to_stack_doc` / `to_memory_doc` give the seed's shapes (plus a few fields of ours, such as
`thread_key` and frozen timers); `from_*_doc` read them back and refuse anything malformed with
`StateCorrupted`, so that resume can validate a snapshot before it changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procengine.errors import StateCorrupted


@dataclass(slots=True)
class StackEntry:
    """One pending element: the next element of one thread."""

    element_id: int
    element_key: str
    element_type: str
    execution_order: int
    thread_key: str
    attempt: int = 1
    due_at_ms: int | None = None
    """A running timer (delay, or the backoff before a retry), as epoch milliseconds."""
    remaining_ms: int | None = None
    """A timer frozen by pause: what was left of it."""
    started_at_ms: int | None = None
    """When the element started (set while it is in flight or waiting)."""
    rerun: bool = False
    """A start of this attempt was cut short (pause past its grace, a crash, a stopped actor): the next start of
    the task is a re-run, and its log entry says so."""
    path: str = ""
    """The lane the element runs in: the thread's key, or a branch or iteration of a parallel or for-each below
    it, such as `main/ship[3]` or `main/checks[credit]/ship[0]` (see `lanes.py`). Empty: the thread's key."""
    fanout: FanOutProgress | None = None
    """A parallel or for-each whose lanes are running: how many there are, have started and have ended."""
    child_id: int | None = None
    """A call-process whose child execution was started: its id."""
    held: dict[str, Any] | None = None
    """A failure held on the stack instead of failing the execution (`onExhausted: pause`): {error, type, atMs}.
    The execution is paused; resume retries the element, a step control (skip, complete, fail) settles it."""
    policy: dict[str, Any] | None = None
    """A task's policy changed for this run of it (`PATCH …/elements/{key}`): {retry?: a retry policy, timeoutMs?},
    read instead of the definition's (`engine/policy.py`)."""
    at_breakpoint: bool = False
    """The execution paused at a breakpoint before this element (`engine/breakpoints.py`): when it goes on, the
    element runs (the breakpoint it stopped at is passed) instead of stopping there again."""

    def __post_init__(self) -> None:
        if not self.path:
            self.path = self.thread_key

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "element_id": self.element_id,
            "element_key": self.element_key,
            "element_type": self.element_type,
            "execution_order": self.execution_order,
            "thread_key": self.thread_key,
            "path": self.path,
            "attempt": self.attempt,
        }
        if self.fanout is not None:
            doc["branches"] = self.fanout.to_doc()
        if self.child_id is not None:
            doc["child_execution_id"] = self.child_id
        if self.due_at_ms is not None:
            doc["due_at_ms"] = self.due_at_ms
        if self.remaining_ms is not None:
            doc["remaining_ms"] = self.remaining_ms
        if self.started_at_ms is not None:
            doc["started_at_ms"] = self.started_at_ms
        if self.rerun:
            doc["rerun"] = True
        if self.held is not None:
            doc["held"] = self.held
        if self.policy is not None:
            doc["policy"] = self.policy
        if self.at_breakpoint:
            doc["at_breakpoint"] = True
        return doc

    @classmethod
    def from_doc(cls, doc: Any) -> StackEntry:
        if not isinstance(doc, dict):
            raise StateCorrupted("stack entry is not a map")
        try:
            return cls(
                element_id=_int(doc["element_id"]),
                element_key=_str(doc["element_key"]),
                element_type=_str(doc["element_type"]),
                execution_order=_int(doc["execution_order"]),
                thread_key=_str(doc["thread_key"]),
                attempt=_int(doc.get("attempt", 1)),
                due_at_ms=_opt_int(doc.get("due_at_ms")),
                remaining_ms=_opt_int(doc.get("remaining_ms")),
                started_at_ms=_opt_int(doc.get("started_at_ms")),
                rerun=doc.get("rerun") is True,
                path=_str(doc.get("path", "")),
                fanout=None if doc.get("branches") is None else FanOutProgress.from_doc(doc["branches"]),
                child_id=_opt_int(doc.get("child_execution_id")),
                held=_opt_map(doc.get("held"), "the held failure of a stack entry"),
                policy=_opt_map(doc.get("policy"), "the policy of a stack entry"),
                at_breakpoint=doc.get("at_breakpoint") is True,
            )
        except KeyError as exc:
            raise StateCorrupted(f"stack entry lacks {exc.args[0]!r}") from None


@dataclass(slots=True)
class FanOutProgress:
    """The lanes of one parallel or for-each: `total` of them, `started` so far (a for-each starts its items in
    order, at most maxConcurrency at a time), `ended` so far; `failure` once one of them failed for good."""

    total: int
    started: int = 0
    ended: int = 0
    failure: dict[str, Any] | None = None
    """{error, type, path, element}: the failure the fan-out element fails with (its catch may take it)."""
    parked: list[StackEntry] | None = None
    """With `failure`: the entries its lanes had on the stack when one of them failed for good (the failed one, at
    `failure.path`, and the siblings it stopped, their timers frozen), kept so that a retry of the execution puts
    them back and goes on from there (the lanes that had ended keep their results and do not run again). Their
    variables and nested fan-outs stay in the memory (`scopes`, `fanouts`) meanwhile; a catch that takes the
    fan-out's failure drops them all."""

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"total": self.total, "started": self.started, "ended": self.ended}
        if self.failure is not None:
            doc["failure"] = self.failure
        if self.parked is not None:
            doc["parked"] = [entry.to_doc() for entry in self.parked]
        return doc

    @classmethod
    def from_doc(cls, doc: Any) -> FanOutProgress:
        if not isinstance(doc, dict):
            raise StateCorrupted("the branches of a stack entry are not a map")
        failure = doc.get("failure")
        if failure is not None and not isinstance(failure, dict):
            raise StateCorrupted("the failure of a stack entry's branches is not a map")
        parked = doc.get("parked")
        if parked is not None and not isinstance(parked, list):
            raise StateCorrupted("the parked lanes of a stack entry's branches are not a list")
        try:
            return cls(
                _int(doc["total"]),
                _int(doc.get("started", 0)),
                _int(doc.get("ended", 0)),
                failure,
                None if parked is None else [StackEntry.from_doc(entry) for entry in parked],
            )
        except KeyError as exc:
            raise StateCorrupted(f"the branches of a stack entry lack {exc.args[0]!r}") from None


@dataclass(slots=True)
class Memory:
    variables: dict[str, Any] = field(default_factory=dict)
    node_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    signals: dict[str, list[Any]] = field(default_factory=dict)
    """Signals that arrived before a wait consumed them, oldest first."""
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per branch or iteration lane, the variables it wrote (and a for-each's item): its own until the join."""
    fanouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per lane waiting at a parallel or for-each: {"items": the for-each's list, "results": what the ended lanes
    gave, by branch key or in item order}."""
    attributes: dict[str, list[Any]] = field(default_factory=dict)
    """The execution's search attributes, {name: [type, value]} (`engine/attributes.py`): in the memory snapshot so
    that a rewind or a fork takes them back with the variables; the execution hash holds a copy for the indexes."""


@dataclass(slots=True)
class ThreadProgress:
    thread_key: str
    thread_execution_id: int
    process_thread_id: int
    total_nodes: int
    completed_nodes: int = 0
    failed_nodes: int = 0
    status: str = "running"

    def to_doc(self) -> dict[str, Any]:
        return {
            "threadExecutionID": self.thread_execution_id,
            "processThreadID": self.process_thread_id,
            "threadKey": self.thread_key,
            "totalNodes": self.total_nodes,
            "completedNodes": self.completed_nodes,
            "failedNodes": self.failed_nodes,
            "status": self.status,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> ThreadProgress:
        if not isinstance(doc, dict):
            raise StateCorrupted("thread record is not a map")
        try:
            return cls(
                thread_key=_str(doc["threadKey"]),
                thread_execution_id=_int(doc["threadExecutionID"]),
                process_thread_id=_int(doc["processThreadID"]),
                total_nodes=_int(doc["totalNodes"]),
                completed_nodes=_int(doc.get("completedNodes", 0)),
                failed_nodes=_int(doc.get("failedNodes", 0)),
                status=_str(doc.get("status", "running")),
            )
        except KeyError as exc:
            raise StateCorrupted(f"thread record lacks {exc.args[0]!r}") from None


@dataclass(slots=True)
class ExecutionState:
    stack: list[StackEntry]
    memory: Memory
    threads: dict[str, ThreadProgress]
    next_order: int = 1
    paused_at_node: int | None = None
    memory_bytes: int = 0
    """The size of the memory snapshot as last encoded or read (not stored): what the memory limit is checked
    against."""

    @property
    def completed_nodes(self) -> int:
        return sum(t.completed_nodes for t in self.threads.values())

    @property
    def failed_nodes(self) -> int:
        return sum(t.failed_nodes for t in self.threads.values())

    def entry(self, lane: str) -> StackEntry | None:
        """The pending element of a lane (a thread's key, or the path of a branch or iteration)."""
        for entry in self.stack:
            if entry.path == lane:
                return entry
        return None

    def to_stack_doc(self, saved_at: str) -> dict[str, Any]:
        return {
            "execution_stack": [entry.to_doc() for entry in self.stack],
            "paused_at_node": self.paused_at_node,
            "saved_at": saved_at,
            "stack_depth": len(self.stack),
            "next_order": self.next_order,
        }

    def to_memory_doc(self, saved_at: str) -> dict[str, Any]:
        doc = {
            "variables": self.memory.variables,
            "node_outputs": self.memory.node_outputs,
            "saved_at": saved_at,
            "variable_count": len(self.memory.variables),
            "signals": self.memory.signals,
        }
        if self.memory.scopes:
            doc["scopes"] = self.memory.scopes
        if self.memory.fanouts:
            doc["fanouts"] = self.memory.fanouts
        if self.memory.attributes:
            doc["attributes"] = self.memory.attributes
        return doc

    def to_stored_memory_doc(self, saved_at: str) -> dict[str, Any]:
        """`to_memory_doc` as it is stored: a node output whose `data` is a thread variable's value (the same
        object: a task's, a call's or a wait's `output`/`into` stores one value in both) names that variable in
        `dataFrom` instead of holding a second copy. `expand_memory_doc` gives the seed's shape back."""
        doc = self.to_memory_doc(saved_at)
        variables = self.memory.variables
        shared = {id(value): name for name, value in variables.items() if _worth_sharing(value)}
        if not shared:
            return doc
        outputs: dict[str, Any] = {}
        for key, output in self.memory.node_outputs.items():
            data = output.get("data") if isinstance(output, dict) else None
            name = shared.get(id(data)) if data is not None else None
            if name is not None and variables[name] is data:
                outputs[key] = {**{k: v for k, v in output.items() if k != "data"}, DATA_FROM: name}
            else:
                outputs[key] = output
        doc["node_outputs"] = outputs
        return doc


DATA_FROM = "dataFrom"
"""A stored node output's field: its `data` is the value of this thread variable (stored once, in `variables`)."""
_SHARED_MIN = 32
"""Values smaller than this (encoded about as small as a reference to them) are stored twice rather than shared."""


def _worth_sharing(value: Any) -> bool:
    if isinstance(value, str | bytes):
        return len(value) >= _SHARED_MIN
    return isinstance(value, dict | list) and len(value) > 0


def expand_memory_doc(doc: Any) -> Any:
    """The stored memory document in the seed's shape: every node output with `dataFrom` gets its `data` back (the
    variable's value itself, not a copy: stored once, it is held once in memory too). Anything else is left as it
    is: a document written before `dataFrom` existed, or one `state_from_docs` refuses."""
    if not isinstance(doc, dict):
        return doc
    variables, outputs = doc.get("variables"), doc.get("node_outputs")
    if not isinstance(variables, dict) or not isinstance(outputs, dict):
        return doc
    if not any(isinstance(output, dict) and DATA_FROM in output for output in outputs.values()):
        return doc
    expanded: dict[Any, Any] = {}
    for key, output in outputs.items():
        name = output.get(DATA_FROM) if isinstance(output, dict) else None
        if isinstance(name, str) and name in variables:
            output = {**{k: v for k, v in output.items() if k != DATA_FROM}, "data": variables[name]}
        expanded[key] = output
    return {**doc, "node_outputs": expanded}


def state_from_docs(stack_doc: Any, memory_doc: Any, threads: dict[str, ThreadProgress]) -> ExecutionState:
    """Rebuild the state from the stored documents; StateCorrupted if either is malformed."""
    if not isinstance(stack_doc, dict) or not isinstance(stack_doc.get("execution_stack"), list):
        raise StateCorrupted("stack snapshot is not in the expected shape")
    if not isinstance(memory_doc, dict):
        raise StateCorrupted("memory snapshot is not a map")
    memory_doc = expand_memory_doc(memory_doc)
    variables = memory_doc.get("variables")
    outputs = memory_doc.get("node_outputs", {})
    signals = memory_doc.get("signals", {})
    scopes = memory_doc.get("scopes", {})
    fanouts = memory_doc.get("fanouts", {})
    attributes = memory_doc.get("attributes", {})
    if not (
        isinstance(variables, dict)
        and isinstance(outputs, dict)
        and isinstance(signals, dict)
        and isinstance(scopes, dict)
        and isinstance(fanouts, dict)
        and isinstance(attributes, dict)
    ):
        raise StateCorrupted("memory snapshot is not in the expected shape")
    if not all(isinstance(v, dict) for v in (*scopes.values(), *fanouts.values())):
        raise StateCorrupted("memory snapshot has malformed branch variables")
    if not all(isinstance(name, str) for name in variables):
        # msgpack maps may have any keys; CEL refuses a context whose names are not strings
        raise StateCorrupted("memory snapshot has variable names that are not strings")
    if not all(isinstance(v, list) and len(v) == 2 for v in attributes.values()):
        raise StateCorrupted("memory snapshot has malformed attributes")
    if not all(isinstance(v, list) for v in signals.values()):
        raise StateCorrupted("memory snapshot has malformed buffered signals")
    if any(isinstance(output, dict) and DATA_FROM in output for output in outputs.values()):
        raise StateCorrupted(f"memory snapshot has a node output whose {DATA_FROM!r} names no variable")
    stack = [StackEntry.from_doc(doc) for doc in stack_doc["execution_stack"]]
    unknown = {entry.thread_key for entry in stack} - set(threads)
    if unknown:
        raise StateCorrupted(f"stack names unknown threads: {sorted(unknown)}")
    for entry in stack:
        if entry.path != entry.thread_key and not entry.path.startswith(entry.thread_key + "/"):
            raise StateCorrupted(f"stack entry of lane {entry.path!r} is not in thread {entry.thread_key!r}")
    if len({entry.path for entry in stack}) != len(stack):
        raise StateCorrupted("the stack has two entries for one lane")
    return ExecutionState(
        stack=stack,
        memory=Memory(
            variables=variables,
            node_outputs=outputs,
            signals=signals,
            scopes=scopes,
            fanouts=fanouts,
            attributes=attributes,
        ),
        threads=threads,
        next_order=_int(stack_doc.get("next_order", max((e.execution_order for e in stack), default=0) + 1)),
        paused_at_node=_opt_int(stack_doc.get("paused_at_node")),
    )


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateCorrupted(f"expected an integer, found {type(value).__name__}")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _opt_map(value: Any, what: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise StateCorrupted(f"{what} is not a map")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise StateCorrupted(f"expected a string, found {type(value).__name__}")
    return value
