"""Repair, same execution id (issue 20): retry a failed execution, edit a paused one's variables; against a real
Redis. The HTTP side is in tests/http/test_repair_routes.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import ControlRequest, RetryRequest
from procengine.errors import InvalidTransition, NotFound, PayloadTooLarge, ValidationFailed
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, Gate, crash, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

CALLS: dict[str, int] = {}


async def _count(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["count"] = CALLS.get("count", 0) + 1
    return {"counted": CALLS["count"]}


async def _needs_ok(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["needs_ok"] = CALLS.get("needs_ok", 0) + 1
    if task_input.get("ok") is not True:
        raise RuntimeError(f"not ok: {task_input.get('ok')!r}")
    return {"done": True}


FLAKY = definition(
    {"key": "first", "type": "task", "handler": "count", "next": "check"},
    {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "next": "done",
     "retry": {"maxAttempts": 2, "backoffMs": 1}},
    {"key": "done", "type": "end"},
)  # fmt: skip


@pytest.fixture(autouse=True)
def _handlers(handlers: HandlerRegistry) -> None:
    CALLS.clear()
    handlers.register("count", _count)
    handlers.register("needs_ok", _needs_ok)


async def failed_execution(engine: Node, ok: Any = False) -> int:
    execution_id = await start(engine, FLAKY, {"ok": ok})
    assert await wait_status(engine, execution_id, "failed") == "failed"
    return execution_id


async def log_of(engine: Node, execution_id: int, event: str) -> list[dict[str, Any]]:
    return [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == event]


async def test_retry_goes_on_from_the_failed_element_with_the_patch_applied(engine: Node, redis: Redis) -> None:
    execution_id = await failed_execution(engine)
    assert CALLS == {"count": 1, "needs_ok": 2}
    keys = engine.keys.execution(execution_id)
    assert await redis.pttl(keys.execution) > 0  # the failure started its retention
    removals = engine.keys.removals("default")
    assert await redis.zcard(removals) == 1

    retried = await engine.retry(
        CALLER, execution_id, RetryRequest(variables={"ok": True, "note": "fixed"}, reason="data fixed")
    )

    assert (retried.status, retried.retried) == ("running", ["check"])
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"count": 1, "needs_ok": 3}  # `first` did not run again; `check` once more
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert (records["check"].status, records["check"].attempts) == ("completed", 1)  # attempts reset
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["variables"] == {"ok": True, "note": "fixed"}
    [entry] = await log_of(engine, execution_id, "retried")
    assert (entry["from"], entry["to"], entry["by"], entry["reason"]) == ("failed", "running", "default", "data fixed")
    assert entry["requestId"] == "req-test"
    assert entry["reset"] == [{"element": "check", "thread": "main", "attempts": 2}]
    assert entry["variables"] == {"before": {"ok": False}, "after": {"ok": True, "note": "fixed"}}
    [before], [after] = entry["stack"]["before"], entry["stack"]["after"]  # the one entry the retry changed
    assert (before["element_key"], before["attempt"]) == (after["element_key"], 2) == ("check", 2)
    assert after["attempt"] == 1 and after["execution_order"] > before["execution_order"]
    status = await engine.status(CALLER, execution_id)
    assert (status.progress.failedNodes, status.error) == (0, None)


async def test_a_retried_execution_is_live_again_its_retention_undone(engine: Node, redis: Redis) -> None:
    gate = Gate()
    engine.ctx.handlers.register("hold", gate.run)
    process = definition(
        {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "next": "hold"},
        {"key": "hold", "type": "task", "handler": "hold"},
        key="held",
    )
    execution_id = await start(engine, process, {"ok": False})
    assert await wait_status(engine, execution_id, "failed") == "failed"

    await engine.retry(CALLER, execution_id, RetryRequest(variables={"ok": True}))
    await asyncio.wait_for(gate.entered.wait(), 10)

    keys = engine.keys.execution(execution_id)
    for key in keys.all():
        assert await redis.pttl(key) in (-1, -2), key  # kept for good (-2: a hash not written yet)
    assert await redis.pttl(keys.execution) == -1
    assert await redis.zcard(engine.keys.removals("default")) == 0  # the sweeper will not unlist it
    assert await redis.zscore(engine.keys.status_index("default", "running"), str(execution_id)) is not None
    assert await redis.zscore(engine.keys.status_index("default", "failed"), str(execution_id)) is None
    assert str(execution_id).encode() in await redis.smembers(engine.keys.active)
    listed = await engine.list_executions(CALLER, status="running", process_id=None, limit=10, cursor=None)
    assert [item.executionID for item in listed.items] == [execution_id]
    gate.release.set()
    assert await wait_status(engine, execution_id, "completed") == "completed"


@pytest.mark.parametrize("source", ["running", "paused", "completed", "cancelled"])
async def test_retry_is_refused_unless_failed(engine: Node, source: str) -> None:
    if source == "completed":
        execution_id = await start(engine, FLAKY, {"ok": True})
        await wait_status(engine, execution_id, "completed")
    else:
        execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
        await wait_element(engine, execution_id, "w")
        if source != "running":
            verb = engine.pause if source == "paused" else engine.cancel
            await verb(CALLER, execution_id, ControlRequest())

    with pytest.raises(InvalidTransition) as refused:
        await engine.retry(CALLER, execution_id, RetryRequest(reason="try"))

    assert refused.value.current_status == source and source in refused.value.message
    [entry] = await log_of(engine, execution_id, "refused")
    assert (entry["command"], entry["from"], entry["reason"]) == ("retry", source, "try")
    assert (await engine.status(CALLER, execution_id)).status == source


async def test_a_retry_with_an_idempotency_key_applies_once(engine: Node) -> None:
    execution_id = await failed_execution(engine)

    first = await engine.retry(CALLER, execution_id, RetryRequest(variables={"ok": True}, idempotencyKey="k1"))
    await wait_status(engine, execution_id, "completed")
    again = await engine.retry(CALLER, execution_id, RetryRequest(variables={"ok": True}, idempotencyKey="k1"))

    assert again == first
    assert len(await log_of(engine, execution_id, "retried")) == 1
    with pytest.raises(InvalidTransition):  # another key is another retry: refused, it is completed
        await engine.retry(CALLER, execution_id, RetryRequest(idempotencyKey="k2"))


async def test_a_retry_that_fails_again_can_be_retried_again(engine: Node) -> None:
    execution_id = await failed_execution(engine)

    await engine.retry(CALLER, execution_id, RetryRequest())  # same variables: it fails again
    assert await wait_status(engine, execution_id, "failed") == "failed"
    await engine.retry(CALLER, execution_id, RetryRequest(variables={"ok": True}))

    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"count": 1, "needs_ok": 5}
    assert len(await log_of(engine, execution_id, "retried")) == 2


async def test_repairs_are_tenant_isolated(engine: Node) -> None:
    execution_id = await failed_execution(engine)
    other = Caller(tenant="other", by="other", request_id="req-other")

    with pytest.raises(NotFound):
        await engine.retry(other, execution_id, RetryRequest())
    with pytest.raises(NotFound):
        await engine.edit_variables(other, execution_id, {"ok": True})

    assert (await engine.status(CALLER, execution_id)).status == "failed"
    assert await log_of(engine, execution_id, "refused") == []


async def test_retry_races_a_cancel(make_engine: EngineFactory) -> None:
    """A retry and a cancel of one failed execution, at once, on two nodes: they are serialised by the owner's actor
    (or the status in Redis): either the cancel comes first and is refused (failed), or it cancels the retried run."""
    first, second = await make_engine(), await make_engine()
    gate = Gate()
    first.ctx.handlers.register("hold", gate.run)
    process = definition(
        {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "next": "hold"},
        {"key": "hold", "type": "task", "handler": "hold"},
        key="held",
    )
    for _ in range(3):
        execution_id = await start(first, process, {"ok": False})
        assert await wait_status(first, execution_id, "failed") == "failed"

        retried, cancelled = await asyncio.gather(
            first.retry(CALLER, execution_id, RetryRequest(variables={"ok": True})),
            second.cancel(CALLER, execution_id, ControlRequest()),
            return_exceptions=True,
        )

        assert not isinstance(retried, BaseException), retried
        events = [e.event for e in (await first.log(CALLER, execution_id)).items]
        if isinstance(cancelled, InvalidTransition):  # the cancel came first
            assert cancelled.current_status == "failed"
            assert events.index("refused") < events.index("retried")
            gate.release.set()
            assert await wait_status(first, execution_id, "completed") == "completed"
            gate.release.clear()
        else:
            assert not isinstance(cancelled, BaseException), cancelled
            assert events.index("retried") < events.index("cancelled")
            assert await wait_status(first, execution_id, "cancelled") == "cancelled"
        assert events.count("retried") == 1


async def test_retry_through_the_parent_retries_its_failed_child_in_place(engine: Node) -> None:
    await engine.register_process(CALLER, definition(
        {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}}, key="child"
    ))  # fmt: skip
    parent_def = definition(
        {"key": "call", "type": "call-process", "process": "child", "input": {"ok": "ok"}, "next": "done"},
        {"key": "done", "type": "end"},
        key="parent",
    )
    parent = await start(engine, parent_def, {"ok": False})
    assert await wait_status(engine, parent, "failed") == "failed"
    [child] = (await engine.status(CALLER, parent)).children
    assert (await engine.status(CALLER, child)).status == "failed"
    # the child's variables came from the parent's call: an operator retries the child with them fixed
    await engine.retry(CALLER, child, RetryRequest(variables={"ok": True}))
    assert await wait_status(engine, child, "completed") == "completed"

    retried = await engine.retry(CALLER, parent, RetryRequest(reason="child fixed"))

    assert retried.retried == ["call"]
    assert await wait_status(engine, parent, "completed") == "completed"
    assert (await engine.status(CALLER, parent)).children == [child]  # no second child
    [entry] = await log_of(engine, parent, "retried")
    assert entry["reset"][0]["child"] == "taken"


async def test_retry_of_the_parent_retries_the_failed_child(engine: Node) -> None:
    gate = Gate()
    engine.ctx.handlers.register("hold", gate.run)
    await engine.register_process(CALLER, definition(
        {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "next": "hold"},
        {"key": "hold", "type": "task", "handler": "hold"},
        key="child",
    ))  # fmt: skip
    parent_def = definition(
        {"key": "call", "type": "call-process", "process": "child", "input": {"ok": "ok"}, "next": "done"},
        {"key": "done", "type": "end"},
        key="parent",
    )
    parent = await start(engine, parent_def, {"ok": False})
    assert await wait_status(engine, parent, "failed") == "failed"
    [child] = (await engine.status(CALLER, parent)).children

    retried = await engine.retry(CALLER, parent, RetryRequest())

    assert retried.retriedChildren == [child]
    assert (await engine.status(CALLER, child)).status in ("running", "failed")  # same input: it fails again
    assert await wait_status(engine, child, "failed") == "failed"
    assert await wait_status(engine, parent, "failed") == "failed"
    [entry] = await log_of(engine, parent, "retried")
    assert entry["reset"][0]["child"] == "retried"
    [child_entry] = await log_of(engine, child, "retried")
    assert child_entry["by"] == f"execution {parent}"


async def test_a_retried_execution_is_adopted_when_its_node_dies(make_engine: EngineFactory) -> None:
    first = await make_engine()
    gate = Gate()
    first.ctx.handlers.register("hold", gate.run)
    process = definition(
        {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "next": "hold"},
        {"key": "hold", "type": "task", "handler": "hold", "next": "done"},
        {"key": "done", "type": "end"},
        key="held",
    )
    execution_id = await start(first, process, {"ok": False})
    assert await wait_status(first, execution_id, "failed") == "failed"
    await first.retry(CALLER, execution_id, RetryRequest(variables={"ok": True}))
    await asyncio.wait_for(gate.entered.wait(), 10)

    await crash(first)
    gate.release.set()  # the cut-short attempt ran on the dead node; the adopter runs it again
    second = await make_engine()

    assert await wait_status(second, execution_id, "completed", within=15) == "completed"
    events = [e.event for e in (await second.log(CALLER, execution_id)).items]
    assert events.count("retried") == 1 and "adopted" in events
    assert CALLS["needs_ok"] == 2


async def test_a_failed_execution_whose_node_died_is_retried_on_another(make_engine: EngineFactory) -> None:
    first = await make_engine()
    execution_id = await failed_execution(first, ok=False)
    await crash(first)
    second = await make_engine()

    async def retried() -> bool:
        try:
            await second.retry(CALLER, execution_id, RetryRequest(variables={"ok": True}, idempotencyKey="after"))
        except Exception:  # the dead node's heartbeat has not expired yet: forwarded to it, unanswered
            return False
        return True

    await poll(retried, lambda done: done, within=15)
    assert await wait_status(second, execution_id, "completed") == "completed"


# --- edit while paused -------------------------------------------------------------------------

WAIT = definition(
    {"key": "w", "type": "wait-signal", "signal": "s", "next": "use"},
    {"key": "use", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "done"},
    {"key": "done", "type": "end"},
    key="wait",
)


async def paused_execution(engine: Node, variables: dict[str, Any]) -> int:
    execution_id = await start(engine, WAIT, variables)
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    return execution_id


async def test_edit_merge_patches_a_paused_executions_variables(engine: Node) -> None:
    execution_id = await paused_execution(engine, {"amount": 1, "drop": "x", "nested": {"a": 1, "b": 2}})

    edited = await engine.edit_variables(
        CALLER, execution_id, {"amount": 21, "drop": None, "nested": {"b": None, "c": 3}}, "typo"
    )

    assert edited.status == "paused" and edited.changed == ["amount", "drop", "nested"]
    assert edited.variables == {"amount": 21, "nested": {"a": 1, "c": 3}}
    assert (await engine.status(CALLER, execution_id)).status == "paused"
    [entry] = await log_of(engine, execution_id, "variables-changed")
    assert (entry["by"], entry["reason"], entry["requestId"]) == ("default", "typo", "req-test")
    assert entry["variables"] == {
        "before": {"amount": 1, "drop": "x", "nested": {"a": 1, "b": 2}},
        "after": {"amount": 21, "nested": {"a": 1, "c": 3}},
    }
    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "s", None)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["variables"]["total"] == 42


@pytest.mark.parametrize("source", ["running", "failed"])
async def test_edit_is_refused_unless_paused(engine: Node, source: str) -> None:
    if source == "failed":
        execution_id = await failed_execution(engine)
    else:
        execution_id = await start(engine, WAIT, {"amount": 1})
        await wait_element(engine, execution_id, "w")

    with pytest.raises(InvalidTransition) as refused:
        await engine.edit_variables(CALLER, execution_id, {"amount": 2})

    assert refused.value.current_status == source
    assert await log_of(engine, execution_id, "variables-changed") == []
    [entry] = await log_of(engine, execution_id, "refused")
    assert (entry["command"], entry["from"], entry["to"]) == ("edit", source, "paused")


async def test_edit_is_validated_like_a_start(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_variables=3, max_snapshot_bytes=65_536)
    execution_id = await paused_execution(engine, {"amount": 1})  # `total` is written by the definition: 2 held

    with pytest.raises(ValidationFailed):
        await engine.edit_variables(CALLER, execution_id, ["not", "an", "object"])
    with pytest.raises(ValidationFailed) as too_many:
        await engine.edit_variables(CALLER, execution_id, {"b": 1, "c": 2})
    assert "--max-variables" in too_many.value.problems[0]
    with pytest.raises(PayloadTooLarge):
        await engine.edit_variables(CALLER, execution_id, {"big": "x" * 70_000})
    with pytest.raises(PayloadTooLarge):  # each value fits alone, not together in the memory
        await engine.edit_variables(CALLER, execution_id, {"big": "x" * 60_000})

    await engine.edit_variables(CALLER, execution_id, {"b": 1})  # within the limits
    unchanged = await engine.edit_variables(CALLER, execution_id, {"b": 1})  # as it is: nothing written
    assert unchanged.changed == []
    assert len(await log_of(engine, execution_id, "variables-changed")) == 1


async def test_an_edit_reaches_the_owner_on_another_node(make_engine: EngineFactory) -> None:
    first, second = await make_engine(), await make_engine()
    execution_id = await start(first, WAIT, {"amount": 1})
    await wait_element(first, execution_id, "w")
    await first.pause(CALLER, execution_id, ControlRequest())
    await wait_status(first, execution_id, "paused")
    await first.edit_variables(CALLER, execution_id, {"amount": 2})  # activates it here if it passivated

    edited = await second.edit_variables(CALLER, execution_id, {"amount": 3})

    assert edited.variables == {"amount": 3}
    state = await first.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["variables"] == {"amount": 3}
    assert len(await log_of(first, execution_id, "variables-changed")) == 2


async def test_a_retry_patch_is_validated_like_a_start(engine: Node) -> None:
    execution_id = await failed_execution(engine)
    with pytest.raises(PayloadTooLarge):
        await engine.retry(CALLER, execution_id, RetryRequest(variables={"big": "x" * 3_000_000}))
    assert (await engine.status(CALLER, execution_id)).status == "failed"
