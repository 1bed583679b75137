"""The key a call-process starts its child with is the engine's own, in a key space apart from clients' idempotency
keys: no client key, whatever it spells, can take a child's place (the bug Cadence, Temporal and Dapr each had)."""

from __future__ import annotations

from redis.asyncio import Redis

from procengine.api.views import StartRequest
from procengine.engine.outcomes import StartChild
from procengine.engine.state import StackEntry
from procengine.node.node import Node
from tests.support.nodes import CALLER, Gate, start, wait_status
from tests.support.processes import KYC, WAIT, parent


async def test_a_client_key_spelled_like_a_child_key_does_not_take_the_childs_place(
    engine: Node, gate: Gate, redis: Redis
) -> None:
    gate.release.set()
    await engine.register_process(CALLER, KYC)
    other, _ = await engine.register_process(CALLER, WAIT)
    last_id = int(await redis.get(engine.keys.sequence("execution")) or 0)
    parent_id = last_id + 2  # the client's start takes the next id, the parent the one after
    # the parent's call-process is its first element (order 1), on its first attempt
    squatter, created = await engine.start_execution(
        CALLER, StartRequest(processID=other.processID, idempotencyKey=f"child-of-{parent_id}.1.1")
    )
    assert created

    assert await start(engine, parent(), {"order": {"customer": "ada"}}) == parent_id

    assert await wait_status(engine, parent_id, "completed", "failed") == "completed"
    status = await engine.status(CALLER, parent_id)
    assert squatter.executionID not in status.children and len(status.children) == 1
    [child_id] = status.children
    child_key = engine.keys.child_start("default", f"{parent_id}.1.1")
    assert int(await redis.get(child_key) or 0) == child_id
    assert await redis.pttl(child_key) > 0  # it expires with the child's retention, as a client key does
    # and the client's key still answers the client's execution
    again, created = await engine.start_execution(
        CALLER, StartRequest(processID=other.processID, idempotencyKey=f"child-of-{parent_id}.1.1")
    )
    assert (again.executionID, created) == (squatter.executionID, False)


async def test_a_child_started_under_the_old_key_before_an_upgrade_is_found_again(engine: Node, gate: Gate) -> None:
    """A parent that started its child under the key of earlier versions (`child-of-<parent>.<order>.<attempt>`,
    in the clients' space) and crashed before it checkpointed the child's id starts no second child."""
    kyc, _ = await engine.register_process(CALLER, KYC)
    parent_id = 10**9  # no such execution needs to exist for the look-up
    old, _ = await engine.start_execution(
        CALLER,
        StartRequest(processID=kyc.processID, idempotencyKey=f"child-of-{parent_id}.3.1"),
        parent=parent_id,
        depth=1,
    )
    entry = StackEntry(
        element_id=1, element_key="call", element_type="call-process", execution_order=3, thread_key="main"
    )
    step = StartChild(entry, "kyc", None, {})

    assert await engine.ctx.children.start("default", parent_id, step, 1) == old.executionID
    gate.release.set()
