"""switch (the first true case wins, else the default, else the thread ends) and fail (the execution fails with a
CEL message), in the pure interpreter and at registration."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.outcomes import ElementFailed, ThreadEnded
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed
from tests.support.interpreter import definition, start


def _switch(default: str | None = "other") -> dict[str, Any]:
    element: dict[str, Any] = {
        "key": "route",
        "type": "switch",
        "cases": [
            {"when": "amount > 1000", "next": "big"},
            {"when": "amount > 100", "next": "medium"},
            {"when": "amount > 10", "next": "big"},  # a target named twice is fine
        ],
    }
    if default is not None:
        element["default"] = default
    return element


def _ends(key: str) -> dict[str, Any]:
    return {"key": key, "type": "set-variable", "set": {"went": f"'{key}'"}}


@pytest.mark.parametrize(
    ("amount", "went", "case"),
    [(5000, "big", 0), (500, "medium", 1), (50, "big", 2), (5, "other", None)],
)
def test_the_first_true_case_wins_and_the_default_takes_the_rest(amount: int, went: str, case: int | None) -> None:
    run = start(definition(_switch(), _ends("big"), _ends("medium"), _ends("other")), {"amount": amount})

    assert isinstance(run.drive(), ThreadEnded)

    assert run.variables["went"] == went
    assert run.state.memory.node_outputs["route"] == {"status": "success", "data": {"case": case, "next": went}}
    assert run.trail()[0] == ("element-completed", "route")


def test_without_a_default_and_no_true_case_the_thread_ends_at_the_switch() -> None:
    run = start(definition(_switch(default=None), _ends("big"), _ends("medium")), {"amount": 1})

    assert isinstance(run.drive(), ThreadEnded)

    assert "went" not in run.variables
    assert run.state.threads["main"].status == "completed"


def test_a_case_that_is_not_a_boolean_fails_the_switch() -> None:
    element = {"key": "route", "type": "switch", "cases": [{"when": "amount + 1", "next": "x"}]}
    run = start(definition(element, _ends("x")), {"amount": 1})

    step = run.drive()

    assert isinstance(step, ElementFailed) and step.error_type == "ExpressionError"


def test_fail_ends_the_thread_with_its_message_evaluated_over_the_variables() -> None:
    run = start(
        definition({"key": "no", "type": "fail", "message": "'card declined: ' + reason"}), {"reason": "insufficient"}
    )

    step = run.drive()

    assert isinstance(step, ElementFailed)
    assert (step.error, step.error_type) == ("card declined: insufficient", "Fail")
    assert run.state.memory.node_outputs["no"] == {
        "status": "failed",
        "error": "card declined: insufficient",
        "type": "Fail",
    }
    assert run.state.threads["main"].status == "failed"


def test_every_problem_of_switch_and_fail_is_listed_at_registration() -> None:
    document = {
        "key": "p",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {
                        "key": "route",
                        "type": "switch",
                        "cases": [{"when": "1 +* 2", "next": "gone"}],
                        "default": "nope",
                    },
                    {"key": "empty", "type": "switch", "cases": []},
                    {"key": "stop", "type": "fail", "message": "'a' +"},
                    {"key": "odd", "type": "fail"},
                ],
            }
        ],
    }
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document)

    details = "\n".join(caught.value.details)
    for expected in (
        "element 'route' points to missing element 'gone'",
        "element 'route' points to missing element 'nope'",
        "threads.0.elements.1.cases",  # at least one case
        "threads.0.elements.3.message",  # required
        "element 'route':",  # the bad CEL of its case
        "element 'stop':",  # the bad CEL of its message
    ):
        assert expected in details, details
