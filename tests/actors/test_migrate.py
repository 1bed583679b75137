"""Migration to another version (issue 23, point 3) on a real engine: a paused or failed execution moves to another
version of its process under a validated plan, in one fenced write, and goes on in the new version; a dry run
writes nothing; every problem of a plan is listed; waits keep their timers and buffered signals, children stay
attached; other tenants, other statuses, a stale owner and a killed node are refused or handled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.bulk_views import BulkCreated, BulkRequest
from procengine.api.service import Caller
from procengine.api.views import ControlRequest, MigrateRequest, RetryRequest, StartRequest
from procengine.errors import Fenced, InvalidTransition, NotFound, ValidationFailed
from procengine.node.node import Node
from tests.actors.test_quarantine import kill
from tests.support.nodes import CALLER, EngineFactory, Gate, events, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import KYC, definition

V1 = definition(
    {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": "approve"},
    {"key": "approve", "type": "wait-signal", "signal": "go", "next": "done"},
    {"key": "done", "type": "end"},
    key="order",
)
V2 = definition(
    {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": "approve"},
    {"key": "approve", "type": "wait-signal", "signal": "go", "next": "stamp"},
    {"key": "stamp", "type": "set-variable", "set": {"v2": "n + 1"}, "next": "done"},
    {"key": "done", "type": "end"},
    key="order",
)
RENAMED = definition(
    {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": "approval"},
    {"key": "approval", "type": "wait-signal", "signal": "go", "next": "stamp"},
    {"key": "stamp", "type": "set-variable", "set": {"v2": "n + 2"}, "next": "done"},
    {"key": "done", "type": "end"},
    key="order",
)
CUSTOMER = {"customer": "'acme'"}
OTHER = Caller(tenant="other", by="other", request_id="req-other")


async def _register(engine: Node, *documents: dict[str, Any]) -> list[int]:
    return [(await engine.register_process(CALLER, document))[0].processID for document in documents]


async def _paused_at_approve(engine: Node, *later: dict[str, Any]) -> tuple[int, list[int]]:
    """An execution of V1 paused at its wait, and the process ids of V1 and of each of `later` (versions 2, 3...)."""
    ids = await _register(engine, V1)
    started, _ = await engine.start_execution(CALLER, StartRequest(processID=ids[0]))
    await wait_element(engine, started.executionID, "approve")
    await engine.pause(CALLER, started.executionID, ControlRequest())
    ids += await _register(engine, *later)
    return started.executionID, ids


async def _variables(engine: Node, execution_id: int) -> dict[str, Any]:
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None
    variables: dict[str, Any] = memory["variables"]
    return variables


async def test_a_paused_execution_migrated_then_resumed_completes_in_the_new_version(
    engine: Node, redis: Redis
) -> None:
    execution_id, (v1, v2) = await _paused_at_approve(engine, V2)

    result = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, reason="ship the stamp"))

    assert (result.applied, result.problems, result.status) == (True, [], "paused")
    assert (result.fromVersion, result.toVersion, result.fromProcessID, result.toProcessID) == (1, 2, v1, v2)
    assert [step.model_dump(by_alias=True) for step in result.plan] == [
        {"lane": "main", "from": "approve", "to": "approve", "type": "wait-signal", "parked": False}
    ]
    status = await engine.status(CALLER, execution_id)
    assert (status.processID, status.processVersion, status.progress.totalNodes) == (v2, 2, 4)
    keys = engine.keys
    assert await redis.zscore(keys.process_index("default", v1), str(execution_id)) is None
    assert await redis.zscore(keys.process_index("default", v2), str(execution_id)) == execution_id
    assert await redis.zscore(keys.process_status_index("default", v1, "paused"), str(execution_id)) is None
    assert await redis.zscore(keys.process_status_index("default", v2, "paused"), str(execution_id)) is not None
    migrated = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "migrated"]
    assert len(migrated) == 1
    detail = migrated[0].detail
    assert (detail["from"], detail["to"], detail["fromVersion"], detail["toVersion"]) == ("paused", "paused", 1, 2)
    assert (detail["by"], detail["reason"], detail["requestId"]) == ("default", "ship the stamp", "req-test")
    assert detail["plan"] == [{"lane": "main", "from": "approve", "to": "approve", "type": "wait-signal"}]

    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", None)

    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await _variables(engine, execution_id))["v2"] == 2  # `stamp` ran: only version 2 has it


async def test_a_renamed_element_is_mapped(engine: Node) -> None:
    execution_id, _ = await _paused_at_approve(engine, RENAMED)

    refused = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, dryRun=True))
    assert refused.problems == [
        "lane 'main': wait-signal 'approve': process 'order' has no element 'approve'; map it to one "
        "(mapping: {'approve': ...})"
    ]
    result = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, mapping={"approve": "approval"}))

    assert [(s.from_, s.to) for s in result.plan] == [("approve", "approval")]
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    assert [(e["element_key"], e["element_id"]) for e in state.stack["execution_stack"]] == [("approval", 2)]
    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", None)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await _variables(engine, execution_id))["v2"] == 3


async def test_every_problem_is_listed_at_once(engine: Node) -> None:
    broken = definition(
        {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": "approve"},
        {"key": "approve", "type": "task", "handler": "echo", "input": {"x": "missing + n"}, "next": "done"},
        {"key": "done", "type": "end"},
        key="order",
    )
    execution_id, _ = await _paused_at_approve(engine, broken)

    with pytest.raises(ValidationFailed) as refused:
        await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, mapping={"ghost": "nowhere"}))

    assert refused.value.problems == [
        "mapping: 'ghost' names no element of process 'order'",
        "mapping: 'ghost' -> 'nowhere': process 'order' has no element 'nowhere'",
        "lane 'main': wait-signal 'approve': 'approve' is a task in process 'order'; only an element of the same "
        "type can take its place",
    ]
    fields = await engine.store.fields(execution_id)
    assert (fields["processVersion"], fields["status"]) == ("1", "paused")
    refusals = [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == "refused"]
    assert refusals[-1]["command"] == "migrate" and "3 problem(s)" in refusals[-1]["why"]


async def test_a_dry_run_writes_nothing(engine: Node, redis: Redis) -> None:
    execution_id, (v1, v2) = await _paused_at_approve(engine, V2)
    keys = engine.keys.execution(execution_id)
    before = {key: await redis.dump(key) for key in keys.all()}
    indexed = await redis.zrange(engine.keys.process_index("default", v1), 0, -1)

    result = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, dryRun=True))

    assert (result.applied, result.problems, len(result.plan)) == (False, [], 1)
    assert {key: await redis.dump(key) for key in keys.all()} == before
    assert await redis.zrange(engine.keys.process_index("default", v1), 0, -1) == indexed
    assert await redis.zcard(engine.keys.process_index("default", v2)) == 0


async def test_the_version_must_be_another_of_the_same_process(engine: Node) -> None:
    execution_id, _ = await _paused_at_approve(engine)
    await _register(engine, definition({"key": "x", "type": "end"}, key="unrelated"))

    with pytest.raises(NotFound):
        await engine.migrate(CALLER, execution_id, MigrateRequest(version=2))
    with pytest.raises(ValidationFailed) as own:
        await engine.migrate(CALLER, execution_id, MigrateRequest(version=1))
    assert own.value.problems == ["version: 1 is the execution's own version; give another one"]


async def test_another_tenants_execution_is_not_found(engine: Node) -> None:
    execution_id, _ = await _paused_at_approve(engine, V2)

    with pytest.raises(NotFound):
        await engine.migrate(OTHER, execution_id, MigrateRequest(version=2))
    await engine.register_process(OTHER, V2)  # the other tenant's own `order` has version 1 only
    with pytest.raises(NotFound):
        await engine.migrate(OTHER, execution_id, MigrateRequest(version=1, dryRun=True))
    assert (await engine.store.fields(execution_id))["processVersion"] == "1"


async def test_running_and_completed_executions_are_refused(engine: Node) -> None:
    ids = await _register(engine, V1, V2)
    started, _ = await engine.start_execution(CALLER, StartRequest(processID=ids[0]))
    execution_id = started.executionID
    await wait_element(engine, execution_id, "approve")
    with pytest.raises(InvalidTransition) as running:
        await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, dryRun=True))
    assert running.value.current_status == "running"
    await engine.signal(CALLER, execution_id, "go", None)
    await wait_status(engine, execution_id, "completed")
    with pytest.raises(InvalidTransition) as completed:
        await engine.migrate(CALLER, execution_id, MigrateRequest(version=2))
    assert completed.value.current_status == "completed"
    refused = [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == "refused"]
    assert [(r["command"], r["from"]) for r in refused] == [("migrate", "running"), ("migrate", "completed")]


async def test_a_delay_keeps_what_was_left_of_its_timer(engine: Node) -> None:
    slow = definition(
        {"key": "cool", "type": "delay", "durationMs": 60_000, "next": "done"}, {"key": "done", "type": "end"}, key="d"
    )
    faster = definition(
        {"key": "cool", "type": "delay", "durationMs": 5, "next": "done"}, {"key": "done", "type": "end"}, key="d"
    )
    (v1,) = await _register(engine, slow)
    execution_id = (await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID
    await wait_element(engine, execution_id, "cool")
    await engine.pause(CALLER, execution_id, ControlRequest())
    await _register(engine, faster)
    before = await engine.state(CALLER, execution_id)

    await engine.migrate(CALLER, execution_id, MigrateRequest(version=2))

    after = await engine.state(CALLER, execution_id)
    assert before.stack is not None and after.stack is not None
    left = [e["remaining_ms"] for e in before.stack["execution_stack"]]
    assert [e["remaining_ms"] for e in after.stack["execution_stack"]] == left and left[0] > 50_000


async def test_a_buffered_signal_is_still_consumed(engine: Node) -> None:
    two_waits = definition(
        {"key": "first", "type": "wait-signal", "signal": "start", "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "go", "into": "got", "next": "done"},
        {"key": "done", "type": "end"},
        key="w",
    )
    renamed = definition(
        {"key": "begin", "type": "wait-signal", "signal": "start", "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "go", "into": "got", "next": "done"},
        {"key": "done", "type": "end"},
        key="w",
    )
    (v1,) = await _register(engine, two_waits)
    execution_id = (await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID
    await wait_element(engine, execution_id, "first")
    await engine.signal(CALLER, execution_id, "go", {"ok": True})  # kept for `approve`
    await engine.pause(CALLER, execution_id, ControlRequest())
    await _register(engine, renamed)

    await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, mapping={"first": "begin"}))
    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "start", None)

    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await _variables(engine, execution_id))["got"] == {"ok": True}


async def test_a_wait_must_wait_for_the_same_signal(engine: Node) -> None:
    other_signal = definition(
        {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "proceed", "next": "done"},
        {"key": "done", "type": "end"},
        key="order",
    )
    execution_id, _ = await _paused_at_approve(engine, other_signal)

    result = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, dryRun=True))

    assert result.problems == [
        "lane 'main': wait-signal 'approve': 'approve' waits for signal 'proceed', not 'go' (the signal it waits "
        "for stays)"
    ]


async def test_a_child_stays_attached(engine: Node, gate: Gate) -> None:
    parent_v1 = definition(
        {"key": "call", "type": "call-process", "process": "kyc", "input": CUSTOMER, "output": "k", "next": "done"},
        {"key": "done", "type": "end"},
        key="parent",
    )
    parent_v2 = definition(
        {"key": "call", "type": "call-process", "process": "kyc", "input": CUSTOMER, "output": "k", "next": "after"},
        {"key": "after", "type": "set-variable", "set": {"v2": "true"}, "next": "done"},
        {"key": "done", "type": "end"},
        key="parent",
    )
    calls_other = definition(
        {"key": "call", "type": "call-process", "process": "parent", "output": "k", "next": "done"},
        {"key": "done", "type": "end"},
        key="parent",
    )
    await _register(engine, KYC)
    (v1,) = await _register(engine, parent_v1)
    execution_id = (await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID
    await gate.entered.wait()
    await engine.pause(CALLER, execution_id, ControlRequest())
    await _register(engine, parent_v2, calls_other)
    child = (await engine.store.fields(execution_id))["children"]

    wrong = await engine.migrate(CALLER, execution_id, MigrateRequest(version=3, dryRun=True))
    assert len(wrong.problems) == 1 and "runs process 'kyc'; 'call' calls 'parent'" in wrong.problems[0]
    await engine.migrate(CALLER, execution_id, MigrateRequest(version=2))

    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    assert str(state.stack["execution_stack"][0]["child_execution_id"]) in child
    await engine.resume(CALLER, execution_id, ControlRequest())
    gate.release.set()
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await _variables(engine, execution_id))["v2"] is True


async def test_a_plan_over_a_parallel_and_a_for_each(engine: Node) -> None:
    def fan(pack: str) -> dict[str, Any]:
        checks = {
            "key": "checks",
            "type": "parallel",
            "branches": [
                {"key": "credit", "elements": [{"key": "c", "type": "wait-signal", "signal": "credit"}]},
                {"key": "stock", "elements": [{"key": "s", "type": "wait-signal", "signal": "stock"}]},
            ],
        }
        ship = {
            "key": "ship",
            "type": "for-each",
            "items": "[1, 2]",
            "body": {"elements": [{"key": pack, "type": "wait-signal", "signal": "packed"}]},
        }
        return definition(
            threads=[{"key": "main", "elements": [checks]}, {"key": "side", "elements": [ship]}], key="fan"
        )

    threads, threads_v2 = fan("pack")["threads"], fan("wrap")["threads"]
    (v1,) = await _register(engine, definition(threads=threads, key="fan"))
    execution_id = (await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID
    await wait_element(engine, execution_id, "s")
    await wait_element(engine, execution_id, "pack")
    await engine.pause(CALLER, execution_id, ControlRequest())
    await _register(engine, definition(threads=threads_v2, key="fan"))

    result = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2, mapping={"pack": "wrap"}))

    assert sorted((s.lane, s.from_, s.to, s.type) for s in result.plan) == [
        ("main", "checks", "checks", "parallel"),
        ("main/checks[credit]", "c", "c", "wait-signal"),
        ("main/checks[stock]", "s", "s", "wait-signal"),
        ("side", "ship", "ship", "for-each"),
        ("side/ship[0]", "pack", "wrap", "wait-signal"),
        ("side/ship[1]", "pack", "wrap", "wait-signal"),
    ]
    await engine.resume(CALLER, execution_id, ControlRequest())
    for name in ("credit", "stock", "packed", "packed"):
        await engine.signal(CALLER, execution_id, name, None)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert ("element-completed", "wrap") in await events(engine, execution_id)


async def test_a_failed_execution_stays_failed_and_its_retry_goes_on_in_the_new_version(engine: Node) -> None:
    failing = definition(
        {"key": "work", "type": "task", "handler": "fail", "input": {"message": "'boom'"}, "next": "done"},
        {"key": "done", "type": "end"},
        key="f",
    )
    fixed = definition(
        {
            "key": "work",
            "type": "task",
            "handler": "echo",
            "input": {"message": "'fine'"},
            "output": "o",
            "next": "done",
        },
        {"key": "done", "type": "end"},
        key="f",
    )
    (v1,) = await _register(engine, failing)
    execution_id = (await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID
    await wait_status(engine, execution_id, "failed")
    (v2,) = await _register(engine, fixed)

    result = await engine.migrate(CALLER, execution_id, MigrateRequest(version=2))

    assert (result.status, result.applied) == ("failed", True)
    fields = await engine.store.fields(execution_id)
    assert (fields["status"], fields["processID"]) == ("failed", str(v2))
    removals = await engine.redis.zrange(engine.keys.removals("default"), 0, -1)
    assert f"{execution_id}:{v2}:failed".encode() in removals
    assert f"{execution_id}:{v1}:failed".encode() not in removals
    await engine.retry(CALLER, execution_id, RetryRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await _variables(engine, execution_id))["o"] == {"message": "fine"}


async def test_a_stale_owner_cannot_apply_it(engine: Node) -> None:
    execution_id, _ = await _paused_at_approve(engine, V2)
    actor = engine.registry.get(execution_id) or await engine.registry.activate(execution_id, "default")
    assert actor is not None
    fields = await engine.store.fields(execution_id)
    await engine.store.takeover(
        execution_id, owner="other", expected_owner=fields["owner"], expected_epoch=int(fields["epoch"]), log=None
    )

    with pytest.raises(Fenced):
        await engine.migrate(CALLER, execution_id, MigrateRequest(version=2))

    after = await engine.store.fields(execution_id)
    assert (after["processVersion"], after["owner"]) == ("1", "other")
    assert "migrated" not in [e.event for e in (await engine.log(CALLER, execution_id)).items]


async def test_a_migrate_after_the_owner_is_killed(make_engine: EngineFactory, redis: Redis) -> None:
    a, b = await make_engine(), await make_engine()
    execution_id, (_, v2) = await _paused_at_approve(a, V2)
    await kill(a, redis)

    result = await b.migrate(CALLER, execution_id, MigrateRequest(version=2))

    assert result.applied
    fields = await b.store.fields(execution_id)
    assert (fields["owner"], fields["processID"]) == (b.node_id, str(v2)) and int(fields["epoch"]) >= 2
    await b.resume(CALLER, execution_id, ControlRequest())
    await b.signal(CALLER, execution_id, "go", None)
    assert await wait_status(b, execution_id, "completed") == "completed"
    assert (await _variables(b, execution_id))["v2"] == 2


async def test_asked_on_another_node_it_is_the_owners(make_engine: EngineFactory) -> None:
    a, b = await make_engine(), await make_engine()
    await asyncio.gather(a.router.serving.wait(), b.router.serving.wait())
    execution_id, _ = await _paused_at_approve(a, V2)
    actor = a.registry.get(execution_id) or await a.registry.activate(execution_id, "default")
    assert actor is not None

    result = await b.migrate(CALLER, execution_id, MigrateRequest(version=2, dryRun=True))
    assert result.plan[0].from_ == "approve"
    await b.migrate(CALLER, execution_id, MigrateRequest(version=2))

    fields = await a.store.fields(execution_id)
    assert (fields["owner"], fields["processVersion"]) == (a.node_id, "2")
    assert await poll(lambda: a.status(CALLER, execution_id), lambda s: s.processVersion == 2, within=5)


async def test_a_bulk_migrate_moves_every_paused_execution_of_a_filter_and_refuses_the_rest(engine: Node) -> None:
    # given two executions of version 1 paused at their wait, a third still running, and version 2 registered

    [v1] = await _register(engine, V1)
    started = [(await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID for _ in range(3)]
    for execution_id in started:
        await wait_element(engine, execution_id, "approve")
    paused, running = started[:2], started[2]
    for execution_id in paused:
        await engine.pause(CALLER, execution_id, ControlRequest())
    await _register(engine, V2)

    # when a bulk migrate to version 2 runs over version 1's executions
    created = await engine.bulk(
        CALLER, BulkRequest(action="migrate", filter={"processID": v1}, version=2, reason="ship the stamp")
    )
    assert isinstance(created, BulkCreated)
    job = await poll(lambda: engine.bulk_job(CALLER, created.jobID), lambda job: job.status == "completed")

    # then the paused ones are of version 2, each with its `migrated` entry naming the job; the running one is refused
    assert (job.matched, job.done, job.refused) == (3, 2, {"execution is running": 1})
    for execution_id in paused:
        assert (await engine.status(CALLER, execution_id)).processVersion == 2
        [migrated] = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "migrated"]
        assert migrated.detail["bulk"] == created.jobID and migrated.detail["reason"] == "ship the stamp"
    assert (await engine.status(CALLER, running)).processVersion == 1
