"""A validated definition, ready to interpret: element lookup, element ids, compiled CEL.

`compile_process` checks everything that can be checked before a run and reports every problem at
once (raised as one ValidationFailed), so a user fixes a definition in one round trip.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from procengine.engine.definitions import (
    Element,
    IfConditionElement,
    ProcessDefinition,
    SetVariableElement,
    TaskElement,
    ThreadDefinition,
    successors,
)
from procengine.engine.expressions import Expression, ExpressionError, compile_expression
from procengine.errors import ValidationFailed


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
        """The task handlers the definition calls."""
        return frozenset(e.handler for e in self.elements.values() if isinstance(e, TaskElement))

    def thread(self, key: str) -> CompiledThread:
        for thread in self.threads:
            if thread.key == key:
                return thread
        raise KeyError(key)

    def expression(self, source: str) -> Expression:
        return self.expressions[source]


def compile_process(definition: ProcessDefinition, known_handlers: Collection[str] | None = None) -> CompiledProcess:
    """Validate the graph and compile its expressions; raise ValidationFailed listing every problem."""
    problems: list[str] = []
    elements: dict[str, Element] = {}
    element_ids: dict[str, int] = {}
    thread_of: dict[str, str] = {}
    expressions: dict[str, Expression] = {}
    threads: list[CompiledThread] = []

    seen_threads: set[str] = set()
    for thread_index, thread in enumerate(definition.threads):
        where = f"threads.{thread_index} ({thread.key})"
        if thread.key in seen_threads:
            problems.append(f"{where}: duplicate thread key {thread.key!r}")
        seen_threads.add(thread.key)
        for element in thread.elements:
            if element.key in elements:
                problems.append(f"{where}: duplicate element key {element.key!r} (keys are unique per process)")
                continue
            elements[element.key] = element
            element_ids[element.key] = len(element_ids) + 1
            thread_of[element.key] = thread.key
        problems.extend(_check_thread(where, thread))
        threads.append(
            CompiledThread(thread.key, thread_index + 1, thread.start_key, tuple(e.key for e in thread.elements))
        )

    # Every element, a duplicate's too: its own problems are listed with the duplicate key.
    for element in (element for thread in definition.threads for element in thread.elements):
        where = f"element {element.key!r}"
        for source in _sources(element):
            if source in expressions:
                continue
            try:
                expressions[source] = compile_expression(source)
            except ExpressionError as exc:
                problems.append(f"{where}: {exc}")
        if isinstance(element, TaskElement) and known_handlers is not None and element.handler not in known_handlers:
            problems.append(
                f"{where}: unknown handler {element.handler!r} (known: {', '.join(sorted(known_handlers))})"
            )

    if problems:
        raise ValidationFailed(f"process definition {definition.key!r} is not valid", problems)
    return CompiledProcess(definition, tuple(threads), elements, element_ids, thread_of, expressions)


def _sources(element: Element) -> list[str]:
    if isinstance(element, TaskElement):
        return list(element.input.values())
    if isinstance(element, SetVariableElement):
        return list(element.set.values())
    if isinstance(element, IfConditionElement):
        return [element.condition]
    return []


def _check_thread(where: str, thread: ThreadDefinition) -> list[str]:
    problems: list[str] = []
    local = {element.key: element for element in thread.elements}
    if thread.start_key not in local:
        problems.append(f"{where}: start {thread.start_key!r} is not an element of this thread")
    graph: dict[str, list[str]] = {}
    for element in thread.elements:
        targets = successors(element)
        for target in targets:
            if target not in local:
                problems.append(f"{where}: element {element.key!r} points to missing element {target!r}")
        graph[element.key] = [t for t in targets if t in local]
    if thread.start_key not in local:
        return problems  # reachability means nothing without a start

    reachable = _reach(graph, [thread.start_key])
    for element in thread.elements:
        if element.key not in reachable:
            problems.append(f"{where}: element {element.key!r} is unreachable from {thread.start_key!r}")

    exits = {key for key, element in local.items() if _can_end_thread(element, graph[key])}
    reverse: dict[str, list[str]] = {key: [] for key in graph}
    for source, targets in graph.items():
        for target in targets:
            reverse[target].append(source)
    can_exit = _reach(reverse, list(exits))
    for key in sorted(reachable - can_exit, key=list(local).index):
        problems.append(f"{where}: element {key!r} is in a cycle with no way out")
    return problems


def _can_end_thread(element: Element, targets: list[str]) -> bool:
    if isinstance(element, IfConditionElement):
        return element.then is None or element.else_ is None
    return not targets


def _reach(graph: dict[str, list[str]], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(graph.get(key, []))
    return seen
