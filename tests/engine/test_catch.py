"""catch: a failure of a listed type (after the retries) continues at the clause's `next` with its description in
`into`, instead of failing the thread; the first clause that matches wins, `*` matches any type."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.outcomes import ElementFailed, Progressed, RunTask, Sleep, ThreadEnded
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed
from tests.support.interpreter import definition, start

CHARGE: dict[str, Any] = {
    "key": "charge",
    "type": "task",
    "handler": "work",
    "retry": {"maxAttempts": 2, "backoffMs": 100},
    "catch": [
        {"errors": ["CardDeclined"], "next": "declined", "into": "why"},
        {"errors": ["*"], "next": "anything"},
    ],
    "next": "ship",
}
AFTER = [
    {"key": "ship", "type": "end"},
    {"key": "declined", "type": "set-variable", "set": {"path": "'declined'"}},
    {"key": "anything", "type": "set-variable", "set": {"path": "'anything'"}},
]


def test_a_caught_failure_goes_on_at_the_clause_after_the_retries_with_its_description() -> None:
    run = start(definition(CHARGE, *AFTER))
    assert isinstance(run.drive(), RunTask)
    assert isinstance(run.fail("CardDeclined: no funds", error_type="CardDeclined").step, Sleep)  # attempt 2 first
    assert isinstance(run.drive(now=100), RunTask)

    outcome = run.fail("CardDeclined: still no funds", now=150, error_type="CardDeclined")

    assert isinstance(outcome.step, Progressed)
    [failed] = outcome.events
    assert (failed.event, failed.caught, failed.attempt) == ("element-failed", "declined", 2)
    assert isinstance(run.drive(now=150), ThreadEnded)
    assert run.variables == {
        "why": {"error": "CardDeclined: still no funds", "type": "CardDeclined", "attempts": 2, "elementKey": "charge"},
        "path": "declined",
    }
    assert run.state.memory.node_outputs["charge"] == {
        "status": "failed",
        "error": "CardDeclined: still no funds",
        "type": "CardDeclined",
        "caught": "declined",
    }
    progress = run.state.threads["main"]
    assert (progress.status, progress.failed_nodes) == ("completed", 0)


def test_the_first_matching_clause_wins_and_star_takes_any_type() -> None:
    element = {**CHARGE, "retry": {"maxAttempts": 1}}
    run = start(definition(element, *AFTER))
    run.drive()

    run.fail("timed out", error_type="Timeout")

    assert isinstance(run.drive(), ThreadEnded)
    assert run.variables == {"path": "anything"}


def test_a_type_no_clause_names_fails_the_thread() -> None:
    clauses = [{"errors": ["CardDeclined"], "next": "declined"}, {"errors": ["Other"], "next": "anything"}]
    element = {**CHARGE, "retry": {"maxAttempts": 1}, "catch": clauses}
    run = start(definition(element, *AFTER))
    run.drive()

    step = run.fail("boom", error_type="Timeout").step

    assert isinstance(step, ElementFailed) and step.error_type == "Timeout"
    assert run.state.threads["main"].status == "failed"


def test_an_expression_error_of_a_set_variable_can_be_caught() -> None:
    element = {
        "key": "compute",
        "type": "set-variable",
        "set": {"x": "missing + 1"},
        "catch": [{"errors": ["ExpressionError"], "next": "fallback", "into": "err"}],
        "next": "done",
    }
    run = start(
        definition(
            element, {"key": "fallback", "type": "set-variable", "set": {"x": "0"}}, {"key": "done", "type": "end"}
        )
    )

    assert isinstance(run.drive(), ThreadEnded)

    assert run.variables["x"] == 0 and run.variables["err"]["type"] == "ExpressionError"


def test_catch_targets_are_checked_and_make_their_element_reachable() -> None:
    document = {
        "key": "p",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {
                        "key": "t",
                        "type": "task",
                        "handler": "h",
                        "catch": [{"errors": ["Timeout"], "next": "gone"}],
                        "next": "handled",
                    },
                    {
                        "key": "s",
                        "type": "set-variable",
                        "set": {"x": "1"},
                        "catch": [{"errors": ["no such!"], "next": "t"}],
                    },
                    {"key": "handled", "type": "task", "handler": "h", "catch": [{"errors": ["*"], "next": "alt"}]},
                    {"key": "alt", "type": "end"},
                ],
            }
        ],
    }
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document)

    details = caught.value.details
    assert "threads.0 (main): element 't' points to missing element 'gone'" in details
    assert any(d.startswith("threads.0.elements.1.catch.0.errors.0:") for d in details), details
    assert not any("'alt' is unreachable" in d for d in details), details  # reached through handled's catch


def test_a_catch_back_to_its_own_element_is_refused() -> None:
    document = {
        "key": "p",
        "threads": [
            {
                "key": "m",
                "elements": [
                    {"key": "poll", "type": "task", "handler": "h", "catch": [{"errors": ["*"], "next": "poll"}]},
                ],
            }
        ],
    }
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document)

    assert caught.value.details == [
        "element 'poll': a catch clause goes back to the element itself (at once, for ever); use retry"
    ]
