"""call-process on a real engine: a child execution started once and waited for, its variables as the element's
output, its failure the element's (ChildFailed, catchable), pause/resume/cancel of the parent passed on to it,
the link in both status answers, and a parent adopted by another node after a crash."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.api.views import ControlRequest
from procengine.errors import InvalidTransition, ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, Gate, child_of, crash, start, wait_status
from tests.support.processes import KYC, definition, parent


async def test_a_parent_waits_for_its_child_and_takes_its_variables(engine: Node, gate: Gate) -> None:
    await engine.register_process(CALLER, KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "ada"}})
    child_id = await child_of(engine, parent_id)

    child = await engine.status(CALLER, child_id)
    assert child.parentExecutionID == parent_id and child.processKey == "kyc"
    assert (await engine.status(CALLER, parent_id)).status == "running"
    listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=10, cursor=None)
    assert {item.executionID: item.parentExecutionID for item in listed.items}[child_id] == parent_id
    gate.release.set()

    assert await wait_status(engine, parent_id, "completed") == "completed"
    state = await engine.state(CALLER, parent_id)
    assert state.memory["variables"]["kyc"] == {"customer": "ada", "checked": {"gated": True, "who": "ada"}}
    assert state.memory["variables"]["done"] is True
    log = (await engine.log(CALLER, parent_id)).items
    assert [entry.detail["childExecutionID"] for entry in log if entry.event == "child-started"] == [child_id]
    assert gate.calls == 1


async def test_a_result_expression_selects_from_the_childs_variables(engine: Node, gate: Gate) -> None:
    gate.release.set()
    await engine.register_process(CALLER, KYC)
    parent_id = await start(engine, parent(result="checked.who"), {"order": {"customer": "bo"}})
    assert await wait_status(engine, parent_id, "completed") == "completed"
    assert (await engine.state(CALLER, parent_id)).memory["variables"]["kyc"] == "bo"


WAITING_KYC = definition(
    {"key": "approve", "type": "wait-signal", "signal": "approved", "into": "approval"},
    key="kyc",
)


async def test_pause_and_resume_of_the_parent_reach_the_child(engine: Node) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "cy"}})
    child_id = await child_of(engine, parent_id)

    await engine.pause(CALLER, parent_id, ControlRequest(reason="audit"))

    assert (await engine.status(CALLER, child_id)).status == "paused"
    child_log = (await engine.log(CALLER, child_id)).items
    paused = next(entry for entry in child_log if entry.event == "paused")
    assert paused.detail["by"] == f"execution {parent_id}"
    assert paused.detail["reason"] == f"parent execution {parent_id}: audit"

    await engine.resume(CALLER, parent_id, ControlRequest())
    assert (await engine.status(CALLER, child_id)).status == "running"
    await engine.signal(CALLER, child_id, "approved", "yes")
    assert await wait_status(engine, parent_id, "completed") == "completed"
    assert (await engine.state(CALLER, parent_id)).memory["variables"]["kyc"]["approval"] == "yes"


async def test_a_child_paused_on_its_own_keeps_its_parent_waiting(engine: Node) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "di"}})
    child_id = await child_of(engine, parent_id)
    await engine.pause(CALLER, child_id, ControlRequest())
    await engine.signal(CALLER, child_id, "approved", "later")  # kept for when it runs again

    assert (await engine.status(CALLER, parent_id)).status == "running"
    # the parent's own pause and resume leave the child as its operator left it
    await engine.pause(CALLER, parent_id, ControlRequest())
    await engine.resume(CALLER, parent_id, ControlRequest())
    assert (await engine.status(CALLER, child_id)).status == "paused"
    assert (await engine.status(CALLER, parent_id)).status == "running"

    await engine.resume(CALLER, child_id, ControlRequest())
    assert await wait_status(engine, parent_id, "completed") == "completed"


async def test_a_child_of_a_paused_parent_is_not_resumed_alone(engine: Node) -> None:
    """Issue 19 point 8: the child of a paused parent could be resumed (200) while its parent stayed paused."""
    await engine.register_process(CALLER, WAITING_KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "fi"}})
    child_id = await child_of(engine, parent_id)
    await engine.pause(CALLER, parent_id, ControlRequest())

    with pytest.raises(InvalidTransition) as refused:
        await engine.resume(CALLER, child_id, ControlRequest(reason="just this one"))

    assert refused.value.message == (
        f"cannot resume execution {child_id}: its parent execution {parent_id} is paused: resume the parent, "
        "which resumes it"
    )
    assert refused.value.current_status == "paused"
    assert (await engine.status(CALLER, child_id)).status == "paused"
    entry = [e for e in (await engine.log(CALLER, child_id)).items if e.event == "refused"]
    assert len(entry) == 1 and entry[0].detail["command"] == "resume" and entry[0].detail["reason"] == "just this one"
    # the way on: resume the parent, which resumes the child it paused
    await engine.resume(CALLER, parent_id, ControlRequest())
    assert (await engine.status(CALLER, child_id)).status == "running"


async def test_a_child_paused_on_its_own_under_a_paused_parent_waits_for_the_parent(engine: Node) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "gu"}})
    child_id = await child_of(engine, parent_id)
    await engine.pause(CALLER, child_id, ControlRequest())
    await engine.pause(CALLER, parent_id, ControlRequest())

    with pytest.raises(InvalidTransition) as refused:
        await engine.resume(CALLER, child_id, ControlRequest())
    assert refused.value.message.endswith(f"parent execution {parent_id} is paused: resume the parent, then this one")

    await engine.resume(CALLER, parent_id, ControlRequest())
    assert (await engine.status(CALLER, child_id)).status == "paused"  # its operator paused it: it stays so
    await engine.resume(CALLER, child_id, ControlRequest())
    assert (await engine.status(CALLER, child_id)).status == "running"


async def test_cancel_of_the_parent_cancels_the_child(engine: Node) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "ed"}})
    child_id = await child_of(engine, parent_id)

    await engine.cancel(CALLER, parent_id, ControlRequest(reason="customer left"))

    assert await wait_status(engine, child_id, "cancelled") == "cancelled"


async def test_a_failed_child_fails_the_element_and_a_catch_takes_it(engine: Node) -> None:
    await engine.register_process(
        CALLER, definition({"key": "no", "type": "fail", "message": "'blocked: ' + customer"}, key="kyc")
    )
    uncaught = await start(engine, parent(), {"order": {"customer": "fe"}})
    assert await wait_status(engine, uncaught, "failed") == "failed"
    error = (await engine.status(CALLER, uncaught)).error
    assert error is not None and error["type"] == "ChildFailed" and error["element"] == "run-kyc"
    assert error["error"].endswith("failed: blocked: fe")

    caught = await start(
        engine,
        parent(catch=[{"errors": ["ChildFailed"], "next": "after", "into": "why"}]),
        {"order": {"customer": "gu"}},
    )
    assert await wait_status(engine, caught, "completed") == "completed"
    variables = (await engine.state(CALLER, caught)).memory["variables"]
    assert variables["why"]["type"] == "ChildFailed" and variables["done"] is True


async def test_an_unknown_process_or_version_is_refused_at_registration(engine: Node) -> None:
    await engine.register_process(CALLER, KYC)
    with pytest.raises(ValidationFailed) as refused:
        await engine.register_process(CALLER, parent(process="kyc-chek", version=None))
    assert refused.value.details == [
        "element 'run-kyc': calls unknown process 'kyc-chek' (this tenant has: kyc, order)"
    ]
    with pytest.raises(ValidationFailed) as refused:
        await engine.register_process(CALLER, parent(version=7))
    assert refused.value.details == ["element 'run-kyc': process 'kyc' has no version 7 (it has 1)"]
    summary, _ = await engine.register_process(CALLER, parent(version=1))
    assert summary.version == 1


async def test_a_parent_adopted_after_a_crash_keeps_its_child(make_engine: EngineFactory, gate: Gate) -> None:
    first = await make_engine()
    await first.register_process(CALLER, KYC)
    parent_id = await start(first, parent(), {"order": {"customer": "ha"}})
    child_id = await child_of(first, parent_id)
    await gate.entered.wait()
    await crash(first)

    second = await make_engine()
    gate.release.set()
    assert await wait_status(second, parent_id, "completed", within=20) == "completed"
    status = await second.status(CALLER, parent_id)
    assert status.children == [child_id]  # the same child, not a second one
    assert (await second.status(CALLER, child_id)).status == "completed"


def _parallel(branch_b: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Branch a calls the waiting KYC check; branch b is given."""
    return definition(
        {
            "key": "both",
            "type": "parallel",
            "branches": [
                {"key": "a", "elements": [{"key": "call", "type": "call-process", "process": "kyc", "output": "k"}]},
                {"key": "b", "elements": branch_b},
            ],
            "next": "after",
            **extra,
        },
        {"key": "after", "type": "set-variable", "set": {"done": "true"}},
        key="order",
    )


