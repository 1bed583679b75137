"""validate_definition: a document's problems all listed at once, one bad element hiding none of the others;
numbers taken strictly."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from procengine.engine.compiled import compile_process
from procengine.engine.definitions import DelayElement, ProcessDefinition
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed

HANDLERS = {"echo", "sleep", "fail"}
TYPES = (
    "'task', 'if-condition', 'switch', 'set-variable', 'delay', 'wait-signal', 'parallel', 'for-each', "
    "'call-process', 'fail', 'end'"
)


def _problems(document: Any, handlers: set[str] | None = HANDLERS) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document, handlers)
    assert caught.value.code == "VALIDATION_ERROR"
    return caught.value.problems


def _process(*elements: Any, **fields: Any) -> dict[str, Any]:
    return {"key": "p", "threads": [{"key": "m", "elements": list(elements)}], **fields}


def test_an_unknown_type_a_missing_target_and_bad_cel_are_listed_together() -> None:
    # given the three faults of the issue in one definition
    document = _process(
        {"key": "a", "type": "set-variable", "set": {"v": "1"}, "next": "odd"},
        {"key": "odd", "type": "frobnicate", "next": "c"},
        {"key": "c", "type": "if-condition", "condition": "1 +* 2", "then": "x"},
    )
    # when it is validated, then each is named, and nothing else
    problems = _problems(document)
    assert len(problems) == 3, problems
    assert problems[0] == f"threads.0.elements.1.type: 'frobnicate' is not one of {TYPES}"
    assert problems[1] == "threads.0 (m): element 'c' points to missing element 'x'"
    assert problems[2].startswith("element 'c': bad CEL '1 +* 2'")


def test_an_invalid_element_keeps_its_key_and_targets() -> None:
    # an element of unknown type pointing nowhere, and a valid element pointing at it
    problems = _problems(_process({"key": "odd", "type": "frobnicate", "next": "ghost"}))
    assert problems == [
        f"threads.0.elements.0.type: 'frobnicate' is not one of {TYPES}",
        "threads.0 (m): element 'odd' points to missing element 'ghost'",
    ]
    # and pointing at an invalid element is no "missing element"
    problems = _problems(
        _process({"key": "a", "type": "set-variable", "set": {"v": "1"}, "next": "odd"}, {"key": "odd", "type": "x"})
    )
    assert problems == [f"threads.0.elements.1.type: 'x' is not one of {TYPES}"]


def test_every_invalid_element_is_listed_with_its_path() -> None:
    problems = _problems(
        _process(
            {"key": "a", "type": "task", "next": "b"},  # no handler
            {"key": "b", "next": "c"},  # no type
            "c",  # not an element at all
            {"key": "c", "type": "delay", "durationMs": -1, "next": "d"},
            {"key": "d", "type": "end", "next": "a"},  # end takes no next
        )
    )
    assert problems == [
        "threads.0.elements.0.handler: Field required",
        "threads.0.elements.1.type: Field required",
        "threads.0.elements.2: Input should be a valid dictionary or object to extract fields from",
        "threads.0.elements.3.durationMs: Input should be greater than or equal to 0",
        "threads.0.elements.4.next: Extra inputs are not permitted",
    ]


def test_problems_of_the_frame_elements_graph_cel_and_handlers_come_in_one_answer() -> None:
    document = {
        "key": "bad key!",
        "colour": "blue",
        "threads": [
            {"key": "m", "start": "nowhere", "elements": [{"key": "t", "type": "task", "handler": "nope"}]},
            {"key": "m", "elements": [{"key": "t", "type": "set-variable", "set": {"v": "1 +"}}, {"type": "end"}]},
        ],
    }
    problems = _problems(document)
    assert problems[0].startswith("key: String should match pattern")
    assert problems[1:] == [
        "colour: Extra inputs are not permitted",
        "threads.1.elements.1.key: Field required",
        "threads.0 (m): start 'nowhere' is not an element of this thread",
        "threads.1 (m): duplicate thread key 'm'",
        "threads.1 (m): duplicate element key 't' (keys are unique per process)",
        "element 't': unknown handler 'nope' (known: echo, fail, sleep)",
        "element 't': bad CEL '1 +': " + problems[-1].split(": ", 2)[2],
    ]


@pytest.mark.parametrize("threads", [None, "main", [], [1]])
def test_a_document_without_usable_threads_is_refused_not_crashed_on(threads: Any) -> None:
    problems = _problems({"key": "p", "threads": threads})
    assert problems and all(p.startswith("threads") for p in problems)


@pytest.mark.parametrize("document", [None, [], "p", 7])
def test_a_document_that_is_not_a_map_is_refused(document: Any) -> None:
    assert _problems(document) == ["Input should be a valid dictionary or instance of ProcessOutline"]


def test_a_valid_document_compiles_as_the_model_does(order_body: dict[str, Any]) -> None:
    compiled = validate_definition(order_body, HANDLERS)
    assert compiled.definition == ProcessDefinition.model_validate(order_body)
    assert compiled.element_ids == compile_process(compiled.definition).element_ids


def test_unknown_handlers_are_checked_only_when_known_handlers_are_given(order_body: dict[str, Any]) -> None:
    order_body["threads"][0]["elements"][0]["handler"] = "charge-card"
    assert validate_definition(order_body, None).definition.key == "order-fulfilment"
    assert _problems(order_body) == ["element 'fetch_order': unknown handler 'charge-card' (known: echo, fail, sleep)"]


# --- numbers strictly ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("cool_off", "durationMs"), False, "Input should be a valid integer"),
        (("cool_off", "durationMs"), True, "Input should be a valid integer"),
        (("cool_off", "durationMs"), "1000", "Input should be a valid integer"),
        (("cool_off", "durationMs"), 1000.0, "Input should be a valid integer"),
        (("fetch_order", "timeoutMs"), 1.5, "Input should be a valid integer"),
        (("fetch_order", "retry", "maxAttempts"), True, "Input should be a valid integer"),
        (("fetch_order", "retry", "backoffMs"), "100", "Input should be a valid integer"),
        (("fetch_order", "retry", "backoffMultiplier"), True, "Input should be a valid number"),
        (("fetch_order", "retry", "backoffMultiplier"), "2", "Input should be a valid number"),
        (("fetch_order", "handler"), 7, "Input should be a valid string"),
        (("fetch_order", "input", "id"), 7, "Input should be a valid string"),
    ],
)
def test_numbers_and_strings_are_taken_strictly(
    order_body: dict[str, Any], path: tuple[str, ...], value: Any, problem: str
) -> None:
    # given the contract's example with one field of the wrong kind
    elements = order_body["threads"][0]["elements"]
    index = next(i for i, e in enumerate(elements) if e["key"] == path[0])
    target = elements[index]
    for name in path[1:-1]:
        target = target[name]
    target[path[-1]] = value
    # then it is refused, naming the field, instead of being read as 0, 1 or 1000
    assert _problems(order_body) == [f"threads.0.elements.{index}.{'.'.join(path[1:])}: {problem}"]


def test_an_integer_is_a_number_for_a_float_field(order_body: dict[str, Any]) -> None:
    order_body["threads"][0]["elements"][0]["retry"]["backoffMultiplier"] = 3
    assert validate_definition(order_body, HANDLERS).definition.threads[0].elements[0].retry.backoffMultiplier == 3.0  # type: ignore[union-attr]


def test_yaml_numbers_are_what_yaml_says(order_body: dict[str, Any]) -> None:
    # YAML's 1_000 is an int; 1e3 (no dot) is a string in YAML 1.1, and so refused
    text = yaml.safe_dump(order_body).replace("durationMs: 1000", "durationMs: 1_000")
    compiled = validate_definition(yaml.safe_load(text), HANDLERS)
    delay = compiled.elements["cool_off"]
    assert isinstance(delay, DelayElement) and delay.durationMs == 1000
    broken = yaml.safe_load(text.replace("durationMs: 1_000", "durationMs: 1e3"))
    assert _problems(broken) == ["threads.0.elements.5.durationMs: Input should be a valid integer"]


def test_validation_does_not_change_the_document(order_body: dict[str, Any]) -> None:
    before = copy.deepcopy(order_body)
    validate_definition(order_body, HANDLERS)
    assert order_body == before
