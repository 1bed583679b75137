"""Breakpoints (issue 22, point 4): `pauseBefore` elements at which a running execution pauses before the element
starts, in any lane that reaches it (a thread, a branch or iteration of a parallel or for-each), optionally only
when a CEL condition over the lane's variables holds. Pure: parsing against the definition, and the test a lane
makes before it begins an element (`actors/lanes.py`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from procengine.engine.compiled import CompiledProcess
from procengine.engine.expressions import Expression, compile_expression
from procengine.engine.state import StackEntry
from procengine.errors import ProcEngineError, ValidationFailed

__all__ = ["MAX_BREAKPOINTS", "Breakpoint", "from_field", "parsed", "stops", "to_field", "waits_before"]

MAX_BREAKPOINTS = 1000


@dataclass(frozen=True, slots=True)
class Breakpoint:
    element: str
    when: str | None = None
    """A CEL condition over the lane's variables: pause only when it holds (an error in it pauses, and says so)."""

    def to_doc(self) -> str | dict[str, str]:
        return self.element if self.when is None else {"element": self.element, "when": self.when}


def parsed(raw: Any, process: CompiledProcess) -> tuple[Breakpoint, ...]:
    """`pauseBefore` as given (element keys, or `{element, when}`), checked against the definition: every problem
    listed (ValidationFailed), an element named twice kept once."""
    if not isinstance(raw, list):
        raise ValidationFailed("pauseBefore must be a list", ["pauseBefore: a list of element keys or {element, when}"])
    problems: list[str] = []
    found: dict[str, Breakpoint] = {}
    if len(raw) > MAX_BREAKPOINTS:
        problems.append(f"pauseBefore: at most {MAX_BREAKPOINTS} breakpoints")
    for index, item in enumerate(raw[:MAX_BREAKPOINTS]):
        where = f"pauseBefore[{index}]"
        element, when = (item, None) if isinstance(item, str) else _pair(item)
        if element is None:
            problems.append(f"{where}: an element key, or {{element, when}} with a CEL condition")
            continue
        if element not in process.thread_of:
            problems.append(f"{where}: no element {element!r} in the execution's process ({process.definition.key!r})")
            continue
        if when is not None:
            try:
                _compiled(when)
            except ProcEngineError as exc:
                problems.append(f"{where}.when: {exc.message}")
                continue
        found[element] = Breakpoint(element, when)
    if problems:
        raise ValidationFailed("breakpoints refused", problems)
    return tuple(found.values())


def _pair(item: Any) -> tuple[str | None, str | None]:
    if not isinstance(item, dict) or set(item) - {"element", "when"}:
        return None, None
    element, when = item.get("element"), item.get("when")
    if not isinstance(element, str) or not (when is None or (isinstance(when, str) and 0 < len(when) <= 4000)):
        return None, None
    return element, when


def to_field(breakpoints: tuple[Breakpoint, ...]) -> str:
    """The execution hash's `pauseBefore` field ("" for none)."""
    return json.dumps([b.to_doc() for b in breakpoints], separators=(",", ":")) if breakpoints else ""


def from_field(fields: Mapping[str, str]) -> tuple[Breakpoint, ...]:
    """The breakpoints the execution hash holds (as `to_field` wrote them; anything else reads as none)."""
    try:
        raw = json.loads(fields.get("pauseBefore") or "[]")
    except ValueError:
        return ()
    found = []
    for item in raw if isinstance(raw, list) else []:
        element, when = (item, None) if isinstance(item, str) else _pair(item)
        if element is not None:
            found.append(Breakpoint(element, when))
    return tuple(found)


def waits_before(entry: StackEntry) -> bool:
    """Whether the lane has not begun this element yet (nothing of it under way: no start, timer, child, lanes,
    held failure), and did not stop at a breakpoint before it already (then it is passed when it goes on)."""
    return (
        entry.started_at_ms is None
        and entry.due_at_ms is None
        and entry.remaining_ms is None
        and entry.child_id is None
        and entry.fanout is None
        and entry.held is None
        and not entry.at_breakpoint
    )


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Expression:
    return compile_expression(source)


def stops(
    breakpoints: tuple[Breakpoint, ...], entry: StackEntry, variables: Callable[[], dict[str, Any]], max_cost: int
) -> tuple[bool, str | None]:
    """Whether a lane about to begin `entry` stops before it, and the error its condition raised (then it stops).
    `variables` gives the lane's variables: asked only for a condition on this element."""
    if not breakpoints or not waits_before(entry):
        return False, None
    for breakpoint in breakpoints:
        if breakpoint.element != entry.element_key:
            continue
        if breakpoint.when is None:
            return True, None
        try:
            return _compiled(breakpoint.when).evaluate_bool(variables(), max_cost), None
        except ProcEngineError as exc:
            return True, exc.message
    return False, None