async def _children_of(engine: Node, parent_id: int) -> list[int]:
    listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=100, cursor=None)
    return [item.executionID for item in listed.items if item.parentExecutionID == parent_id]


@pytest.mark.parametrize("caught", [False, True])
async def test_a_branch_failing_while_its_sibling_starts_a_child_leaves_no_child_running(
    engine: Node, caught: bool
) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    catch = {"catch": [{"errors": ["Fail"], "next": "after"}]} if caught else {}
    parent_id = await start(engine, _parallel([{"key": "boom", "type": "fail", "message": "'no'"}], **catch))

    assert await wait_status(engine, parent_id, "completed" if caught else "failed") in ("completed", "failed")

    status = await engine.status(CALLER, parent_id)
    assert status.status == ("completed" if caught else "failed")
    for child_id in await _children_of(engine, parent_id):  # started, or not, as the race went
        assert await wait_status(engine, child_id, "cancelled") == "cancelled"


async def test_a_failing_branch_cancels_the_child_its_sibling_waits_for(engine: Node, gate: Gate) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    branch_b = [
        {"key": "hold", "type": "task", "handler": "gate", "next": "boom"},
        {"key": "boom", "type": "fail", "message": "'no'"},
    ]
    parent_id = await start(engine, _parallel(branch_b))
    child_id = await child_of(engine, parent_id)
    gate.release.set()

    assert await wait_status(engine, parent_id, "failed") == "failed"
    assert await wait_status(engine, child_id, "cancelled") == "cancelled"


