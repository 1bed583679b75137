"""wait-signal with timeoutMs: a signal in time goes on at `next`; none in time goes on at `onTimeout`, or without
one fails the element (Timeout, catchable). The time left is a timer like a delay's: frozen while paused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from procengine.engine.interpreter import AwaitSignal, ElementFailed, ThreadEnded
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed
from tests.engine.support import definition, start

APPROVAL: dict[str, Any] = {
    "key": "approval",
    "type": "wait-signal",
    "signal": "approve",
    "into": "decision",
    "timeoutMs": 1000,
    "onTimeout": "escalate",
    "next": "ship",
}
AFTER = [
    {"key": "ship", "type": "set-variable", "set": {"path": "'ship'"}},
    {"key": "escalate", "type": "set-variable", "set": {"path": "'escalate'"}},
]


def test_a_signal_in_time_goes_on_at_next() -> None:
    run = start(definition(APPROVAL, *AFTER))
    step = run.drive(now=0)
    assert isinstance(step, AwaitSignal) and step.until_ms == 1000

    run.interpreter.signal_arrived(run.state, "approve", {"ok": True})

    assert isinstance(run.drive(now=999), ThreadEnded)
    assert run.variables == {"decision": {"ok": True}, "path": "ship"}


def test_no_signal_in_time_goes_on_at_on_timeout() -> None:
    run = start(definition(APPROVAL, *AFTER))
    run.drive(now=0)
    assert isinstance(run.drive(now=999), AwaitSignal)  # asked early: still waiting, for what is left

    assert isinstance(run.drive(now=1000), ThreadEnded)

    assert run.variables == {"path": "escalate"}
    assert run.state.memory.node_outputs["approval"] == {"status": "success", "data": {"timedOut": True}}


def test_pause_freezes_what_is_left_of_the_timeout() -> None:
    run = start(definition(APPROVAL, *AFTER))
    run.drive(now=0)
    run.interpreter.freeze_timers(run.state, now_ms=400)
    assert run.state.stack[0].remaining_ms == 600

    run.interpreter.thaw_timers(run.state, now_ms=10_000)  # paused for 9.6 s: not counted

    step = run.drive(now=10_000)
    assert isinstance(step, AwaitSignal) and step.until_ms == 10_600
    assert isinstance(run.drive(now=10_600), ThreadEnded)
    assert run.variables == {"path": "escalate"}


def test_without_on_timeout_the_wait_fails_with_a_timeout_that_catch_can_take() -> None:
    uncaught = start(definition({**APPROVAL, "onTimeout": None}, *AFTER[:1]))
    uncaught.drive(now=0)
    step = uncaught.drive(now=1000)
    assert isinstance(step, ElementFailed) and step.error_type == "Timeout"

    caught = start(
        definition(
            {**APPROVAL, "onTimeout": None, "catch": [{"errors": ["Timeout"], "next": "escalate"}]},
            *AFTER,
        )
    )
    caught.drive(now=0)
    assert isinstance(caught.drive(now=1000), ThreadEnded)
    assert caught.variables == {"path": "escalate"}


def test_on_timeout_needs_a_timeout() -> None:
    with pytest.raises(ValidationError, match="onTimeout needs timeoutMs"):
        definition({"key": "w", "type": "wait-signal", "signal": "s", "onTimeout": "w"})


def test_registration_says_what_a_wait_is_missing_without_pydantic_s_words() -> None:
    document = {
        "key": "p",
        "threads": [{"key": "m", "elements": [{"key": "w", "type": "wait-signal", "signal": "s", "onTimeout": "x"}]}],
    }
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(document)

    assert caught.value.details == [
        "threads.0.elements.0: onTimeout needs timeoutMs",
        "threads.0 (m): element 'w' points to missing element 'x'",
    ]
