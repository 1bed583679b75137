"""Process definitions as users write them: what parses, what is refused, and the canonical body."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from procengine.engine.definitions import (
    DelayElement,
    IfConditionElement,
    ProcessDefinition,
    RetryPolicy,
    TaskElement,
    WaitSignalElement,
    successors,
)
from tests.support.processes import ORDER_FULFILMENT_YAML


def test_the_contract_example_parses_with_every_field(order_definition: ProcessDefinition) -> None:
    # given the contract's YAML (parsed by the fixture)
    # then every element has its type and fields
    (thread,) = order_definition.threads
    assert order_definition.key == "order-fulfilment"
    assert order_definition.name == "Order fulfilment"
    assert thread.key == "main"
    assert thread.start_key == "fetch_order"
    assert [(e.key, e.type) for e in thread.elements] == [
        ("fetch_order", "task"),
        ("verify", "if-condition"),
        ("premium", "set-variable"),
        ("standard", "set-variable"),
        ("approve", "wait-signal"),
        ("cool_off", "delay"),
        ("done", "end"),
    ]
    fetch, verify, _, _, approve, cool_off, done = thread.elements
    assert isinstance(fetch, TaskElement)
    assert (fetch.handler, fetch.input, fetch.output, fetch.next) == ("echo", {"id": "order_id"}, "order", "verify")
    assert fetch.retry == RetryPolicy(maxAttempts=3, backoffMs=100, backoffMultiplier=2.0)
    assert fetch.timeoutMs == 30000
    assert isinstance(verify, IfConditionElement)
    assert (verify.condition, verify.then, verify.else_) == ("order_total > 500.0", "premium", "standard")
    assert isinstance(approve, WaitSignalElement)
    assert (approve.signal, approve.into) == ("approval", "approval")
    assert isinstance(cool_off, DelayElement)
    assert cool_off.durationMs == 1000
    assert successors(verify) == ["premium", "standard"]
    assert successors(done) == []


def test_start_defaults_to_the_first_element(order_body: dict[str, Any]) -> None:
    # given the example without its `start`
    del order_body["threads"][0]["start"]
    # when it is parsed
    thread = ProcessDefinition.model_validate(order_body).threads[0]
    # then the thread starts at its first element
    assert thread.start is None
    assert thread.start_key == "fetch_order"


@pytest.mark.parametrize("bad_type", ["loop", "Task", "", "script"])
def test_an_unknown_element_type_is_refused(order_body: dict[str, Any], bad_type: str) -> None:
    order_body["threads"][0]["elements"][2]["type"] = bad_type
    with pytest.raises(ValidationError) as caught:
        ProcessDefinition.model_validate(order_body)
    assert "type" in str(caught.value)


def test_an_element_without_a_type_is_refused(order_body: dict[str, Any]) -> None:
    del order_body["threads"][0]["elements"][2]["type"]
    with pytest.raises(ValidationError):
        ProcessDefinition.model_validate(order_body)


@pytest.mark.parametrize(
    "path",
    [
        ("owner",),  # the process
        ("threads", 0, "priority"),  # a thread
        ("threads", 0, "elements", 0, "color"),  # an element
        ("threads", 0, "elements", 0, "retry", "maxAtempts"),  # a typo in the retry policy
        ("threads", 0, "elements", 1, "next"),  # `next` on an if-condition (it has then/else)
        ("threads", 0, "elements", 6, "next"),  # `next` on an end
    ],
)
def test_extra_fields_are_refused_at_every_level(order_body: dict[str, Any], path: tuple[Any, ...]) -> None:
    # given a field the schema does not know, added somewhere in the body
    target: Any = order_body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "approve"
    # when / then it is refused, naming the field
    with pytest.raises(ValidationError) as caught:
        ProcessDefinition.model_validate(order_body)
    assert path[-1] in str(caught.value)
    assert "extra" in str(caught.value).lower()


def test_else_is_read_from_its_alias_and_written_back_under_it(order_body: dict[str, Any]) -> None:
    # given the if-condition written with `else`, as users write it
    verify = ProcessDefinition.model_validate(order_body).threads[0].elements[1]
    assert isinstance(verify, IfConditionElement)
    assert verify.else_ == "standard"
    # and the same written with the Python field name
    body = copy.deepcopy(order_body)
    element = body["threads"][0]["elements"][1]
    element["else_"] = element.pop("else")
    # then both are the same definition, and canonical() says `else`
    canonical = ProcessDefinition.model_validate(body).canonical()
    assert canonical == ProcessDefinition.model_validate(order_body).canonical()
    dumped = canonical["threads"][0]["elements"][1]
    assert dumped["else"] == "standard"
    assert "else_" not in dumped


def test_an_if_condition_may_leave_out_either_branch() -> None:
    element = IfConditionElement.model_validate({"key": "c", "type": "if-condition", "condition": "x", "then": "a"})
    assert element.else_ is None
    assert successors(element) == ["a"]


@pytest.mark.parametrize("bad_key", ["has space", "1starts_with_digit", "", "emoji🙂"])
def test_keys_must_be_identifiers(order_body: dict[str, Any], bad_key: str) -> None:
    order_body["threads"][0]["elements"][6]["key"] = bad_key
    with pytest.raises(ValidationError):
        ProcessDefinition.model_validate(order_body)


def test_expressions_must_be_strings_not_yaml_scalars() -> None:
    # `is_premium: true` (a YAML bool) is not a CEL source; it must be quoted
    body = {
        "key": "p",
        "threads": [{"key": "t", "elements": [{"key": "s", "type": "set-variable", "set": {"x": True}}]}],
    }
    with pytest.raises(ValidationError):
        ProcessDefinition.model_validate(body)


def test_empty_threads_and_elements_are_refused() -> None:
    with pytest.raises(ValidationError):
        ProcessDefinition.model_validate({"key": "p", "threads": []})
    with pytest.raises(ValidationError):
        ProcessDefinition.model_validate({"key": "p", "threads": [{"key": "t", "elements": []}]})


def test_a_retry_policy_with_zero_attempts_is_refused() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(maxAttempts=0)


def test_retry_delay_grows_by_the_multiplier_and_is_capped() -> None:
    policy = RetryPolicy(maxAttempts=10, backoffMs=100, backoffMultiplier=3.0, maxBackoffMs=1000)
    assert [policy.delay_before(attempt) for attempt in range(2, 6)] == [100, 300, 900, 1000]


# --- canonical(): drives versioning ----------------------------------------------------------


def test_canonical_is_equal_for_the_same_body_in_yaml_and_in_json(order_body: dict[str, Any]) -> None:
    # given the example loaded from YAML and the same body sent as JSON text
    from_yaml = ProcessDefinition.model_validate(yaml.safe_load(ORDER_FULFILMENT_YAML))
    from_json = ProcessDefinition.model_validate_json(json.dumps(order_body))
    # then their canonical bodies are equal, and serialise to the same bytes
    assert from_yaml.canonical() == from_json.canonical()
    assert json.dumps(from_yaml.canonical(), sort_keys=True) == json.dumps(from_json.canonical(), sort_keys=True)


def test_canonical_is_stable_across_calls_and_a_round_trip(order_definition: ProcessDefinition) -> None:
    first = order_definition.canonical()
    again = ProcessDefinition.model_validate(first).canonical()
    assert order_definition.canonical() == first
    assert again == first
    assert json.dumps(again) == json.dumps(first)  # same key order too


def test_canonical_fills_in_defaults_so_explicit_defaults_are_the_same_version(order_body: dict[str, Any]) -> None:
    # given a body that spells out defaults the other leaves out
    explicit = copy.deepcopy(order_body)
    explicit["threads"][0]["elements"][2]["next"] = "approve"
    explicit["threads"][0]["elements"][0]["retry"]["maxBackoffMs"] = 3_600_000
    explicit["threads"][0]["elements"][0]["retry"]["backoffMultiplier"] = 2  # an int where a float is expected
    # then both canonical bodies are equal
    assert (
        ProcessDefinition.model_validate(explicit).canonical()
        == ProcessDefinition.model_validate(order_body).canonical()
    )
    # and the defaults are there to see
    retry = ProcessDefinition.model_validate(order_body).canonical()["threads"][0]["elements"][0]["retry"]
    assert retry == {"maxAttempts": 3, "backoffMs": 100, "backoffMultiplier": 2.0, "maxBackoffMs": 3_600_000}


def test_canonical_differs_when_the_body_changes(order_body: dict[str, Any]) -> None:
    changed = copy.deepcopy(order_body)
    changed["threads"][0]["elements"][5]["durationMs"] = 2000
    assert (
        ProcessDefinition.model_validate(changed).canonical()
        != ProcessDefinition.model_validate(order_body).canonical()
    )


def test_a_definition_is_immutable(order_definition: ProcessDefinition) -> None:
    with pytest.raises(ValidationError):
        order_definition.threads[0].elements[5].durationMs = 5  # type: ignore[union-attr]


def test_a_definition_of_the_first_release_canonicalises_exactly_as_it_did_then() -> None:
    """The version of a registered definition is decided by its canonical body: fields added since (catch, a
    wait's timeout, a delay's until) must not appear while unused, or re-registering would make a new version."""
    body = {
        "key": "p",
        "threads": [
            {
                "key": "m",
                "elements": [
                    {"key": "w", "type": "wait-signal", "signal": "s", "next": "d", "into": "x"},
                    {"key": "d", "type": "delay", "durationMs": 5, "next": "t"},
                    {"key": "i", "type": "if-condition", "condition": "true", "then": "t"},
                    {"key": "s", "type": "set-variable", "set": {"a": "1"}, "next": "t"},
                    {"key": "t", "type": "task", "handler": "h", "next": "e"},
                    {"key": "e", "type": "end"},
                ],
            }
        ],
    }
    # recorded from the canonical() of commit 5e8ff04, before any element type gained a field
    first_release = {
        "key": "p",
        "name": "",
        "threads": [
            {
                "key": "m",
                "start": None,
                "elements": [
                    {"key": "w", "next": "d", "type": "wait-signal", "signal": "s", "into": "x"},
                    {"key": "d", "next": "t", "type": "delay", "durationMs": 5},
                    {"key": "i", "type": "if-condition", "condition": "true", "then": "t", "else": None},
                    {"key": "s", "next": "t", "type": "set-variable", "set": {"a": "1"}},
                    {
                        "key": "t",
                        "next": "e",
                        "type": "task",
                        "handler": "h",
                        "input": {},
                        "output": None,
                        "retry": {"maxAttempts": 1, "backoffMs": 0, "backoffMultiplier": 2.0, "maxBackoffMs": 3600000},
                        "timeoutMs": None,
                    },
                    {"key": "e", "type": "end"},
                ],
            }
        ],
    }
    assert ProcessDefinition.model_validate(body).canonical() == first_release
