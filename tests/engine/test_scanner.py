"""The scanner that bounds a CEL source before the extension sees it, the limits it is held to, and the one
place the extension is called (issue 17, item 1)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from procengine.engine import expressions
from procengine.engine.expressions import compile_expression, shape_problem
from procengine.engine.limits import (
    MAX_COMPREHENSION_NESTING,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_NESTING,
)
from procengine.engine.scanner import scan
from procengine.errors import ExpressionError, ExpressionTooCostly


@pytest.mark.parametrize(
    ("source", "depth", "nesting"),
    [
        ("a + 1", 1, 0),
        ("1 + 1 + 1 + 1", 3, 0),
        ("a == 1 || a != 2 && b >= 3", 5, 0),  # two-character operators count once
        ("(((1)))", 3, 3),
        ("x[0][1].y.z", 4 + 1, 1),  # indexes and member accesses are operators; an index is a bracket
        ("f(a + b, c) * 2", 1 + 2, 1),
        ("[1 + 2, 3 + 4 + 5, 6]", 1 + 2, 1),  # a literal's items are siblings: the deepest counts
        ("{'a': 1 + 1, 'b': c ? d : e}", 1 + 2, 1),  # `:` of a map separates, of a conditional is an operator
        ("1 in [1] in [true]", 2 + 1, 1),  # `in` is an operator
        ("!!!!true", 4, 0),
        ("'((((' + \"]]]]\" + r'\\' + '''+ + +'''", 3, 0),  # brackets and operators in strings do not count
    ],
)
def test_the_depth_bounds_the_syntax_tree(source: str, depth: int, nesting: int) -> None:
    shape = scan(source)
    assert (shape.depth, shape.nesting) == (depth, nesting)


def test_a_flat_chain_is_as_deep_as_it_is_long_and_a_flat_literal_is_not() -> None:
    assert scan("+".join(["1"] * 40_000)).depth == 39_999
    assert scan("[" + ",".join(["1"] * 40_000) + "]").depth == 1


def test_the_scanner_does_not_recurse() -> None:
    depth = sys.getrecursionlimit() * 20
    shape = scan("(" * depth + "1" + ")" * depth)
    assert (shape.nesting, shape.depth) == (depth, depth)


def test_unclosed_brackets_and_strings_are_measured_too() -> None:
    assert scan("((((1 + 2").nesting == 4
    assert scan("'never closed + + +").depth == 0


@pytest.mark.parametrize(
    ("source", "comprehensions", "degree", "items"),
    [
        ("x + 1", 0, 0, 0),
        ("xs.map(a, a * 2)", 1, 2, 0),
        ("[1, 2, 3].map(a, [4, 5].exists(b, a == b))", 2, 3, 5),
        ("xs.filter(a, a > 1).map(b, b)", 1, 2, 0),  # one after the other: not nested
        ("{'k': [1, 2]}", 0, 0, 2 + 2),  # a map's keys and values, and the list in it
        ("'xs.map(a, a)' + y", 0, 0, 0),
    ],
)
def test_comprehensions_and_literals_are_counted(source: str, comprehensions: int, degree: int, items: int) -> None:
    shape = scan(source)
    assert (shape.comprehensions, shape.degree, shape.literal_items) == (comprehensions, degree, items)


def test_the_names_are_the_identifiers_outside_strings_not_after_a_dot() -> None:
    assert scan("order.total + size(items) + 'x.y'").names == frozenset({"order", "size", "items"})
    assert scan("`odd.name` + 1").names is None


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("+".join(["1"] * (MAX_EXPRESSION_DEPTH + 2)), f"operators deep; at most {MAX_EXPRESSION_DEPTH}"),
        (
            "(" * (MAX_EXPRESSION_NESTING + 1) + "1" + ")" * (MAX_EXPRESSION_NESTING + 1),
            f"at most {MAX_EXPRESSION_NESTING}",
        ),
        ("[" + ",".join(["1"] * 9000) + "]", f"characters long; at most {MAX_EXPRESSION_LENGTH:,}"),
        ("l.map(a, l.map(b, l.map(c, l.map(d, 1))))", f"in one another; at most {MAX_COMPREHENSION_NESTING}"),
    ],
)
def test_a_source_over_a_limit_is_refused_naming_the_limit(source: str, named: str) -> None:
    with pytest.raises(ExpressionError, match="^expression .*" + named.replace("(", r"\(")) as refused:
        compile_expression(source)
    assert len(str(refused.value)) < 300  # the source is quoted, not echoed back whole


def test_a_source_at_the_limits_compiles_and_runs() -> None:
    at_limit = "+".join(["1"] * (MAX_EXPRESSION_DEPTH + 1))
    assert shape_problem(scan(at_limit)) is None
    assert compile_expression(at_limit).evaluate({}) == MAX_EXPRESSION_DEPTH + 1
    nested = "(" * MAX_EXPRESSION_NESTING + "1" + ")" * MAX_EXPRESSION_NESTING
    assert compile_expression(nested).evaluate({}) == 1


class PanicException(BaseException):  # pyo3's name, which is what is matched
    """What pyo3 raises when the Rust code panics: a BaseException."""


def _panics(_: Any) -> Any:
    raise PanicException("index out of bounds")


def test_a_panic_of_the_extension_is_an_expression_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions.cel, "compile", _panics)
    with pytest.raises(ExpressionError, match="panicked"):
        compile_expression("1 + 1")


def test_other_base_exceptions_go_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(expressions.cel, "compile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compile_expression("1 + 1")


def test_the_literals_of_the_source_count_in_its_cost() -> None:
    ten = "[" + ", ".join(str(i) for i in range(10)) + "]"
    expression = compile_expression(f"{ten}.map(a, {ten}.map(b, {ten}.map(c, a + b + c)))")
    assert expression.literal_items == 30
    with pytest.raises(ExpressionTooCostly, match=r"30\^6"):
        expression.evaluate({}, max_cost=1_000_000)


def test_a_comprehension_runs_in_the_sandbox_with_the_same_value() -> None:
    expression = compile_expression("xs.map(x, x * factor).filter(y, y > 2)")
    assert expression.evaluate({"xs": [1, 2, 3], "factor": 2, "other": 0}) == [4, 6]
    due = compile_expression("[duration('1s')].map(d, d)[0] + duration('1s')")
    assert due.evaluate_due({}, now_ms=1000) == 3000
    when = compile_expression("[timestamp('2026-01-01T00:00:00Z')].map(t, t)[0]")
    assert when.evaluate_due({}, now_ms=0) == 1_767_225_600_000
    with pytest.raises(ExpressionError, match="cannot be stored"):
        when.evaluate({})


def test_a_comprehension_past_its_deadline_fails_as_too_costly_and_the_next_runs() -> None:
    slow = compile_expression("l.map(a, s + s).size()")  # within the estimate (1,000^2), 76 s in-process
    with pytest.raises(ExpressionTooCostly, match="deadline"):
        slow.evaluate({"l": list(range(1000)), "s": "x" * 100_000}, max_cost=1_000_000)
    assert compile_expression("[1, 2].map(x, x + 1)").evaluate({}) == [2, 3]


def test_an_error_in_the_sandbox_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="missing"):
        compile_expression("[1].map(x, m.missing)").evaluate({"m": {}})
