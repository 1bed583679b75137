"""CEL expressions, compiled once per definition, evaluated over an execution's variables.

CEL (through the `common-expression-language` bindings) cannot run arbitrary code: no eval, no imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cel

from procengine.engine.limits import LimitExceeded


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate."""


class ExpressionTooCostly(LimitExceeded):
    """An expression would cost more than its budget over these variables: its element fails with LimitExceeded."""


DEFAULT_MAX_COST = 1_000_000
"""`--max-expression-cost`: a map or filter over 1,000 items, an exists or all over 1,000,000."""


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    _program: Any
    names: frozenset[str] | None = None
    """The identifiers the source can refer to (None: not known, every variable is passed)."""
    degree: int = 0
    """How the cost grows with the size of the data: the degree of the polynomial (see `cost_degree`)."""

    def context(self, variables: dict[str, Any], max_cost: int | None = None) -> dict[str, Any]:
        """The variables the expression can read. CEL converts every value it is given, so passing a 1,000-item
        list to `x + 1` costs as much as reading it: only the names in the source are passed. ExpressionTooCostly
        if its comprehensions would cost more than `max_cost` over them (checked before it runs: CEL cannot be
        stopped once it has started, and it runs on the event loop)."""
        names = self.names
        if names is None or len(variables) <= len(names):
            context = variables
        else:
            context = {
                name: value
                for name, value in variables.items()
                if name in names or ("." in name and name.split(".", 1)[0] in names)
            }
        if max_cost is not None and self.degree > 0:
            size = max(1, sum(_elements(value) for value in context.values()))
            if size**self.degree > max_cost:
                raise ExpressionTooCostly(
                    f"{self.source!r} would cost about {size:,}^{self.degree} = {size**self.degree:,} over "
                    f"{size:,} list items and map entries, more than --max-expression-cost {max_cost:,}"
                )
        return context

    def evaluate(self, variables: dict[str, Any], max_cost: int | None = None) -> Any:
        context = self.context(variables, max_cost)  # its ExpressionTooCostly is not the CEL error below
        try:
            value = self._program.execute(context)
        except Exception as exc:  # the bindings raise RuntimeError/ValueError/TypeError
            raise ExpressionError(f"{self.source!r}: {exc}") from None
        # CEL timestamps and durations come back as datetime/timedelta, which no checkpoint can hold:
        # refuse them here, where the element can fail cleanly, not later in the codec.
        if not _storable(value):
            raise ExpressionError(
                f"{self.source!r} gave a value that cannot be stored ({_kind(value)}); "
                "convert timestamps and durations with string()"
            )
        return value

    def evaluate_due(self, variables: dict[str, Any], now_ms: int, max_cost: int | None = None) -> int:
        """A time (epoch ms) from a CEL timestamp (`timestamp('2026-12-24T00:00:00Z')`), an RFC 3339 string (a
        variable holding one), or a duration from now (`duration('72h')`)."""
        context = self.context(variables, max_cost)  # its ExpressionTooCostly is not the CEL error below
        try:
            value = self._program.execute(context)
        except Exception as exc:
            raise ExpressionError(f"{self.source!r}: {exc}") from None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ExpressionError(f"{self.source!r} gave {value!r}, which is no RFC 3339 time") from None
        if isinstance(value, timedelta):
            return now_ms + int(value.total_seconds() * 1000)
        if isinstance(value, datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
        raise ExpressionError(f"{self.source!r} must give a timestamp or a duration, gave {type(value).__name__}")

    def evaluate_bool(self, variables: dict[str, Any], max_cost: int | None = None) -> bool:
        value = self.evaluate(variables, max_cost)
        if not isinstance(value, bool):
            raise ExpressionError(f"{self.source!r} must give a bool, gave {type(value).__name__}")
        return value


def compile_expression(source: str) -> Expression:
    try:
        program = cel.compile(source)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"bad CEL {source!r}: {first_line}") from None
    return Expression(source, program, referenced_names(source), cost_degree(source))


_STRING = re.compile(r"""[rRbB]*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
_IDENTIFIER = re.compile(r"(?<![.\w])[A-Za-z_]\w*")
_BEYOND = ("'" * 3, '"' * 3, "`")
_RAW = re.compile(r"""(?<!\w)(?:[bB]?[rR]|[rR][bB])['"]""")
"""A raw string: a backslash before its closing quote does not escape it, which _STRING does not know."""


def referenced_names(source: str) -> frozenset[str] | None:
    """Every identifier of `source` outside string literals and not after a dot (a superset of the variables it
    reads: function names and macro variables too); None where the source is beyond this simple reading
    (triple quotes, raw strings, backquoted names)."""
    if any(mark in source for mark in _BEYOND) or _RAW.search(source):
        return None
    return frozenset(_IDENTIFIER.findall(_STRING.sub(" ", source)))


_COMPREHENSION = re.compile(r"\.\s*(map|filter|exists_one|exists|all)\s*\(")
_DEGREE = {"map": 2, "filter": 2, "exists_one": 1, "exists": 1, "all": 1}
"""What each comprehension multiplies the cost by, as a power of the data's size. CEL's `map` and `filter` build
their list by copying it at every item in the bindings we use (measured: a map over 1,000 items 106 ms, over
3,000 716 ms), so they count as n^2; `exists`, `exists_one` and `all` are linear (3,000 items in 2 ms)."""


def cost_degree(source: str) -> int:
    """The degree of the cost of `source` in the size of its data: for each chain of comprehensions nested in
    one another, the sum of their degrees; the largest over the chains (0: no comprehension, linear at most)."""
    text = _STRING.sub(" ", source)
    opened: list[int] = []  # the degree each open parenthesis adds
    depth = deepest = 0
    at = 0
    while at < len(text):
        found = _COMPREHENSION.match(text, at)
        if found is not None:
            opened.append(_DEGREE[found.group(1)])
            depth += opened[-1]
            deepest = max(deepest, depth)
            at = found.end()
            continue
        if text[at] == "(":
            opened.append(0)
        elif text[at] == ")" and opened:
            depth -= opened.pop()
        at += 1
    return deepest


def _elements(value: Any) -> int:
    """List items and map entries in `value`, nested ones included (what a comprehension may walk)."""
    if isinstance(value, list):
        return len(value) + sum(_elements(item) for item in value if isinstance(item, list | dict))
    if isinstance(value, dict):
        return len(value) + sum(_elements(item) for item in value.values() if isinstance(item, list | dict))
    return 0


_SCALARS = (type(None), bool, int, float, str, bytes)


def _storable(value: Any) -> bool:
    """Plain data the msgpack checkpoint can hold: scalars, lists and maps of them."""
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, _SCALARS) and _storable(v) for k, v in value.items())
    return False


def _kind(value: Any) -> str:
    """The first unstorable type in `value`, by name."""
    if isinstance(value, list):
        return next(_kind(item) for item in value if not _storable(item))
    if isinstance(value, dict):
        return next(_kind(part) for pair in value.items() for part in pair if not _storable(part))
    return type(value).__name__
