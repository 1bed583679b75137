"""Retry's edge cases (issue 20): an execution the crash quarantine failed, and one whose snapshot is broken."""

from __future__ import annotations

import msgpack
import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest, RetryRequest
from procengine.errors import InvalidTransition, StateCorrupted
from procengine.node.node import Node
from procengine.statuses import Status
from tests.actors.test_quarantine import WORK, crashes, kill
from tests.support.nodes import CALLER, EngineFactory, Gate, start, wait_status
from tests.support.processes import definition


async def test_a_quarantined_execution_retried_runs_its_task_again_with_its_crash_allowance_back(
    make_engine: EngineFactory, redis: Redis, gate: Gate
) -> None:
    # given an execution the quarantine failed (NodeCrashed) after two nodes stopped in its task
    node = await make_engine(node_crash_limit=2)
    execution_id = await start(node, WORK)
    for _ in range(2):
        await gate.entered.wait()
        gate.entered.clear()
        await kill(node, redis)
        node = await make_engine(node_crash_limit=2)
    assert await wait_status(node, execution_id, "failed") == "failed"
    assert gate.calls == 2
    assert (await node.status(CALLER, execution_id)).error["type"] == "NodeCrashed"  # type: ignore[index]

    # when it is retried
    retried = await node.retry(CALLER, execution_id, RetryRequest(reason="the poison handler is fixed"))

    # then the element the failure named runs again, once, with the crash count back at 0
    assert retried.retried == ["work"]
    await gate.entered.wait()
    assert gate.calls == 3
    assert await crashes(node, execution_id) == "0"
    gate.release.set()
    assert await wait_status(node, execution_id, "completed") == "completed"
    assert (await node.status(CALLER, execution_id)).error is None


BROKEN = definition({"key": "x", "type": "fail", "message": "'always'"}, key="broken")


@pytest.mark.parametrize(
    "stack",
    [b"\xc1 not msgpack", msgpack.packb({"execution_stack": [{"element_key": "x"}]}), msgpack.packb([1, 2])],
)
async def test_a_retry_of_a_broken_snapshot_is_refused_and_changes_nothing(
    engine: Node, redis: Redis, stack: bytes
) -> None:
    execution_id = await start(engine, BROKEN)
    assert await wait_status(engine, execution_id, "failed") == "failed"
    keys = engine.keys.execution(execution_id)
    await redis.hset(keys.state, "stack", stack)
    before = (await redis.hgetall(keys.execution), await redis.hgetall(keys.state), await redis.pttl(keys.execution))

    with pytest.raises(StateCorrupted, match=f"execution {execution_id} cannot be repaired"):
        await engine.retry(CALLER, execution_id, RetryRequest(variables={"a": 1}))

    after = (await redis.hgetall(keys.execution), await redis.hgetall(keys.state), await redis.pttl(keys.execution))
    changed = {k for k in before[0].keys() | after[0].keys() if before[0].get(k) != after[0].get(k)}
    assert changed <= {b"owner", b"epoch"}, changed  # only taken over for the retry (fenced), nothing written
    assert after[1] == before[1] and 0 < after[2] <= before[2]  # its retention still runs
    log = (await engine.log(CALLER, execution_id)).items
    refused = [entry.detail for entry in log if entry.event == "refused"]
    assert refused and refused[-1]["command"] == "retry" and "state corrupted" in refused[-1]["why"]
    assert (await engine.status(CALLER, execution_id)).status == "failed"


async def test_a_retry_reads_the_execution_once_the_read_that_activated_it(engine: Node) -> None:
    """A failed execution has no actor: the retry activates one (a read, then the takeover checks that read was the
    latest) and goes on from that same read instead of a second round trip, as long as nothing was written since."""
    execution_id = await start(engine, BROKEN)
    assert await wait_status(engine, execution_id, "failed") == "failed"
    loads: list[int] = []
    load = engine.ctx.store.load

    async def counted(execution: int, **kwargs: object) -> object:
        loads.append(execution)
        return await load(execution, **kwargs)  # type: ignore[arg-type]

    engine.ctx.store.load = counted  # type: ignore[method-assign]
    await engine.retry(CALLER, execution_id, RetryRequest(reason="once"))
    assert loads.count(execution_id) == 1

    # what the activation read is used once, and only while nothing was written since
    assert await wait_status(engine, execution_id, "failed") == "failed"  # `x` always fails
    actor = await engine.registry.activate(execution_id, "default", repair=frozenset({Status.FAILED}))
    assert actor is not None
    loads.clear()
    actor.writer.writes += 1  # as a write between the activation and the command would
    assert await actor.stored() is not None and loads == [execution_id]
    assert await actor.stored() is not None and loads == [execution_id, execution_id]


async def test_a_resume_of_a_failed_execution_says_to_retry_it(engine: Node) -> None:
    """What a new user tries first on a failed execution (issue 20): the refusal names the way out."""
    execution_id = await start(engine, BROKEN)
    assert await wait_status(engine, execution_id, "failed") == "failed"
    with pytest.raises(InvalidTransition, match=r"cannot resume an execution that is failed; retry it instead") as e:
        await engine.resume(CALLER, execution_id, ControlRequest())
    assert e.value.current_status == "failed"
