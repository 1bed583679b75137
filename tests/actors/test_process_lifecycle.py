"""A definition version's life after registration (issue 23, point 4): deleted when no stored execution uses it,
deprecated so that it takes no new start, and how many of its executions are in each status."""

from __future__ import annotations

import pytest

from procengine.api.process_views import ProcessPatch
from procengine.api.service import Caller
from procengine.api.views import BatchStartRequest, ControlRequest, ForkRequest, StartRequest
from procengine.errors import NotFound, ProcessDeprecated, ProcessInUse
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, wait_status
from tests.support.processes import definition

V1 = definition({"key": "w", "type": "wait-signal", "signal": "go"}, key="orders")
V2 = definition(
    {"key": "w", "type": "wait-signal", "signal": "go", "next": "e"}, {"key": "e", "type": "end"}, key="orders"
)
V3 = definition({"key": "w2", "type": "wait-signal", "signal": "go"}, key="orders")
OTHER = Caller(tenant="other", by="other", request_id="r-other")


async def _register(engine: Node, *documents: dict[str, object]) -> list[int]:
    return [(await engine.register_process(CALLER, document))[0].processID for document in documents]


async def _versions(engine: Node) -> list[tuple[int, int]]:
    return [(p.processID, p.version) for p in (await engine.list_processes(CALLER)).items]


async def test_a_version_no_execution_uses_is_deleted_and_gone_everywhere(engine: Node) -> None:
    v1, v2 = await _register(engine, V1, V2)

    done = await engine.delete_process(CALLER, v1, "a typo")

    assert (done.processID, done.version, done.latestProcessID, done.latestVersion) == (v1, 1, v2, 2)
    assert await _versions(engine) == [(v2, 2)]
    with pytest.raises(NotFound):
        await engine.get_process(CALLER, v1)
    with pytest.raises(NotFound):
        await engine.start_execution(CALLER, StartRequest(processID=v1))
    with pytest.raises(NotFound):
        await engine.delete_process(CALLER, v1)


async def test_a_version_stored_executions_use_is_refused_with_how_many(engine: Node) -> None:
    (v1,) = await _register(engine, V1)
    for _ in range(2):
        await engine.start_execution(CALLER, StartRequest(processID=v1))

    with pytest.raises(ProcessInUse) as refused:
        await engine.delete_process(CALLER, v1)

    assert refused.value.status == 409 and refused.value.details == {"processID": v1, "executions": 2}
    assert "2 stored executions" in refused.value.message
    assert await _versions(engine) == [(v1, 1)]


async def test_deleting_the_latest_makes_the_previous_one_latest_and_its_number_is_never_given_again(
    engine: Node,
) -> None:
    v1, v2 = await _register(engine, V1, V2)

    await engine.delete_process(CALLER, v2)
    by_key, _ = await engine.start_execution(CALLER, StartRequest(processKey="orders"))
    same_as_v1, created_v1 = await engine.register_process(CALLER, V1)
    v3, created_v3 = await engine.register_process(CALLER, V3)
    again_v2, _ = await engine.register_process(CALLER, V2)

    assert (by_key.processID, by_key.processVersion) == (v1, 1)
    assert (same_as_v1.processID, created_v1) == (v1, False)  # identical to the latest (v1 again): that version
    assert (v3.version, created_v3) == (3, True)  # not 2: that number was the deleted version's
    assert again_v2.version == 4 and again_v2.processID not in (v1, v2)


async def test_deleting_every_version_of_a_key_leaves_it_unknown_and_numbers_go_on(engine: Node) -> None:
    (v1,) = await _register(engine, V1)

    done = await engine.delete_process(CALLER, v1)

    assert (done.latestProcessID, done.latestVersion) == (None, None)
    with pytest.raises(NotFound):
        await engine.start_execution(CALLER, StartRequest(processKey="orders"))
    again, created = await engine.register_process(CALLER, V1)
    assert (again.version, created) == (2, True)


async def test_a_deprecated_version_refuses_every_kind_of_start_and_its_executions_go_on(engine: Node) -> None:
    (v1,) = await _register(engine, V1)
    running, _ = await engine.start_execution(CALLER, StartRequest(processID=v1))

    shown = await engine.deprecate_process(CALLER, v1, ProcessPatch(deprecated=True, reason="use v2"))

    assert shown.deprecated and (await engine.get_process(CALLER, v1)).deprecated
    assert [p.deprecated for p in (await engine.list_processes(CALLER)).items] == [True]
    for request in (StartRequest(processID=v1), StartRequest(processKey="orders")):
        with pytest.raises(ProcessDeprecated) as refused:
            await engine.start_execution(CALLER, request)
        assert refused.value.status == 409 and refused.value.code == "PROCESS_DEPRECATED"
    batch = await engine.start_many(
        CALLER, BatchStartRequest(items=[StartRequest(processID=v1), StartRequest(processKey="orders")])
    )
    assert [(i.outcome, i.error and i.error.code, i.error and i.error.status) for i in batch.items] == [
        ("failed", "PROCESS_DEPRECATED", 409)
    ] * 2
    with pytest.raises(ProcessDeprecated):
        await engine.fork(CALLER, running.executionID, ForkRequest())
    # its execution goes on: a signal ends it
    await engine.signal(CALLER, running.executionID, "go", None)
    assert await wait_status(engine, running.executionID, "completed") == "completed"

    await engine.deprecate_process(CALLER, v1, ProcessPatch(deprecated=False))
    started, created = await engine.start_execution(CALLER, StartRequest(processKey="orders"))
    assert created and started.processID == v1


