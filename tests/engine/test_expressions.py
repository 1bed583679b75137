"""CEL expressions: compiled once, evaluated over variables, never giving what a checkpoint cannot hold."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.expressions import (
    DEFAULT_MAX_COST,
    compile_expression,
    cost_degree,
    referenced_names,
)
from procengine.errors import ExpressionError, ExpressionTooCostly


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("order_total > 500.0", {"order_total": 599.99}, True),
        ("order.id", {"order": {"id": "ORD-1"}}, "ORD-1"),
        ("'a' + b", {"b": "c"}, "ac"),
        ("[1, 2.5, 'x', null, true]", {}, [1, 2.5, "x", None, True]),
        ("{'k': [1, {'n': 2}]}", {}, {"k": [1, {"n": 2}]}),
        ("size(items)", {"items": [1, 2, 3]}, 3),
        ("has(m.x)", {"m": {}}, False),
        ("b'ab'", {}, b"ab"),
    ],
)
def test_expressions_give_plain_values(source: str, variables: dict[str, Any], expected: Any) -> None:
    assert compile_expression(source).evaluate(variables) == expected


@pytest.mark.parametrize("source", ["1 +", "", "a b", "f(", "import os"])
def test_a_source_that_does_not_parse_is_refused_on_one_line(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert str(caught.value).startswith(f"bad CEL {source!r}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("source", "variables"),
    [("missing + 1", {}), ("1 / 0", {}), ("m.x", {"m": {}}), ("n + 1", {"n": 2**63 - 1}), ("'a' + 1", {})],
)
def test_runtime_errors_become_expression_errors(source: str, variables: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source).evaluate(variables)
    assert repr(source) in str(caught.value)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("timestamp('2026-02-02T10:30:00Z')", "datetime"),
        ("duration('90s')", "timedelta"),
        ("[1, [duration('1s')]]", "timedelta"),
        ("{'at': timestamp('2026-02-02T10:30:00Z')}", "datetime"),
    ],
)
def test_values_a_checkpoint_cannot_hold_are_refused(source: str, kind: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source).evaluate({})
    assert f"cannot be stored ({kind})" in str(caught.value)


def test_comparing_timestamps_is_still_fine_since_the_result_is_a_bool() -> None:
    expression = compile_expression("timestamp(a) < timestamp(b)")
    assert expression.evaluate_bool({"a": "2026-01-01T00:00:00Z", "b": "2026-02-01T00:00:00Z"}) is True


def test_evaluate_bool_refuses_anything_but_a_bool() -> None:
    with pytest.raises(ExpressionError, match="must give a bool, gave int"):
        compile_expression("1").evaluate_bool({})
    with pytest.raises(ExpressionError, match="must give a bool, gave str"):
        compile_expression("'true'").evaluate_bool({})


def test_only_the_variables_an_expression_names_are_passed_to_cel() -> None:
    expression = compile_expression("x + size(order.lines) + 'items'.size()")
    big = {"x": 1, "order": {"lines": [1, 2]}, "items": list(range(1000)), "other": "y"}
    assert expression.names is not None and {"x", "order", "size"} <= expression.names
    assert expression.context(big) == {"x": 1, "order": {"lines": [1, 2]}}  # 'items' in a string is no variable
    assert expression.evaluate(big) == 1 + 2 + 5


def test_an_expression_that_names_no_variable_gets_none_of_them() -> None:
    expression = compile_expression("'s' + '01'")
    assert expression.names == frozenset()
    assert expression.context({"a": list(range(1000)), "b.c": 1}) == {}
    assert expression.evaluate({"a": 1, "b.c": 2}) == "s01"


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ('"say \\"x\\" to " + who', {"who": "ada", "x": 1, "y": 2}, 'say "x" to ada'),
        ("items.map(i, i * factor)", {"items": [1, 2], "factor": 3, "i": 99, "z": 0}, [3, 6]),
        ("has(order.lines) ? 1 : 0", {"order": {}, "a": 1, "b": 2}, 0),
    ],
)
def test_an_expression_reads_the_same_with_the_variables_it_names(
    source: str, variables: dict[str, Any], expected: Any
) -> None:
    assert compile_expression(source).evaluate(variables) == expected


def test_triple_quoted_and_raw_strings_are_read_as_strings() -> None:
    expression = compile_expression("'''a \" b''' + b")
    assert expression.names == frozenset({"b"})
    assert expression.evaluate({"b": "x", "c": 1}) == 'a " bx'


def test_a_raw_string_ending_in_a_backslash_ends_at_its_quote() -> None:
    expression = compile_expression("r'C:\\' + folder + '/' + file")
    assert expression.names == frozenset({"folder", "file"})
    assert expression.evaluate({"folder": "tmp", "file": "a.txt", "other": 1, "more": 2}) == "C:\\tmp/a.txt"


def test_a_source_beyond_the_simple_reading_gets_every_variable() -> None:
    expression = referenced_names("`b` + c")  # a backquoted name: CEL resolves it, the scanner does not
    assert expression is None


@pytest.mark.parametrize(
    ("source", "degree"),
    [
        ("x + 1", 0),
        ("size(xs) > 3 && 5 in xs", 0),
        ("xs.map(a, a * 2)", 2),
        ("xs.filter(a, a > 1).size()", 2),
        ("xs.exists(a, a > 1) && ys.all(b, b > 0)", 1),
        ("xs.exists(a, ys.exists_one(b, a == b))", 2),
        ("xs.map(a, xs.filter(b, b < a).size())", 4),
        ("f(xs.map(a, a)) + xs.all(b, g(b))", 2),
        ("'xs.map(a, a)' + y", 0),  # in a string: not a comprehension
    ],
)
def test_the_cost_of_an_expression_grows_with_its_comprehensions(source: str, degree: int) -> None:
    assert cost_degree(source) == degree


def test_an_expression_over_its_cost_is_refused_before_it_runs() -> None:
    """CEL cannot be stopped once it runs (on the event loop): the cost is estimated from the data first. A map
    over 3,000 items would take most of a second in these bindings; over 1,000 it is within the default."""
    doubled = compile_expression("xs.map(a, a * 2)")
    assert doubled.evaluate({"xs": list(range(1000))}, max_cost=DEFAULT_MAX_COST)[-1] == 1998
    with pytest.raises(ExpressionTooCostly, match=r"3,000\^2 = 9,000,000 .* more than --max-expression-cost 1,000,000"):
        doubled.evaluate({"xs": list(range(3000))}, max_cost=DEFAULT_MAX_COST)
    # linear ones go much further; nested lists count their items too; unread variables do not count
    assert compile_expression("xs.exists(a, a < 0)").evaluate({"xs": list(range(200_000))}, DEFAULT_MAX_COST) is False
    nested = {"xs": [[1] * 600, [2] * 600], "big": list(range(100_000))}
    with pytest.raises(ExpressionTooCostly, match="1,202 list items"):
        compile_expression("xs.map(a, size(a))").evaluate(nested, max_cost=DEFAULT_MAX_COST)
