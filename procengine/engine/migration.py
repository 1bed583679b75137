"""Migration of an execution to another version of its process (issue 23, point 3): the plan and its problems,
and the plan applied to the state. Pure: no I/O (the actor reads and writes, `actors/migrate.py`).

Every stack entry (each lane: a thread, a branch of a parallel, an iteration of a for-each; and the lanes a failed
fan-out parked for its retry) gets a target element in the new version: the element of the same key, or the one
`mapping` names. A target is compatible when it is of the same type, stands where the entry's lane runs (the same
thread, the same branch of the same parallel, the body of the same for-each), and keeps what the entry holds:

- a wait-signal waits for the same signal (a buffered signal is still consumed by it; its timer is kept);
- a delay keeps its timer as it stands (its due time, or what a pause left of it), whatever the new duration;
- a call-process whose child was started calls the same process (the child stays attached);
- a parallel or for-each whose lanes are under way keeps its key (their paths name it), and a parallel its
  branches (the same keys);
- every variable its expressions read (those still to be evaluated) is in the lane's memory.

Every problem is listed, never only the first; a plan with none can be applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from procengine.engine import lanes
from procengine.engine.compiled import CompiledProcess
from procengine.engine.definitions import (
    CallProcessElement,
    DelayElement,
    Element,
    FailElement,
    ForEachElement,
    IfConditionElement,
    ParallelElement,
    SetVariableElement,
    SwitchElement,
    TaskElement,
    WaitSignalElement,
    bodies,
)
from procengine.engine.expressions import referenced_names
from procengine.engine.state import ExecutionState, StackEntry

__all__ = ["MigrationPlan", "PlanStep", "apply_plan", "plan_migration"]

Place = tuple[str, str | None, str | None]
"""Where an element stands: (thread, the parallel or for-each whose body holds it, the branch key or "*" for a
for-each's body); (thread, None, None) at the top of a thread."""

_CEL_WORDS = frozenset({"true", "false", "null", "in", "has", "dyn", "type"})
_MACRO_VARIABLE = re.compile(r"\.\s*(?:map|filter|all|exists|exists_one)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One stack entry: its lane, its element in the old version and the one it takes in the new."""

    lane: str
    source: str
    target: str
    type: str
    parked: bool = False
    """An entry a failed parallel or for-each parked for its retry (not on the stack itself)."""

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"lane": self.lane, "from": self.source, "to": self.target, "type": self.type}
        if self.parked:
            doc["parked"] = True
        return doc


@dataclass(slots=True)
class MigrationPlan:
    steps: list[PlanStep] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    breakpoints: dict[str, str] = field(default_factory=dict)
    """The breakpoints' elements renamed by the mapping (old key -> new key)."""

    def to_docs(self) -> list[dict[str, Any]]:
        return [step.to_doc() for step in self.steps]


def plan_migration(
    state: ExecutionState,
    source: CompiledProcess,
    target: CompiledProcess,
    mapping: Mapping[str, str] | None = None,
    breakpoints: tuple[str, ...] = (),
) -> MigrationPlan:
    """The plan that moves `state` (of `source`) to `target`, with every problem found (none: it can be applied).
    `mapping`: old element key -> new key, for those not kept under the same key; `breakpoints`: the elements the
    execution pauses before, which must exist in the target too."""
    mapping = dict(mapping or {})
    plan = MigrationPlan()
    problems = plan.problems
    version = _version_name(target)
    for old, new in sorted(mapping.items()):
        if old not in source.elements:
            problems.append(f"mapping: {old!r} names no element of {_version_name(source)}")
        if new not in target.elements:
            problems.append(f"mapping: {old!r} -> {new!r}: {version} has no element {new!r}")
    old_threads, new_threads = [t.key for t in source.threads], {t.key for t in target.threads}
    for key in old_threads:
        if key not in new_threads:
            problems.append(f"thread {key!r}: {version} has no thread {key!r}")
    for key in sorted(new_threads - set(old_threads)):
        problems.append(f"thread {key!r} of {version} is not in {_version_name(source)}: it would never start")
    places = _places(target)
    for entry, parked in _entries(state):
        to = mapping.get(entry.element_key, entry.element_key)
        plan.steps.append(PlanStep(entry.path, entry.element_key, to, entry.element_type, parked))
        problems.extend(_entry_problems(state, entry, to, source, target, places, mapped=entry.element_key in mapping))
    for name in breakpoints:
        moved = mapping.get(name, name)
        if moved not in target.elements:
            problems.append(f"breakpoint before {name!r}: {version} has no element {moved!r} (change the breakpoints)")
        elif moved != name:
            plan.breakpoints[name] = moved
    return plan


def apply_plan(state: ExecutionState, target: CompiledProcess, plan: MigrationPlan) -> None:
    """Rewrite `state` to `target` as `plan` says (a plan without problems): each entry names its new element (key
    and id; its attempts, timers, child and held failure kept), a renamed element's latest output is found under
    its new key too, and each thread record counts the new version's elements."""
    assert not plan.problems, "a plan with problems is never applied"
    targets = {(step.lane, step.parked): step.target for step in plan.steps}
    outputs = state.memory.node_outputs
    for entry, parked in _entries(state):
        to = targets[(entry.path, parked)]
        if to != entry.element_key and entry.element_key in outputs and to not in outputs:
            outputs[to] = outputs[entry.element_key]
        entry.element_key = to
        entry.element_id = target.element_ids[to]
    for thread in target.threads:
        progress = state.threads[thread.key]
        progress.total_nodes = thread.total_nodes
        progress.process_thread_id = thread.process_thread_id
    if state.paused_at_node is not None and state.stack:
        state.paused_at_node = state.stack[0].element_id


def _version_name(process: CompiledProcess) -> str:
    return f"process {process.definition.key!r}"


def _entries(state: ExecutionState) -> Iterator[tuple[StackEntry, bool]]:
    """Every stack entry, and those parked by a failed fan-out (at any depth), each with whether it is parked."""

    def parked(entry: StackEntry) -> Iterator[tuple[StackEntry, bool]]:
        if entry.fanout is not None and entry.fanout.parked:
            for inner in entry.fanout.parked:
                yield inner, True
                yield from parked(inner)

    for entry in state.stack:
        yield entry, False
        yield from parked(entry)


def _places(process: CompiledProcess) -> dict[str, Place]:
    found: dict[str, Place] = {}

    def visit(thread: str, elements: list[Element], where: tuple[str | None, str | None]) -> None:
        for element in elements:
            found.setdefault(element.key, (thread, *where))
            for name, body in bodies(element):
                visit(thread, body.elements, (element.key, name))

    for thread in process.definition.threads:
        visit(thread.key, thread.elements, (None, None))
    return found


def _lane_place(lane: str, source: CompiledProcess) -> Place:
    """Where the elements of `lane` stand: the top of its thread, or the body its branch or iteration runs."""
    if not lanes.is_branch(lane):
        return (lane, None, None)
    fan_out = lane.rsplit("/", 1)[1].split("[", 1)[0]
    name = "*" if isinstance(source.elements.get(fan_out), ForEachElement) else lanes.name(lane)
    return (lanes.thread(lane), fan_out, name)


def _describe(place: Place) -> str:
    thread, fan_out, name = place
    if fan_out is None:
        return f"at the top of thread {thread!r}"
    if name == "*":
        return f"in the body of for-each {fan_out!r}"
    return f"in branch {name!r} of parallel {fan_out!r}"


def _entry_problems(
    state: ExecutionState,
    entry: StackEntry,
    to: str,
    source: CompiledProcess,
    target: CompiledProcess,
    places: dict[str, Place],
    *,
    mapped: bool,
) -> list[str]:
    where = f"lane {entry.path!r}: {entry.element_type} {entry.element_key!r}"
    version = _version_name(target)
    new = target.elements.get(to)
    if new is None:
        if mapped:  # said once, for the mapping
            return []
        return [f"{where}: {version} has no element {to!r}; map it to one (mapping: {{{entry.element_key!r}: ...}})"]
    if new.type != entry.element_type:
        return [f"{where}: {to!r} is a {new.type} in {version}; only an element of the same type can take its place"]
    problems: list[str] = []
    expected = _lane_place(entry.path, source)
    if places.get(to) != expected:
        problems.append(f"{where}: {to!r} must stand {_describe(expected)} in {version}")
    old = source.elements.get(entry.element_key)
    if isinstance(old, WaitSignalElement) and isinstance(new, WaitSignalElement) and old.signal != new.signal:
        problems.append(
            f"{where}: {to!r} waits for signal {new.signal!r}, not {old.signal!r} (the signal it waits for stays)"
        )
    if (
        entry.child_id is not None
        and isinstance(old, CallProcessElement)
        and isinstance(new, CallProcessElement)
        and old.process != new.process
    ):
        problems.append(
            f"{where}: its child execution {entry.child_id} runs process {old.process!r}; {to!r} calls "
            f"{new.process!r} (the child stays attached only to a call of the same process)"
        )
    if entry.fanout is not None and to != entry.element_key:
        problems.append(f"{where}: its lanes are under way and their paths name it; it cannot be renamed to {to!r}")
    if entry.fanout is not None and isinstance(old, ParallelElement) and isinstance(new, ParallelElement):
        before, after = sorted(b.key for b in old.branches), sorted(b.key for b in new.branches)
        if before != after:
            problems.append(f"{where}: its branches {before} are under way; {to!r} has branches {after} in {version}")
    seen = _visible(state, entry.path)
    for name in sorted(_reads(new, entry)):
        if name not in seen and not any(held.startswith(name + ".") for held in seen):
            problems.append(f"{where}: {to!r} reads variable {name!r}, which the execution does not hold")
    return problems


def _visible(state: ExecutionState, lane: str) -> dict[str, Any]:
    """The variables a lane's elements see (as `Interpreter.variables`)."""
    if not lanes.is_branch(lane):
        return state.memory.variables
    seen = dict(state.memory.variables)
    for enclosing in lanes.ancestry(lane):
        seen.update(state.memory.scopes.get(enclosing, {}))
    return seen


def _reads(element: Element, entry: StackEntry) -> set[str]:
    """The variables the expressions `element` has still to evaluate for `entry` read: those of its own, not those
    evaluated already (a started timer's, a started child's input, a fan-out's items once its lanes run) nor those
    over other variables (a for-each's result, over an iteration's; a call's result, over its child's)."""
    sources: list[str] = []
    timer_started = entry.due_at_ms is not None or entry.remaining_ms is not None or entry.started_at_ms is not None
    if isinstance(element, TaskElement):
        sources += element.input.values()
    elif isinstance(element, SetVariableElement):
        sources += element.set.values()
    elif isinstance(element, IfConditionElement):
        sources.append(element.condition)
    elif isinstance(element, SwitchElement):
        sources += [case.when for case in element.cases]
    elif isinstance(element, FailElement):
        sources.append(element.message)
    elif isinstance(element, DelayElement) and element.until is not None and not timer_started:
        sources.append(element.until)
    elif isinstance(element, WaitSignalElement) and element.timeoutAt is not None and not timer_started:
        sources.append(element.timeoutAt)
    elif isinstance(element, ForEachElement) and entry.fanout is None:
        sources.append(element.items)
    elif isinstance(element, CallProcessElement) and entry.child_id is None:
        sources += element.input.values()
    names: set[str] = set()
    for source in sources:
        names |= variables_read(source)
    return names


def variables_read(source: str) -> set[str]:
    """The variables a CEL source reads: its identifiers but for functions, macro variables and CEL's own words
    (none known for a source with backquoted names)."""
    found = referenced_names(source)
    if found is None:
        return set()
    bound = set(_MACRO_VARIABLE.findall(source))
    called = {name for name in found if re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", source)}
    return {name for name in found if name not in bound and name not in called and name not in _CEL_WORDS}
