"""CEL expressions, compiled once per definition, evaluated over an execution's variables.

CEL (through the `common-expression-language` bindings) cannot run arbitrary code: no eval, no imports. But the
extension recurses on the native stack and holds the GIL while it runs, so this module is the one place that
calls it, and it keeps three promises (docs/architecture.md, "CEL on the event loop"):
- no source reaches the extension before `scan` has bounded its length, depth and nesting (limits.py);
- a panic of the extension (pyo3's PanicException, a BaseException) is an ExpressionError;
- an expression with a comprehension, whose work can grow past any estimate, runs in a child process that is
  killed at EXPRESSION_DEADLINE_S (sandbox.py); the others, linear in their data, run in-process and fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from procengine.engine import native
from procengine.engine.limits import (
    EXPRESSION_DEADLINE_S,
    MAX_COMPREHENSION_NESTING,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_NESTING,
)
from procengine.engine.sandbox import SANDBOX
from procengine.engine.scanner import Shape, scan
from procengine.errors import ExpressionError, ExpressionTooCostly, SandboxError, SandboxTimeout

_T = TypeVar("_T")

cel = native.load()


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
    literal_items: int = 0
    """Items of the list and map literals written in the source: data its comprehensions may walk too."""

    def context(self, variables: dict[str, Any], max_cost: int | None = None) -> dict[str, Any]:
        """The variables the expression can read. CEL converts every value it is given, so passing a 1,000-item
        list to `x + 1` costs as much as reading it: only the names in the source are passed. ExpressionTooCostly
        if its comprehensions would cost more than `max_cost` over them (checked before it runs: CEL cannot be
        stopped once it has started, and it runs on the event loop)."""
        names = self.names
        if not names and names is not None:  # reads no variable (a literal): nothing for CEL to convert
            context: dict[str, Any] = {}
        elif names is None or len(variables) <= len(names):
            context = variables
        else:
            context = {
                name: value
                for name, value in variables.items()
                if name in names or ("." in name and name.split(".", 1)[0] in names)
            }
        if max_cost is not None and self.degree > 0:
            size = max(1, self.literal_items + sum(_elements(value) for value in context.values()))
            if size**self.degree > max_cost:
                raise ExpressionTooCostly(
                    f"{_quoted(self.source)} would cost about {size:,}^{self.degree} = {size**self.degree:,} over "
                    f"{size:,} list items and map entries (its own literals included), more than "
                    f"--max-expression-cost {max_cost:,}"
                )
        return context

    def _run(self, context: dict[str, Any]) -> Any:
        """The extension's value over `context`: in-process when the source has no comprehension (its work is
        linear in the source and the data, both bounded), else in the sandbox, at most EXPRESSION_DEADLINE_S."""
        if self.degree == 0:
            return _native(self._program.execute, context, self.source)
        try:
            return SANDBOX.execute(self.source, context, EXPRESSION_DEADLINE_S)
        except SandboxTimeout as exc:
            raise ExpressionTooCostly(f"{_quoted(self.source)} {exc} (it has a comprehension)") from None
        except SandboxError as exc:
            raise ExpressionError(f"{_quoted(self.source)}: {exc}") from None

    def evaluate(self, variables: dict[str, Any], max_cost: int | None = None) -> Any:
        context = self.context(variables, max_cost)
        value = _native(self._program.execute, context, self.source) if self.degree == 0 else self._run(context)
        # CEL timestamps and durations come back as datetime/timedelta, which no checkpoint can hold:
        # refuse them here, where the element can fail cleanly, not later in the codec.
        if type(value) not in _SCALAR_TYPES and not _storable(value):
            raise ExpressionError(
                f"{_quoted(self.source)} gave a value that cannot be stored ({_kind(value)}); "
                "convert timestamps and durations with string()"
            )
        return value

    def evaluate_due(self, variables: dict[str, Any], now_ms: int, max_cost: int | None = None) -> int:
        """A time (epoch ms) from a CEL timestamp (`timestamp('2026-12-24T00:00:00Z')`), an RFC 3339 string (a
        variable holding one), or a duration from now (`duration('72h')`)."""
        value = self._run(self.context(variables, max_cost))
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ExpressionError(f"{_quoted(self.source)} gave {value!r}, which is no RFC 3339 time") from None
        if isinstance(value, timedelta):
            return now_ms + int(value.total_seconds() * 1000)
        if isinstance(value, datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
        raise ExpressionError(
            f"{_quoted(self.source)} must give a timestamp or a duration, gave {type(value).__name__}"
        )

    def evaluate_bool(self, variables: dict[str, Any], max_cost: int | None = None) -> bool:
        value = self.evaluate(variables, max_cost)
        if not isinstance(value, bool):
            raise ExpressionError(f"{_quoted(self.source)} must give a bool, gave {type(value).__name__}")
        return value


def compile_expression(source: str) -> Expression:
    """The compiled expression; ExpressionError if it is bad CEL or over a limit of its shape (checked first:
    past them the extension crashes the process rather than refuse it)."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression {_quoted(source)} is {len(source):,} characters long; at most {MAX_EXPRESSION_LENGTH:,}"
        )
    shape = scan(source)
    problem = shape_problem(shape)
    if problem is not None:
        raise ExpressionError(f"expression {_quoted(source)} {problem}")
    program = _native(cel.compile, source, source, bad="bad CEL ")
    if shape.degree > 0:
        SANDBOX.prepare()  # its child imports the extension now, not when the first execution needs it
    return Expression(source, program, shape.names, shape.degree, shape.literal_items)


