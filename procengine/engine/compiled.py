"""A validated definition, ready to interpret: element lookup, element ids, compiled CEL.

`compile_process` checks everything that can be checked before a run on a definition whose shape is valid,
and reports every problem at once (raised as one ValidationFailed); `validation.py` does the same for a
document whose elements may break their schema.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from procengine.engine.definitions import (
    DelayElement,
    Element,
    FailElement,
    IfConditionElement,
    ProcessDefinition,
    SetVariableElement,
    SwitchElement,
    TaskElement,
    ThreadDefinition,
    WaitSignalElement,
    can_end,
    catch_clauses,
    successors,
)
from procengine.engine.expressions import Expression, ExpressionError, compile_expression
from procengine.engine.graph import Node, ThreadSketch, graph_problems
from procengine.problems import refusal


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
    elements: dict[str, Element] = {}
    element_ids: dict[str, int] = {}
    thread_of: dict[str, str] = {}
    expressions: dict[str, Expression] = {}
    threads: list[CompiledThread] = []
    for thread_index, thread in enumerate(definition.threads):
        for element in thread.elements:
            if element.key not in elements:  # a duplicate is a problem graph_problems lists
                elements[element.key] = element
                element_ids[element.key] = len(element_ids) + 1
                thread_of[element.key] = thread.key
        threads.append(
            CompiledThread(thread.key, thread_index + 1, thread.start_key, tuple(e.key for e in thread.elements))
        )

    problems = graph_problems([sketch(index, thread) for index, thread in enumerate(definition.threads)])
    # Every element, a duplicate's too: its own problems are listed with the duplicate key.
    for element in (element for thread in definition.threads for element in thread.elements):
        problems.extend(element_problems(element, known_handlers, expressions))
    if problems:
        raise refusal(f"process definition {definition.key!r} is not valid", problems)
    return CompiledProcess(definition, tuple(threads), elements, element_ids, thread_of, expressions)


def sketch(index: int, thread: ThreadDefinition) -> ThreadSketch:
    """A valid thread as the graph checks see it."""
    nodes = tuple(Node(e.key, tuple(successors(e)), can_end(e)) for e in thread.elements)
    return ThreadSketch(f"threads.{index} ({thread.key})", thread.key, thread.start_key, nodes)


def element_problems(
    element: Element, known_handlers: Collection[str] | None, expressions: dict[str, Expression]
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
    if isinstance(element, TaskElement) and known_handlers is not None and element.handler not in known_handlers:
        problems.append(f"{where}: unknown handler {element.handler!r} (known: {', '.join(sorted(known_handlers))})")
    return problems


def _sources(element: Element) -> list[str]:
    if isinstance(element, TaskElement):
        return list(element.input.values())
    if isinstance(element, SetVariableElement):
        return list(element.set.values())
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
    return []
