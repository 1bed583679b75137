"""A definition document (JSON or YAML, parsed) checked as a whole, with every problem listed in one answer.

pydantic stops a discriminated union at the first element of an unknown type, and the graph and CEL checks
need a valid model: together they made users fix a definition one round trip at a time. Here the frame
(process key, threads) and each element are validated on their own; when any of them is invalid, the graph
checks still run on a sketch of the document (invalid elements keep their key and targets) and the CEL and
handler checks on every valid element, so one bad element never hides the problems of the others.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from procengine.api.problems import problems as listed
from procengine.api.problems import refusal
from procengine.engine.compiled import (
    CompiledProcess,
    attribute_problems,
    callable_processes,
    compile_process,
    element_problems,
    fan_out_problems,
    nested_sketches,
)
from procengine.engine.definitions import (
    ELEMENT,
    Element,
    ProcessDefinition,
    ProcessOutline,
    can_end,
    successors,
    walk,
)
from procengine.engine.expressions import Expression
from procengine.engine.graph import GraphNode, ThreadSketch, graph_problems

__all__ = ["validate_definition"]

_TARGET_FIELDS = ("next", "then", "else", "default", "onTimeout")
"""Where an element of any type names the element after it (and each of a switch's `cases` and `catch`)."""


def validate_definition(
    document: Any,
    known_handlers: Collection[str] | None = None,
    known_processes: Mapping[str, Collection[int]] | None = None,
    max_elements: int | None = None,
    max_variables: int | None = None,
) -> CompiledProcess:
    """The compiled definition, or ValidationFailed with every problem of the document (`max_elements`: the most
    elements it may have, nested ones counted; `max_variables`: the most variables it may write)."""
    problems: list[str] = []
    count = _element_count(document)
    if max_elements is not None and count > max_elements:
        problems.append(f"the definition has {count} elements; at most {max_elements} (--max-definition-elements)")
    try:
        ProcessOutline.model_validate(document)
    except ValidationError as exc:
        problems.extend(listed(exc, document))
    threads = _raw_threads(document)
    valid: dict[tuple[int, int], Element] = {}
    for i, raw_thread in enumerate(threads):
        for j, raw in enumerate(_raw_elements(raw_thread)):
            try:
                valid[(i, j)] = ELEMENT.validate_python(raw)
            except ValidationError as exc:
                problems.extend(listed(exc, raw, at=f"threads.{i}.elements.{j}"))
    if not problems:
        compiled = compile_process(ProcessDefinition.model_validate(document), known_handlers, known_processes)
        written = len(compiled.variables_written)
        if max_variables is not None and written > max_variables:
            raise refusal(
                f"process definition {compiled.definition.key!r} is not valid",
                [f"the definition writes {written} variables; at most {max_variables} (--max-variables)"],
            )
        return compiled

    sketches: list[ThreadSketch] = []
    for i, raw_thread in enumerate(threads):
        thread_sketch = _sketch(i, raw_thread, valid)
        if thread_sketch is not None:
            sketches.append(thread_sketch)
            for j in range(len(_raw_elements(raw_thread))):
                element = valid.get((i, j))
                sketches.extend(nested_sketches(element, thread_sketch.where) if element is not None else [])
    problems.extend(graph_problems(sketches))
    expressions: dict[str, Expression] = {}
    key = document.get("key") if isinstance(document, dict) else None
    callable_ = callable_processes(key, known_processes) if isinstance(key, str) else known_processes
    for element in valid.values():
        problems.extend(fan_out_problems(element))
        for each in walk([element]):
            problems.extend(element_problems(each, known_handlers, expressions, callable_))
    declared = document.get("attributes") if isinstance(document, dict) else None
    if isinstance(declared, dict):
        problems.extend(attribute_problems(declared, [each for element in valid.values() for each in walk([element])]))
    raise refusal(
        f"process definition {key!r} is not valid" if isinstance(key, str) else "process definition is not valid",
        problems,
    )


def _raw_threads(document: Any) -> list[Any]:
    threads = document.get("threads") if isinstance(document, dict) else None
    return threads if isinstance(threads, list) else []


def _raw_elements(raw_thread: Any) -> list[Any]:
    elements = raw_thread.get("elements") if isinstance(raw_thread, dict) else None
    return elements if isinstance(elements, list) else []


def _sketch(i: int, raw_thread: Any, valid: dict[tuple[int, int], Element]) -> ThreadSketch | None:
    """A thread of a document with problems, as the graph checks see it (None: not even a thread)."""
    if not isinstance(raw_thread, dict):
        return None
    nodes = tuple(_node(valid.get((i, j)), raw) for j, raw in enumerate(_raw_elements(raw_thread)))
    key = raw_thread.get("key")
    start = raw_thread.get("start")
    if start is None and nodes:
        start = nodes[0].key
    return ThreadSketch(
        f"threads.{i} ({key})" if isinstance(key, str) else f"threads.{i}",
        key if isinstance(key, str) else None,
        start if isinstance(start, str) else None,
        nodes,
    )


def _node(element: Element | None, raw: Any) -> GraphNode:
    if element is not None:
        return GraphNode(element.key, tuple(successors(element)), can_end(element))
    fields = raw if isinstance(raw, dict) else {}
    key = fields.get("key")
    named = [fields.get(name) for name in _TARGET_FIELDS]
    for nested in ("cases", "catch"):  # a switch's cases, any element's catch clauses
        items = fields.get(nested)
        named += [item.get("next") for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    targets = tuple(t for t in named if isinstance(t, str))
    # what an invalid element can do is unknown: let it end the thread rather than report cycles it may not have
    return GraphNode(key if isinstance(key, str) else None, targets, can_end=True)


def _element_count(node: Any) -> int:
    """Elements in a document, at any depth (a parallel's branches, a for-each's body), valid or not."""
    if isinstance(node, list):
        return sum(_element_count(item) for item in node)
    if not isinstance(node, dict):
        return 0
    own = (
        sum(1 for item in node.get("elements", []) if isinstance(item, dict))
        if isinstance(node.get("elements"), list)
        else 0
    )
    return own + sum(_element_count(value) for value in node.values())