def shape_problem(shape: Shape) -> str | None:
    """What limit of limits.py the shape is over (None: none)."""
    if shape.length > MAX_EXPRESSION_LENGTH:
        return f"is {shape.length:,} characters long; at most {MAX_EXPRESSION_LENGTH:,}"
    if shape.nesting > MAX_EXPRESSION_NESTING:
        return f"nests brackets {shape.nesting:,} deep; at most {MAX_EXPRESSION_NESTING}"
    if shape.depth > MAX_EXPRESSION_DEPTH:
        return f"is {shape.depth:,} operators deep; at most {MAX_EXPRESSION_DEPTH}"
    if shape.comprehensions > MAX_COMPREHENSION_NESTING:
        return (
            f"nests {shape.comprehensions} comprehensions (map, filter, all, exists, exists_one) in one another; "
            f"at most {MAX_COMPREHENSION_NESTING}"
        )
    return None


def _native(call: Callable[[Any], _T], argument: Any, source: str, bad: str = "") -> _T:
    """`call(argument)` into the extension, its failures as ExpressionError: the bindings raise RuntimeError,
    ValueError or TypeError, and pyo3 a PanicException (a BaseException, caught by its name only) when the Rust
    code panics."""
    try:
        return call(argument)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"{bad}{_quoted(source)}: {first_line}") from None
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise ExpressionError(f"{bad}{_quoted(source)}: the CEL extension panicked ({exc})") from None


def _quoted(source: str, most: int = 80) -> str:
    """The source as an error quotes it: an 80 KB expression is not echoed back whole."""
    return repr(source) if len(source) <= most else f"{source[:most]!r}... ({len(source):,} characters)"


def referenced_names(source: str) -> frozenset[str] | None:
    """Every identifier of `source` outside string literals and not after a dot (a superset of the variables it
    reads: function names and macro variables too); None where the source has backquoted names."""
    return scan(source).names


def cost_degree(source: str) -> int:
    """The degree of the cost of `source` in the size of its data: for each chain of comprehensions nested in
    one another, the sum of their degrees (scanner.COMPREHENSIONS); the largest over the chains (0: none)."""
    return scan(source).degree


def _elements(value: Any) -> int:
    """List items and map entries in `value`, nested ones included (what a comprehension may walk)."""
    if isinstance(value, list):
        return len(value) + sum(_elements(item) for item in value if isinstance(item, list | dict))
    if isinstance(value, dict):
        return len(value) + sum(_elements(item) for item in value.values() if isinstance(item, list | dict))
    return 0


_SCALARS = (type(None), bool, int, float, str, bytes)
_SCALAR_TYPES = frozenset(_SCALARS)


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
