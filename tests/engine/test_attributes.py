"""Search attributes in the definition language: declared with a type, set by `set-variable` (CEL, checked against
the type when it runs), refused at registration with every problem listed; a definition without them is the same
version as before they existed."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.attributes import checked, shown
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.interpreter import Interpreter
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed
from procengine.store.keys import Keys
from procengine.store.search import SearchEntry, changed, words


def _process(*elements: Any, **fields: Any) -> dict[str, Any]:
    return {"key": "p", "threads": [{"key": "m", "elements": list(elements)}], **fields}


def _problems(document: Any) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document, {"echo"})
    return caught.value.problems


ATTRS = {"customer": "keyword", "note": "text", "amount": "number", "vip": "bool", "due": "time"}


def test_a_definition_declares_attributes_and_sets_them() -> None:
    compiled = validate_definition(
        _process({"key": "a", "type": "set-variable", "attributes": {"amount": "total * 2"}}, attributes=ATTRS)
    )
    assert compiled.definition.attributes == ATTRS
    assert compiled.definition.canonical()["attributes"] == ATTRS


def test_bad_names_types_and_undeclared_attributes_are_all_listed() -> None:
    # given a bad name, a bad type, a set-variable of an undeclared attribute and bad CEL, in one definition
    document = _process(
        {"key": "a", "type": "set-variable", "attributes": {"ghost": "1", "amount": "1 +* 2"}},
        attributes={"bad.name": "keyword", "amount": "number", "size": "decimal"},
    )
    problems = _problems(document)
    assert any("bad.name" in p for p in problems), problems
    assert any(p.startswith("attributes.size: Input should be") for p in problems), problems
    assert any("'ghost'" in p and "does not declare" in p for p in problems), problems
    assert any("1 +* 2" in p for p in problems), problems


def test_a_valid_document_with_an_undeclared_attribute_is_refused() -> None:
    problems = _problems(
        _process({"key": "a", "type": "set-variable", "attributes": {"ghost": "1"}}, attributes={"amount": "number"})
    )
    assert problems == ["element 'a': sets attribute 'ghost', which the definition does not declare (declared: amount)"]


def test_a_set_variable_sets_something() -> None:
    problems = _problems(_process({"key": "a", "type": "set-variable"}))
    assert any("at least one" in p for p in problems), problems


def test_a_definition_without_attributes_keeps_its_canonical_body() -> None:
    """Registered before attributes existed, the same body is the same version now."""
    body = ProcessDefinition.model_validate(_process({"key": "a", "type": "set-variable", "set": {"x": "1"}}))
    canonical = body.canonical()
    assert "attributes" not in canonical
    assert "attributes" not in canonical["threads"][0]["elements"][0]


def test_start_values_are_checked_against_the_types() -> None:
    given = {
        "customer": "acme",
        "note": "Rush order",
        "amount": 12.5,
        "vip": True,
        "due": "2026-12-24T10:00:00Z",
        "ghost": 1,
    }
    stored, problems = checked(ATTRS, given)
    assert stored["due"] == ["time", 1798106400000]
    assert problems == ["attributes.ghost: not declared by the definition (declared: amount, customer, due, note, vip)"]
    assert shown(stored)["due"] == "2026-12-24T10:00:00.000Z"
    _, wrong = checked(ATTRS, {"customer": 5, "amount": "10", "vip": "yes", "due": "tomorrow", "note": ""})
    assert len(wrong) == 5, wrong


def _run(document: dict[str, Any], variables: dict[str, Any]) -> tuple[Any, Any]:
    compiled = validate_definition(document)
    interpreter = Interpreter(compiled)
    state = interpreter.initial_state(variables, {"m": 1})
    outcome = interpreter.begin(state, "m", 1_000)
    return state, outcome


def test_set_variable_sets_attributes_by_type() -> None:
    document = _process(
        {
            "key": "a",
            "type": "set-variable",
            "set": {"x": "1"},
            "attributes": {"amount": "total * 2", "due": "duration('1h')", "customer": "who"},
        },
        attributes=ATTRS,
    )
    state, _ = _run(document, {"total": 21, "who": "acme"})
    assert state.memory.attributes == {
        "amount": ["number", 42],
        "due": ["time", 1_000 + 3_600_000],
        "customer": ["keyword", "acme"],
    }


def test_a_value_of_the_wrong_type_fails_the_element_like_an_expression_error() -> None:
    document = _process({"key": "a", "type": "set-variable", "attributes": {"amount": "'lots'"}}, attributes=ATTRS)
    state, _ = _run(document, {})
    record = state.memory.node_outputs["a"]
    assert record["status"] == "failed"
    assert record["type"] == "ExpressionError"
    assert "attribute 'amount' (number)" in record["error"]
    assert state.memory.attributes == {}


def test_the_index_edits_move_only_what_changed() -> None:
    keys = Keys("p")
    before = SearchEntry({"customer": ["keyword", "acme"], "amount": ["number", 5]})
    after = SearchEntry({"customer": ["keyword", "acme"], "amount": ["number", 7], "note": ["text", "Rush, rush!"]})
    ops = changed(keys, "t", 9, before, after)
    assert {(op.command, op.key) for op in ops} == {
        ("ZADD", keys.attribute_range("t", "amount")),
        ("ZADD", keys.attribute_word("t", "note", "rush")),
        ("HSET", keys.search("t")),
    }
    assert words("Rush, rush! Now") == ["rush", "now"]
