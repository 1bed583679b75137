"""Limits, each configurable, each answered with a clear error: definition elements (422), start variables
(422), a signal's size (413) and the signals waiting in one execution (422), starts per tenant per second
(429 with Retry-After, over REST)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from procengine.api.views import StartRequest
from procengine.errors import PayloadTooLarge, TooManyRequests, ValidationFailed
from procengine.http.app import create_app
from tests.support.api import BASE
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.processes import definition

WAITING = definition({"key": "w", "type": "wait-signal", "signal": "go"}, key="waiting")


def _chain(count: int) -> dict[str, Any]:
    steps = [{"key": f"e{i}", "type": "set-variable", "set": {"x": "1"}, "next": f"e{i + 1}"} for i in range(count)]
    steps[-1].pop("next")
    return definition(*steps, key="big")


async def test_a_definition_over_the_element_limit_is_refused_with_its_other_problems(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(max_definition_elements=3)
    body = definition(
        {"key": "a", "type": "set-variable", "set": {"x": "1"}, "next": "b"},
        {
            "key": "b",
            "type": "for-each",
            "items": "[1]",
            "body": {"elements": [{"key": "c", "type": "end"}]},
            "next": "d",
        },
        {"key": "d", "type": "end", "next": "nowhere"},
    )
    with pytest.raises(ValidationFailed) as refused:
        await engine.register_process(CALLER, body)
    assert "the definition has 4 elements; at most 3 (--max-definition-elements)" in refused.value.details
    assert len(refused.value.details) >= 2  # the element's own problem is listed in the same answer
    summary, _ = await engine.register_process(CALLER, _chain(3))
    assert summary.version == 1


async def test_too_many_start_variables_are_refused(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_variables=2)
    summary, _ = await engine.register_process(CALLER, WAITING)
    with pytest.raises(ValidationFailed) as refused:
        await engine.start_execution(
            CALLER, StartRequest(processID=summary.processID, variables={"a": 1, "b": 2, "c": 3})
        )
    assert refused.value.details == ["variables: 3, with those the definition writes 3; at most 2 (--max-variables)"]


async def test_the_variables_a_definition_writes_count_against_the_limit(make_engine: EngineFactory) -> None:
    """An execution never holds more than --max-variables: a definition that writes more is refused at
    registration (422), and a start whose variables and the definition's together would be more, at start."""
    engine = await make_engine(max_variables=3)
    four = definition({"key": "s", "type": "set-variable", "set": {"a": "1", "b": "2", "c": "3", "d": "4"}})
    with pytest.raises(ValidationFailed) as refused:
        await engine.register_process(CALLER, four)
    assert refused.value.details == ["the definition writes 4 variables; at most 3 (--max-variables)"]
    two = definition({"key": "s", "type": "set-variable", "set": {"a": "1", "b": "2"}}, key="two")
    summary, _ = await engine.register_process(CALLER, two)
    await engine.start_execution(CALLER, StartRequest(processID=summary.processID, variables={"a": 0, "z": 1}))
    with pytest.raises(ValidationFailed):
        await engine.start_execution(CALLER, StartRequest(processID=summary.processID, variables={"y": 0, "z": 1}))


async def test_a_big_signal_is_413_and_signals_past_the_waiting_limit_are_422(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_signal_bytes=100, max_pending_signals=2)
    # `other` is for a wait after this one: signals of that name wait until it comes
    later = {"key": "later", "type": "wait-signal", "signal": "other"}
    execution_id = await start(engine, definition({**WAITING["threads"][0]["elements"][0], "next": "later"}, later))
    await wait_element(engine, execution_id, "w")
    with pytest.raises(PayloadTooLarge, match="--max-signal-bytes"):
        await engine.signal(CALLER, execution_id, "other", "x" * 200)
    await engine.signal(CALLER, execution_id, "other", 1)
    await engine.signal(CALLER, execution_id, "other", 2)
    with pytest.raises(ValidationFailed, match="signal not stored") as refused:
        await engine.signal(CALLER, execution_id, "other", 3)
    assert refused.value.details == ["at most 2 signals may wait (--max-pending-signals)"]
    state = await engine.state(CALLER, execution_id)
    assert state.memory["signals"] == {"other": [1, 2]}


async def test_starts_over_the_tenant_s_rate_are_429_with_retry_after(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_starts_per_second=3)
    summary, _ = await engine.register_process(CALLER, WAITING)
    app = create_app(engine, engine.settings)
    async with TestClient(TestServer(app)) as client:
        answers = []
        for _ in range(8):
            response = await client.post(BASE + "/executions/processes", json={"processID": summary.processID})
            answers.append((response.status, response.headers.get("Retry-After"), (await response.json())))
    statuses = [status for status, _, _ in answers]
    assert statuses.count(201) >= 3 and 429 in statuses  # a second boundary may fall in between
    limited = next(body for status, _, body in answers if status == 429)
    assert limited["error"]["code"] == "RATE_LIMITED" and "--max-starts-per-second" in limited["error"]["message"]
    assert all(after == "1" for status, after, _ in answers if status == 429)
    assert TooManyRequests.status == 429


async def test_an_expression_over_its_cost_fails_its_element_with_limit_exceeded_which_catch_takes(
    make_engine: EngineFactory,
) -> None:
    """A definition's CEL runs on the event loop every execution shares: one that would run for seconds over a
    big list is refused before it starts, as a catchable failure of its element, not a node stalled."""
    engine = await make_engine(max_expression_cost=10_000)
    body = definition(
        {
            "key": "double",
            "type": "set-variable",
            "set": {"doubled": "xs.map(a, a * 2)"},
            "catch": [{"errors": ["LimitExceeded"], "next": "small", "into": "why"}],
            "next": "done",
        },
        {"key": "small", "type": "set-variable", "set": {"doubled": "xs.exists(a, a < 0)"}, "next": "done"},
        {"key": "done", "type": "end"},
        key="costly",
    )
    execution_id = await start(engine, body, {"xs": list(range(101))})  # 101^2 > 10,000 >= 101
    assert await wait_status(engine, execution_id, "completed") == "completed"
    variables = (await engine.state(CALLER, execution_id)).memory["variables"]
    assert variables["doubled"] is False
    assert variables["why"]["type"] == "LimitExceeded"
    assert "--max-expression-cost 10,000" in variables["why"]["error"]
