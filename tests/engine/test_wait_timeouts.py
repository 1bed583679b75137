"""wait-signal with timeoutMs: a signal in time goes on at `next`; none in time goes on at `onTimeout`, or without
one fails the element (Timeout, catchable). The time left is a timer like a delay's: frozen while paused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from procengine.engine.outcomes import AwaitSignal, ElementFailed, Sleep, ThreadEnded
from procengine.engine.validation import validate_definition
from procengine.errors import ValidationFailed
from tests.support.interpreter import definition, start

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
        "threads.0.elements.0: onTimeout needs timeoutMs or timeoutAt",
        "threads.0 (m): element 'w' points to missing element 'x'",
    ]


# --- times from CEL: a delay's until, a wait's timeoutAt ----------------------------------------------------

NOON = 1_796_126_400_000  # 2026-12-01T12:00:00Z


@pytest.mark.parametrize(
    ("until", "variables", "due"),
    [
        ("timestamp('2026-12-01T12:00:05Z')", {}, NOON + 5_000),
        ("deadline", {"deadline": "2026-12-01T12:00:07Z"}, NOON + 7_000),  # a variable holding RFC 3339
        ("duration('90s')", {}, NOON + 90_000),  # from when the delay starts
        ("duration(string(hours) + 'h')", {"hours": 2}, NOON + 7_200_000),
    ],
)
def test_a_delay_until_a_cel_time_waits_until_then(until: str, variables: dict[str, Any], due: int) -> None:
    run = start(
        definition({"key": "d", "type": "delay", "until": until, "next": "e"}, {"key": "e", "type": "end"}), variables
    )

    step = run.drive(now=NOON)

    assert step == Sleep(run.state.stack[0], due)
    assert isinstance(run.drive(now=due), ThreadEnded)
    assert run.state.memory.node_outputs["d"] == {"status": "success", "data": {"delayedMs": due - NOON}}


def test_a_time_that_is_no_time_fails_the_delay() -> None:
    run = start(definition({"key": "d", "type": "delay", "until": "'next tuesday'"}))

    step = run.drive(now=NOON)

    assert isinstance(step, ElementFailed) and step.error_type == "ExpressionError"
    assert "no RFC 3339 time" in step.error


def test_a_wait_until_a_cel_time_times_out_then() -> None:
    element = {**APPROVAL, "timeoutMs": None, "timeoutAt": "timestamp(sla)"}
    run = start(definition(element, *AFTER), {"sla": "2026-12-01T12:01:00Z"})

    step = run.drive(now=NOON)

    assert isinstance(step, AwaitSignal) and step.until_ms == NOON + 60_000
    assert isinstance(run.drive(now=NOON + 60_000), ThreadEnded)
    assert run.variables["path"] == "escalate"


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ({"key": "d", "type": "delay"}, "a delay takes durationMs or until"),
        (
            {"key": "d", "type": "delay", "durationMs": 5, "until": "duration('1s')"},
            "a delay takes durationMs or until",
        ),
        (
            {"key": "w", "type": "wait-signal", "signal": "s", "timeoutMs": 5, "timeoutAt": "duration('1s')"},
            "a wait takes timeoutMs or timeoutAt, not both",
        ),
    ],
)
def test_one_way_to_say_when(element: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        definition(element)
