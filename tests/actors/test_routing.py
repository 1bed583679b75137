"""Any node answers any request: a write for an execution another live node drives is forwarded to that
node's actor through Redis, and the answer is the actor's own."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import ControlRequest
from procengine.errors import InvalidTransition, NotFound, Unavailable, ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, Gate, events, start, wait_element, wait_status
from tests.support.processes import definition

WAIT = definition(
    {"key": "first", "type": "set-variable", "set": {"a": "1"}, "next": "approve"},
    {"key": "approve", "type": "wait-signal", "signal": "go", "into": "go", "next": "done"},
    {"key": "done", "type": "end"},
)
VIA_B = Caller(tenant="default", by="default", request_id="via-b")


async def _two_nodes(make_engine: EngineFactory, **settings: object) -> tuple[Node, Node]:
    a, b = await make_engine(**settings), await make_engine(**settings)
    await asyncio.gather(a.router.serving.wait(), b.router.serving.wait())
    return a, b


async def test_start_on_a_then_pause_resume_signal_cancel_on_b(make_engine: EngineFactory) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(a, WAIT)
    await wait_element(a, execution_id, "approve")

    paused = await b.pause(VIA_B, execution_id, ControlRequest(reason="from b"))
    assert paused.status == "paused" and paused.completedNodes == 1 and paused.totalNodes == 3
    resumed = await b.resume(VIA_B, execution_id, ControlRequest())
    assert resumed.status == "running" and resumed.pendingNodes == 1
    signalled = await b.signal(VIA_B, execution_id, "go", {"ok": True})
    assert signalled.signal == "go"
    assert await wait_status(a, execution_id, "completed") == "completed"

    # A's actor did it all: one owner, the log names B's request ids
    fields = await a.store.fields(execution_id)
    assert fields["owner"] == a.node_id and fields["epoch"] == "1"
    log = (await a.log(CALLER, execution_id)).items
    paused_entry = next(e for e in log if e.event == "paused")
    assert (paused_entry.detail["requestId"], paused_entry.detail["reason"]) == ("via-b", "from b")
    assert [e.event for e in log].count("signal-received") == 1

    second = await start(a, WAIT)
    await wait_element(a, second, "approve")
    cancelled = await b.cancel(VIA_B, second, ControlRequest(reason="no"))
    assert cancelled.status == "cancelled"
    assert (await a.status(CALLER, second)).status == "cancelled"


async def test_a_refusal_comes_back_as_the_owners_409_and_is_logged_once(make_engine: EngineFactory) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(a, WAIT)
    await wait_element(a, execution_id, "approve")

    with pytest.raises(InvalidTransition) as refused:
        await b.resume(VIA_B, execution_id, ControlRequest(reason="twice"))

    assert refused.value.current_status == "running" and refused.value.status == 409
    assert refused.value.message == "cannot resume an execution that is running"
    assert [e for e, _ in await events(a, execution_id)].count("refused") == 1


async def test_another_tenants_execution_is_not_found_on_the_node_asked(make_engine: EngineFactory) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(a, WAIT)
    with pytest.raises(NotFound):
        await b.pause(Caller("other", "other", "r"), execution_id, ControlRequest())
    assert "refused" not in [e for e, _ in await events(a, execution_id)]


async def test_concurrent_resumes_through_both_nodes_exactly_one_wins(make_engine: EngineFactory) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(a, WAIT)
    await wait_element(a, execution_id, "approve")
    await a.pause(CALLER, execution_id, ControlRequest())

    results = await asyncio.gather(
        *(node.resume(CALLER, execution_id, ControlRequest()) for node in (a, b, a, b, b)), return_exceptions=True
    )

    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert all(isinstance(r, InvalidTransition) for r in results if isinstance(r, BaseException))
    assert [e for e, _ in await events(a, execution_id)].count("resumed") == 1


async def test_a_request_the_owner_does_not_answer_in_time_is_503_and_never_applied_afterwards(
    make_engine: EngineFactory,
) -> None:
    # given an owner whose inbox reader is stopped (a node too busy or cut off to read it)
    a, b = await _two_nodes(make_engine, redis_timeout_s=0.5, pause_grace_ms=100)
    execution_id = await start(a, WAIT)
    await wait_element(a, execution_id, "approve")
    reader = next(task for task in a._background if task.get_name() == "inbox")
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)

    # when B forwards a pause, then B answers 503 with Retry-After once the wait is over
    with pytest.raises(Unavailable) as timed_out:
        await b.pause(VIA_B, execution_id, ControlRequest())
    assert timed_out.value.retry_after_s == 1 and "did not answer" in timed_out.value.message

    # and when the owner reads its inbox again, the late pause is not applied: the deadline passed
    a.router.serving.clear()
    a._background.append(asyncio.create_task(a.router.serve_forever(a._serve_forwarded), name="inbox"))
    await a.router.serving.wait()
    await b.signal(VIA_B, execution_id, "go", 1)  # a request behind it in the same inbox, answered
    assert await wait_status(a, execution_id, "completed") == "completed"
    assert "paused" not in [e for e, _ in await events(a, execution_id)]


async def test_a_signal_with_an_idempotency_key_is_delivered_once_whichever_node_gets_it(
    make_engine: EngineFactory,
) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(
        a,
        definition(
            {"key": "w", "type": "wait-signal", "signal": "late", "next": "g"},
            {"key": "g", "type": "wait-signal", "signal": "go", "next": "e"},  # `go` waits for it, kept meanwhile
            END,
        ),
    )
    await wait_element(a, execution_id, "w")

    first = await b.signal(VIA_B, execution_id, "go", {"n": 1}, "sig-1")
    again_b = await b.signal(VIA_B, execution_id, "go", {"n": 1}, "sig-1")
    again_a = await a.signal(CALLER, execution_id, "go", {"n": 1}, "sig-1")
    other = await a.signal(CALLER, execution_id, "go", {"n": 2}, "sig-2")

    assert first == again_b == again_a and other.signal == "go"
    state = await a.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["signals"] == {"go": [{"n": 1}, {"n": 2}]}
    assert [e for e, _ in await events(a, execution_id)].count("signal-received") == 2


async def test_a_signal_its_owner_refuses_as_untakeable_is_422_on_the_node_that_forwarded_it(
    make_engine: EngineFactory,
) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(a, definition({"key": "w", "type": "wait-signal", "signal": "late", "next": "e"}, END))
    await wait_element(a, execution_id, "w")

    with pytest.raises(ValidationFailed, match="cannot take signal 'soon'") as refused:
        await b.signal(VIA_B, execution_id, "soon", 1)

    assert refused.value.details == ["signal: 'soon' is not a signal this execution waits for (it waits for 'late')"]
    assert b.registry.get(execution_id) is None  # answered by the owner, a
    [blocked] = (await b.status(VIA_B, execution_id)).blockedOn  # read from Redis on b: the same as a says
    assert blocked == (await a.status(CALLER, execution_id)).blockedOn[0]


END = {"key": "e", "type": "end"}


async def test_an_owner_that_dies_mid_request_gives_a_503_then_the_execution_is_taken_over(
    make_engine: EngineFactory, gate: Gate
) -> None:
    from tests.support.nodes import crash

    a, b = await _two_nodes(make_engine, redis_timeout_s=0.5)
    execution_id = await start(a, definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, END))
    await gate.entered.wait()
    await crash(a)  # kill -9 as the others see it: no answer, no writes, heartbeat left to expire

    with pytest.raises(Unavailable):
        await b.pause(VIA_B, execution_id, ControlRequest())
    # once A's heartbeat is gone, B takes it (the reconciler or the next request) and the pause works there
    gate.release.set()
    async with asyncio.timeout(10):
        while True:
            try:
                paused = await b.pause(VIA_B, execution_id, ControlRequest())
                break
            except Unavailable:
                await asyncio.sleep(0.05)
            except InvalidTransition:  # the adopted task finished first and the execution completed
                paused = None
                break
    assert paused is None or paused.status == "paused"
    assert (await b.store.fields(execution_id))["owner"] == b.node_id


async def test_forwarded_requests_do_not_forward_again(make_engine: EngineFactory, redis: Redis) -> None:
    a, b = await _two_nodes(make_engine)
    execution_id = await start(a, WAIT)
    await wait_element(a, execution_id, "approve")
    # given A asked to serve a request for an execution that (now) belongs to B
    await a.registry.stop_all()
    fields = await a.store.fields(execution_id)
    await a.store.takeover(
        execution_id, owner=b.node_id, expected_owner=fields["owner"], expected_epoch=int(fields["epoch"]), log=None
    )
    from procengine.actors.messages import Command

    with pytest.raises(Unavailable):
        await a._serve_forwarded(execution_id, Command("pause", CALLER))
