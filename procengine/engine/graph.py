"""The graph checks of a definition: duplicate keys, missing targets, unreachable elements, cycles without exit.

They work on a sketch of each thread (element keys and where each can go), which a valid definition gives
and so does a document whose elements are only partly valid: an element that breaks its schema still has a
key and targets, so the problems of the others are found in the same round trip.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GraphNode:
    key: str | None
    """None: the element has no usable key (its own problem is listed elsewhere); nothing can point to it."""
    targets: tuple[str, ...]
    can_end: bool
    """The thread may end at this element (no `next`, or an if-condition with a branch left out)."""


@dataclass(frozen=True, slots=True)
class ThreadSketch:
    where: str
    """How problems name the thread: "threads.0 (main)"."""
    key: str | None
    start: str | None
    nodes: tuple[GraphNode, ...]


def graph_problems(threads: list[ThreadSketch]) -> list[str]:
    """Every problem of the threads' graphs, in the order of the document."""
    problems: list[str] = []
    seen_threads: set[str] = set()
    seen_elements: set[str] = set()
    for thread in threads:
        if thread.key is not None:
            if thread.key in seen_threads:
                problems.append(f"{thread.where}: duplicate thread key {thread.key!r}")
            seen_threads.add(thread.key)
        for node in thread.nodes:
            if node.key is None:
                continue
            if node.key in seen_elements:
                problems.append(f"{thread.where}: duplicate element key {node.key!r} (keys are unique per process)")
            seen_elements.add(node.key)
        problems.extend(_thread_problems(thread))
    return problems


def _thread_problems(thread: ThreadSketch) -> list[str]:
    problems: list[str] = []
    where = thread.where
    local = {node.key: node for node in thread.nodes if node.key is not None}
    if thread.start is not None and thread.start not in local:
        problems.append(f"{where}: start {thread.start!r} is not an element of this thread")
    graph: dict[str, list[str]] = {}
    for node in thread.nodes:
        for target in node.targets:
            if target not in local:
                named = f"element {node.key!r}" if node.key is not None else "an element"
                problems.append(f"{where}: {named} points to missing element {target!r}")
        if node.key is not None:
            graph[node.key] = [t for t in node.targets if t in local]
    if thread.start is None or thread.start not in local:
        return problems  # reachability means nothing without a start

    reachable = _reach(graph, [thread.start])
    for key in local:
        if key not in reachable:
            problems.append(f"{where}: element {key!r} is unreachable from {thread.start!r}")

    # an element whose targets are all missing is a dead end already listed: not a cycle as well
    exits = [key for key, node in local.items() if node.can_end or not graph[key]]
    reverse: dict[str, list[str]] = {key: [] for key in graph}
    for source, targets in graph.items():
        for target in targets:
            reverse[target].append(source)
    can_exit = _reach(reverse, exits)
    for key in sorted(reachable - can_exit, key=list(local).index):
        problems.append(f"{where}: element {key!r} is in a cycle with no way out")
    return problems


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
