"""Registering definitions: versions, validation, and executions keeping their version."""

from __future__ import annotations

import pytest

from procengine.api.service import Caller
from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import NotFound, ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER
from tests.support.processes import definition

V1 = definition({"key": "w", "type": "wait-signal", "signal": "go"}, key="orders")
V2 = definition(
    {"key": "w", "type": "wait-signal", "signal": "go", "next": "e"}, {"key": "e", "type": "end"}, key="orders"
)


async def test_a_changed_body_is_a_new_version_and_running_executions_keep_theirs(engine: Node) -> None:
    first, created = await engine.register_process(CALLER, V1)
    assert (first.version, created) == (1, True)
    old_run, _ = await engine.start_execution(CALLER, StartRequest(processKey="orders"))

    same, created_again = await engine.register_process(CALLER, V1)
    second, created_v2 = await engine.register_process(CALLER, V2)
    new_run, _ = await engine.start_execution(CALLER, StartRequest(processKey="orders"))

    assert (same.processID, same.version, created_again) == (first.processID, 1, False)
    assert (second.version, created_v2) == (2, True) and second.processID != first.processID
    assert (await engine.status(CALLER, old_run.executionID)).processVersion == 1
    assert (await engine.status(CALLER, new_run.executionID)).processVersion == 2
    assert [p.version for p in (await engine.list_processes(CALLER)).items] == [1, 2]


async def test_an_invalid_definition_is_refused_with_every_problem(engine: Node) -> None:
    bad = definition(
        {"key": "a", "type": "task", "handler": "nope", "next": "ghost"},
        {"key": "b", "type": "if-condition", "condition": "1 +", "then": "a"},
    )
    with pytest.raises(ValidationFailed) as refused:
        await engine.register_process(CALLER, bad)
    text = " | ".join(refused.value.problems)
    assert "unknown handler 'nope'" in text and "missing element 'ghost'" in text
    assert "unreachable" in text and "bad CEL" in text


async def test_processes_and_executions_are_invisible_to_other_tenants(engine: Node) -> None:
    summary, _ = await engine.register_process(CALLER, V1)
    run, _ = await engine.start_execution(CALLER, StartRequest(processID=summary.processID))
    other = Caller(tenant="other", by="other", request_id="r")

    with pytest.raises(NotFound):
        await engine.get_process(other, summary.processID)
    with pytest.raises(NotFound):
        await engine.start_execution(other, StartRequest(processKey="orders"))
    with pytest.raises(NotFound):
        await engine.status(other, run.executionID)
    assert (await engine.list_processes(other)).items == []
    assert (await engine.list_executions(other, status=None, process_id=None, limit=10, cursor=None)).items == []


async def test_an_idempotency_key_returns_the_first_execution(engine: Node) -> None:
    summary, _ = await engine.register_process(CALLER, V1)
    request = StartRequest(processID=summary.processID, idempotencyKey="order-7")

    first, created = await engine.start_execution(CALLER, request)
    again, created_again = await engine.start_execution(CALLER, request)

    assert created and not created_again and again.executionID == first.executionID
    listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=10, cursor=None)
    assert [e.executionID for e in listed.items] == [first.executionID]


async def test_the_list_pages_newest_first_and_filters(engine: Node) -> None:
    summary, _ = await engine.register_process(CALLER, V1)
    ids = [
        (await engine.start_execution(CALLER, StartRequest(processID=summary.processID)))[0].executionID
        for _ in range(5)
    ]
    await engine.pause(CALLER, ids[1], ControlRequest())

    page1 = await engine.list_executions(CALLER, status=None, process_id=None, limit=2, cursor=None)
    page2 = await engine.list_executions(CALLER, status=None, process_id=None, limit=2, cursor=page1.nextCursor)
    page3 = await engine.list_executions(CALLER, status=None, process_id=None, limit=2, cursor=page2.nextCursor)
    paused = await engine.list_executions(CALLER, status="paused", process_id=None, limit=10, cursor=None)

    assert [e.executionID for e in page1.items + page2.items + page3.items] == ids[::-1]
    assert page3.nextCursor is None
    assert [e.executionID for e in paused.items] == [ids[1]] and paused.nextCursor is None
