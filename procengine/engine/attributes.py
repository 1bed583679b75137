"""Search attributes: what a definition declares (`attributes: {name: type}`), the values a start or a
`set-variable` gives them, checked against the declared types, and how they are shown.

A value is stored as [type, value] (`store/search.py`): a keyword or text as a string, a number as an int or a float,
a bool as a bool, a time as epoch milliseconds (given as ISO-8601 at a start, and by CEL as a timestamp, an RFC 3339
string or a duration from now at a `set-variable`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import Field

from procengine.runtime.clock import iso
from procengine.store.search import ATTRIBUTE_TYPES, AttributeType, Stored

__all__ = [
    "ATTRIBUTE_TYPES",
    "MAX_ATTRIBUTES",
    "MAX_KEYWORD",
    "MAX_TEXT",
    "AttributeName",
    "AttributeType",
    "checked",
    "parse_time",
    "shown",
    "value_problem",
]

MAX_ATTRIBUTES: Final = 50
"""The most attributes one definition may declare."""
MAX_KEYWORD: Final = 200
"""The longest keyword value (it is part of an index key's name)."""
MAX_TEXT: Final = 10_000
"""The longest text value."""
NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
AttributeName = Annotated[str, Field(pattern=NAME_PATTERN)]
"""No dots or dashes, unlike an element key: a filter names it as `attr.<name>.gte`."""


def parse_time(text: str) -> int | None:
    """An ISO-8601 time (`2026-12-08T10:00:00Z`; without an offset: UTC) as epoch ms; None if it is none. Every RFC
    3339 date-time is one (a lowercase `t` or `z`; a leap second is read as the second before it)."""
    if len(text) > 10 and text[10] in "tT ":
        text = f"{text[:10]}T{text[11:]}"
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    if text[16:19] == ":60":
        text = f"{text[:17]}59{text[19:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def value_problem(kind: str, value: Any) -> tuple[Any, str | None]:
    """`value` as the stored value of an attribute of type `kind`, or the problem with it."""
    if kind in ("keyword", "text"):
        if not isinstance(value, str):
            return None, f"must be a string ({kind}), got {_kind(value)}"
        limit = MAX_KEYWORD if kind == "keyword" else MAX_TEXT
        if not value or len(value) > limit:
            return None, f"must be 1 to {limit} characters ({kind})"
        return value, None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be a number, got {_kind(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return None, "must be a finite number"
        if isinstance(value, int) and abs(value) > 2**53:
            return None, "must be within ±2^53 (a sorted set's score is a double)"
        return value, None
    if kind == "bool":
        if not isinstance(value, bool):
            return None, f"must be true or false, got {_kind(value)}"
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):  # time, already epoch ms (a CEL time)
        return value, None
    if not isinstance(value, str):
        return None, f"must be an ISO-8601 time, got {_kind(value)}"
    ms = parse_time(value)
    if ms is None:
        return None, f"must be an ISO-8601 time, got {value[:50]!r}"
    return ms, None


def checked(
    declared: Mapping[str, str], given: Mapping[str, Any], where: str = "attributes"
) -> tuple[Stored, list[str]]:
    """The stored form of `given`, and every problem: an undeclared name, a value of the wrong type."""
    stored: Stored = {}
    problems: list[str] = []
    for name, value in given.items():
        kind = declared.get(name)
        if kind is None:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"{where}.{name}: not declared by the definition (declared: {known})")
            continue
        converted, problem = value_problem(kind, value)
        if problem is not None:
            problems.append(f"{where}.{name}: {problem}")
        else:
            stored[name] = [kind, converted]
    return stored, problems


def shown(stored: Stored) -> dict[str, Any]:
    """The attributes as the API shows them: {name: value}, a time as ISO-8601."""
    return {name: iso(int(value)) if kind == "time" else value for name, (kind, value) in sorted(stored.items())}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
