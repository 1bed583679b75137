"""A validated definition, ready to interpret: element lookup, element ids, compiled CEL.

`compile_process` checks everything that can be checked before a run on a definition whose shape is valid,
and reports every problem at once (raised as one ValidationFailed); `validation.py` does the same for a
document whose elements may break their schema.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from procengine.api.problems import refusal
from procengine.engine.definitions import (
    CallProcessElement,
    DelayElement,
    Element,
    FailElement,
    ForEachElement,
    IfConditionElement,
    ParallelElement,
    ProcessDefinition,
    SetVariableElement,
    SwitchElement,
    TaskElement,
    ThreadDefinition,
    WaitSignalElement,
    bodies,
    body_writes,
    can_end,
    catch_clauses,
    successors,
    walk,
    writes,
)
from procengine.engine.expressions import Expression, compile_expression
from procengine.engine.graph import GraphNode, ThreadSketch, graph_problems
from procengine.errors import ExpressionError

MAX_NESTING = 3
"""How deep parallel and for-each elements may nest in one another."""


@dataclass(frozen=True, slots=True)
class CompiledThread:
    key: str
    process_thread_id: int
    start: str
    element_keys: tuple[str, ...]

    @property
    def total_nodes(self) -> int:
        return len(self.element_keys)


@dataclass(frozen=True)
class CompiledProcess:
    definition: ProcessDefinition
    threads: tuple[CompiledThread, ...]
    elements: dict[str, Element]
    element_ids: dict[str, int]
    thread_of: dict[str, str]
    expressions: dict[str, Expression] = field(repr=False)

    @property
    def total_nodes(self) -> int:
        return len(self.elements)

    @property
    def handlers(self) -> frozenset[str]:
        """The task handlers the definition calls in the engine (a task with a `queue` calls a worker's)."""
        return frozenset(e.handler for e in self.elements.values() if isinstance(e, TaskElement) and e.queue is None)

    @functools.cached_property
    def variables_written(self) -> frozenset[str]:
        """The variables the definition can write at its top level (a for-each's iterations write only their own
        scope; a parallel's branches merge into it): with the start variables, every name it can ever hold."""
        return frozenset(name for thread in self.definition.threads for e in thread.elements for name in writes(e))

    def thread(self, key: str) -> CompiledThread:
        for thread in self.threads:
            if thread.key == key:
                return thread
        raise KeyError(key)

    def expression(self, source: str) -> Expression:
        return self.expressions[source]


def compile_process(
    definition: ProcessDefinition,
    known_handlers: Collection[str] | None = None,
    known_processes: Mapping[str, Collection[int]] | None = None,
) -> CompiledProcess:
    """Validate the graph and compile its expressions; raise ValidationFailed listing every problem.
    `known_handlers` and `known_processes` (keys of the tenant with their versions): what tasks and call-process
    elements may name (None: not checked, as when a stored version is compiled again)."""
    elements: dict[str, Element] = {}
    element_ids: dict[str, int] = {}
    thread_of: dict[str, str] = {}
    expressions: dict[str, Expression] = {}
    threads: list[CompiledThread] = []
    for thread_index, thread in enumerate(definition.threads):
        everything = walk(thread.elements)  # the elements of parallel branches and for-each bodies too
        for element in everything:
            if element.key not in elements:  # a duplicate is a problem graph_problems lists
                elements[element.key] = element
                element_ids[element.key] = len(element_ids) + 1
                thread_of[element.key] = thread.key
        threads.append(CompiledThread(thread.key, thread_index + 1, thread.start_key, tuple(e.key for e in everything)))

    sketches: list[ThreadSketch] = []
    for index, thread in enumerate(definition.threads):
        outline = sketch(index, thread)
        sketches.append(outline)
        for element in thread.elements:
            sketches.extend(nested_sketches(element, outline.where))
    problems = graph_problems(sketches)
    for element in (element for thread in definition.threads for element in thread.elements):
        problems.extend(fan_out_problems(element))
    # Every element, a duplicate's too: its own problems are listed with the duplicate key.
    for element in (element for thread in definition.threads for element in walk(thread.elements)):
        problems.extend(
            element_problems(element, known_handlers, expressions, callable_processes(definition.key, known_processes))
        )
    problems.extend(attribute_problems(definition.attributes, walk_all(definition)))
    if problems:
        raise refusal(f"process definition {definition.key!r} is not valid", problems)
    return CompiledProcess(definition, tuple(threads), elements, element_ids, thread_of, expressions)


def sketch(index: int, thread: ThreadDefinition) -> ThreadSketch:
    """A valid thread as the graph checks see it."""
    nodes = tuple(GraphNode(e.key, tuple(successors(e)), can_end(e)) for e in thread.elements)
    return ThreadSketch(f"threads.{index} ({thread.key})", thread.key, thread.start_key, nodes)


def nested_sketches(element: Element, where: str, depth: int = 1) -> list[ThreadSketch]:
    """The bodies nested in `element` (at any depth) as the graph checks see them: each is a small thread."""
    found: list[ThreadSketch] = []
    for name, body in bodies(element):
        inner = f"{where} > {element.key}" + ("" if name == "*" else f"[{name}]")
        nodes = tuple(GraphNode(e.key, tuple(successors(e)), can_end(e)) for e in body.elements)
        found.append(ThreadSketch(inner, None, body.start_key, nodes))
        for nested in body.elements:
            found.extend(nested_sketches(nested, inner, depth + 1))
    return found


def fan_out_problems(element: Element, depth: int = 1) -> list[str]:
    """Nesting over MAX_NESTING, and parallel branches that write the same variable (the join would have to pick
    one of their values: that is refused, never decided by whichever branch ended last)."""
    problems: list[str] = []
    if not bodies(element):
        return problems
    if depth > MAX_NESTING:
        return [f"element {element.key!r}: parallel and for-each nest {depth} deep; at most {MAX_NESTING}"]
    if isinstance(element, ParallelElement):
        written: dict[str, str] = {}
        for branch in element.branches:
            for name in sorted(body_writes(branch)):
                if name in written:
                    problems.append(
                        f"element {element.key!r}: branches {written[name]!r} and {branch.key!r} both write {name!r};"
                        " the join merges each branch's variables, so give them different names"
                    )
                written.setdefault(name, branch.key)
    for _, body in bodies(element):
        for nested in body.elements:
            problems.extend(fan_out_problems(nested, depth + 1))
    return problems


def callable_processes(
    own_key: str, known_processes: Mapping[str, Collection[int]] | None
) -> Mapping[str, Collection[int]] | None:
    """What a call-process may name: the tenant's processes, and the process being registered itself."""
    if known_processes is None:
        return None
    return {own_key: (), **known_processes} if own_key not in known_processes else known_processes


def element_problems(
    element: Element,
    known_handlers: Collection[str] | None,
    expressions: dict[str, Expression],
    known_processes: Mapping[str, Collection[int]] | None = None,
) -> list[str]:
    """What is wrong with one element beyond its shape: bad CEL, an unknown handler. Compiled CEL is kept in
    `expressions` (each source once)."""
    problems: list[str] = []
    where = f"element {element.key!r}"
    for source in _sources(element):
        if source in expressions:
            continue
        try:
            expressions[source] = compile_expression(source)
        except ExpressionError as exc:
            problems.append(f"{where}: {exc}")
    for clause in catch_clauses(element):
        if clause.next == element.key:
            problems.append(f"{where}: a catch clause goes back to the element itself (at once, for ever); use retry")
    external = isinstance(element, TaskElement) and element.queue is not None  # a worker has the handler
    if (
        isinstance(element, TaskElement)
        and not external
        and known_handlers is not None
        and element.handler not in known_handlers
    ):
        problems.append(f"{where}: unknown handler {element.handler!r} (known: {', '.join(sorted(known_handlers))})")
    if isinstance(element, CallProcessElement) and known_processes is not None:
        versions = known_processes.get(element.process)
        if versions is None:
            known = ", ".join(sorted(known_processes)) or "none"
            problems.append(f"{where}: calls unknown process {element.process!r} (this tenant has: {known})")
        elif element.version is not None and versions and element.version not in versions:
            problems.append(
                f"{where}: process {element.process!r} has no version {element.version} (it has "
                f"{', '.join(str(v) for v in sorted(versions))})"
            )
    return problems


def _sources(element: Element) -> list[str]:
    if isinstance(element, TaskElement):
        return list(element.input.values())
    if isinstance(element, SetVariableElement):
        return list(element.set.values()) + list(element.attributes.values())
    if isinstance(element, IfConditionElement):
        return [element.condition]
    if isinstance(element, SwitchElement):
        return [case.when for case in element.cases]
    if isinstance(element, FailElement):
        return [element.message]
    if isinstance(element, DelayElement) and element.until is not None:
        return [element.until]
    if isinstance(element, WaitSignalElement) and element.timeoutAt is not None:
        return [element.timeoutAt]
    if isinstance(element, ForEachElement):
        return [element.items] + ([element.result] if element.result is not None else [])
    if isinstance(element, CallProcessElement):
        return list(element.input.values()) + ([element.result] if element.result is not None else [])
    return []


def walk_all(definition: ProcessDefinition) -> list[Element]:
    """Every element of every thread, nested ones included."""
    return [element for thread in definition.threads for element in walk(thread.elements)]


def attribute_problems(declared: Mapping[str, str], elements: list[Element]) -> list[str]:
    """A set-variable that sets an attribute the definition does not declare."""
    known = ", ".join(sorted(declared)) or "none"
    return [
        f"element {element.key!r}: sets attribute {name!r}, which the definition does not declare (declared: {known})"
        for element in elements
        if isinstance(element, SetVariableElement)
        for name in element.attributes
        if name not in declared
    ]