async def test_a_start_by_key_takes_the_latest_and_is_refused_when_that_one_is_deprecated(engine: Node) -> None:
    v1, v2 = await _register(engine, V1, V2)
    await engine.deprecate_process(CALLER, v1, ProcessPatch(deprecated=True))
    by_key, _ = await engine.start_execution(CALLER, StartRequest(processKey="orders"))
    assert by_key.processID == v2  # an older version deprecated: the key's latest is still taken

    await engine.deprecate_process(CALLER, v2, ProcessPatch(deprecated=True))

    with pytest.raises(ProcessDeprecated) as refused:
        await engine.start_execution(CALLER, StartRequest(processKey="orders"))
    assert "the latest version of 'orders'" in refused.value.message  # not v1 in its place, silently


async def test_a_call_process_of_a_deprecated_version_fails_its_element(engine: Node) -> None:
    kid = definition({"key": "k", "type": "wait-signal", "signal": "go"}, key="kid")
    (kid_id,) = await _register(engine, kid)
    await engine.deprecate_process(CALLER, kid_id, ProcessPatch(deprecated=True))
    caller_process = definition({"key": "call", "type": "call-process", "process": "kid"}, key="calls-kid")
    (parent_id,) = await _register(engine, caller_process)

    parent, _ = await engine.start_execution(CALLER, StartRequest(processID=parent_id))

    assert await wait_status(engine, parent.executionID, "failed") == "failed"
    error = (await engine.status(CALLER, parent.executionID)).error
    assert error is not None and error["type"] == "ChildFailed" and "deprecated" in str(error)


async def test_counts_per_status_of_each_version(engine: Node) -> None:
    v1, v2 = await _register(engine, V1, V2)
    ids = [(await engine.start_execution(CALLER, StartRequest(processID=v1)))[0].executionID for _ in range(3)]
    await engine.pause(CALLER, ids[0], ControlRequest())
    await engine.cancel(CALLER, ids[1], ControlRequest())
    await wait_status(engine, ids[1], "cancelled")

    one = await engine.get_process(CALLER, v1)
    listed = {p.processID: p.executions for p in (await engine.list_processes(CALLER)).items}

    assert one.executions is not None
    assert one.executions.model_dump() == {"running": 1, "paused": 1, "completed": 0, "failed": 0, "cancelled": 1}
    assert listed[v1] == one.executions
    assert listed[v2] is not None and sum(listed[v2].model_dump().values()) == 0


async def test_another_tenants_version_is_not_found_for_delete_and_deprecate(engine: Node) -> None:
    (v1,) = await _register(engine, V1)

    with pytest.raises(NotFound):
        await engine.delete_process(OTHER, v1)
    with pytest.raises(NotFound):
        await engine.deprecate_process(OTHER, v1, ProcessPatch(deprecated=True))
    assert not (await engine.get_process(CALLER, v1)).deprecated
    assert await _versions(engine) == [(v1, 1)]


async def test_another_node_sees_a_deprecation_and_a_deletion_at_once(engine: Node, make_engine: EngineFactory) -> None:
    v1, v2 = await _register(engine, V1, V2)
    other = await make_engine()
    await other.start_execution(CALLER, StartRequest(processID=v2))  # v2 now in the other node's caches
    await other.start_execution(CALLER, StartRequest(processID=v1))
    await engine.deprecate_process(CALLER, v1, ProcessPatch(deprecated=True))

    with pytest.raises(ProcessDeprecated):
        await other.start_execution(CALLER, StartRequest(processID=v1))
    assert (await other.get_process(CALLER, v1)).deprecated

    (v3,) = await _register(engine, V3)
    await other.catalog.compiled(CALLER.tenant, v3)  # cached there, as a start would leave it
    await engine.delete_process(CALLER, v3)
    with pytest.raises(NotFound):
        await other.start_execution(CALLER, StartRequest(processID=v3))
    with pytest.raises(NotFound):
        await other.get_process(CALLER, v3)


async def test_a_repeat_of_a_start_made_before_the_deprecation_answers_its_execution(engine: Node) -> None:
    (v1,) = await _register(engine, V1)
    first, _ = await engine.start_execution(CALLER, StartRequest(processID=v1, idempotencyKey="order-9"))
    await engine.deprecate_process(CALLER, v1, ProcessPatch(deprecated=True))

    again, created = await engine.start_execution(CALLER, StartRequest(processID=v1, idempotencyKey="order-9"))
    batch = await engine.start_many(
        CALLER,
        BatchStartRequest(
            items=[StartRequest(processID=v1, idempotencyKey="order-9"), StartRequest(processID=v1, idempotencyKey="n")]
        ),
    )
    fresh = await engine.start_many(CALLER, BatchStartRequest(items=[StartRequest(processID=v1, idempotencyKey="n")]))

    assert (again.executionID, created) == (first.executionID, False)
    assert [(i.outcome, i.executionID) for i in batch.items] == [("existing", first.executionID), ("failed", None)]
    assert fresh.items[0].error is not None and fresh.items[0].error.code == "PROCESS_DEPRECATED"  # its key freed