async def test_children_started_by_lanes_at_once_are_all_listed(engine: Node) -> None:
    await engine.register_process(
        CALLER, definition({"key": "x", "type": "set-variable", "set": {"y": "1"}}, key="kid")
    )
    each = {
        "key": "each",
        "type": "for-each",
        "items": "[1, 2, 3, 4, 5, 6, 7, 8]",
        "maxConcurrency": 8,
        "body": {"elements": [{"key": "c", "type": "call-process", "process": "kid", "output": "o"}]},
        "output": "all",
    }
    parent_id = await start(engine, definition(each, key="fan"))

    assert await wait_status(engine, parent_id, "completed") == "completed"
    status = await engine.status(CALLER, parent_id)
    log = (await engine.log(CALLER, parent_id)).items
    started = [entry.detail["childExecutionID"] for entry in log if entry.event == "child-started"]
    assert len(started) == 8 and sorted(status.children) == sorted(started)


async def test_a_process_that_calls_itself_without_end_stops_at_the_depth_limit(engine: Node) -> None:
    endless = definition({"key": "again", "type": "call-process", "process": "endless"}, key="endless")
    root = await start(engine, endless)

    assert await wait_status(engine, root, "failed", within=30) == "failed"
    error = (await engine.status(CALLER, root)).error
    assert error is not None and error["type"] == "ChildFailed"
    listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=100, cursor=None)
    assert len(listed.items) == 11  # the root and ten nested children, the deepest refused its own child
