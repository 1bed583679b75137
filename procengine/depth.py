"""How deep a JSON-like value nests, measured without recursion, and a copy of it cut at a depth.

A value nested a few hundred levels passes json.loads and msgpack, then breaks whatever walks it recursively
later: pydantic's serializer stops at 255 levels, so one deep variable made `GET .../state` answer 500 for ever
(issue 17). Inputs are refused past `--max-nesting-depth`; stored values are shown cut at `RENDER_DEPTH`.

Depth counts containers: a scalar is 0 deep, `{"a": 1}` 1, `[[1]]` 2. Values are trees (JSON, msgpack): a walk
that meets a shared container (a YAML alias) counts it at every place it appears.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["RENDER_DEPTH", "clipped", "deeper_than"]

RENDER_DEPTH: Final = 160
"""How deep a stored value is shown in an answer; below it, a note. Above every accepted input's limit (at most
128, see Settings.max_nesting_depth) plus the few levels the engine wraps it in, below pydantic's 255."""


def deeper_than(value: Any, limit: int) -> bool:
    """True if `value` nests more than `limit` containers deep. Stops at the first path past the limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def clipped(value: Any, limit: int = RENDER_DEPTH) -> Any:
    """`value` itself when it is at most `limit` deep; else a copy whose containers at depth `limit` are replaced by
    a string saying so (the parts above are kept as they are)."""
    if not deeper_than(value, limit):
        return value
    root: list[Any] = [None]
    # (source container, where its copy goes: (parent copy, key), its depth)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]
    while stack:
        source, parent, key, depth = stack.pop()
        if not isinstance(source, dict | list | tuple):
            parent[key] = source
        elif depth > limit:
            parent[key] = f"<nested deeper than {limit} levels: not shown>"
        elif isinstance(source, dict):
            copy: dict[Any, Any] = dict.fromkeys(source)  # the keys in their order, the values below
            parent[key] = copy
            stack.extend((child, copy, name, depth + 1) for name, child in source.items())
        else:
            items: list[Any] = [None] * len(source)
            parent[key] = items
            stack.extend((child, items, index, depth + 1) for index, child in enumerate(source))
    return root[0]
