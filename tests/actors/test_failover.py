"""A Redis failover must not make nodes run one task at once: a node that loses an execution cancels its running
task at once, and after a failover (every heartbeat gone together) no node takes a live node's executions."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.errors import Fenced
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, completed_nodes, start, wait_element
from tests.support.polling import poll
from tests.support.processes import definition

HELD = definition({"key": "work", "type": "task", "handler": "hold", "next": "e"}, {"key": "e", "type": "end"})


class Hold:
    """A task handler that runs until it is cancelled; per node, whether it was entered and cancelled."""

    def __init__(self) -> None:
        self.entered: dict[str, asyncio.Event] = {}
        self.cancelled: dict[str, asyncio.Event] = {}
        self.node = ""
        """The node whose attempt comes next (the nodes share one handler registry here)."""

    def on(self, node_id: str) -> None:
        """The next attempt runs on `node_id`."""
        self.node = node_id
        self.entered.setdefault(node_id, asyncio.Event())
        self.cancelled.setdefault(node_id, asyncio.Event())

    async def run(self, task_input: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        self.entered[node].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled[node].set()
            raise
        return {}


@pytest.fixture
def hold(handlers: HandlerRegistry) -> Hold:
    held = Hold()
    handlers.register("hold", held.run)
    return held


async def test_a_node_whose_execution_is_taken_cancels_its_running_task_at_once(
    engine: Node, hold: Hold, caplog: pytest.LogCaptureFixture
) -> None:
    # given a task running on this node
    hold.on(engine.node_id)
    execution_id = await start(engine, HELD)
    await hold.entered[engine.node_id].wait()
    fields = await engine.store.fields(execution_id)

    # when another node takes the execution over (its write is not due for a long time)
    taken = await engine.store.takeover(
        execution_id, owner="other", expected_owner=engine.node_id, expected_epoch=int(fields["epoch"]), log=None
    )
    assert taken.outcome.value == "OK"

    # then the handler here is cancelled within a few heartbeats, and the log says who has it now
    with caplog.at_level(logging.WARNING, logger="procengine.actors.actor"):
        async with asyncio.timeout(2):
            await hold.cancelled[engine.node_id].wait()
    lost = [r.getMessage() for r in caplog.records if "lost to node" in r.getMessage()]
    assert lost == [
        f"execution {execution_id}: lost to node other at epoch 2 (this node {engine.node_id} held epoch 1): seen by "
        "this node's check of the executions whose tasks it runs; its running tasks are cancelled"
    ]
    after = await engine.store.fields(execution_id)
    assert (after["owner"], after["epoch"], await completed_nodes(engine, execution_id)) == ("other", "2", 0)


async def test_the_old_owner_stops_its_task_when_another_node_adopts_it(
    make_engine: EngineFactory, redis: Redis, hold: Hold
) -> None:
    # given a task running on node a, whose heartbeat stops reaching Redis while its actors go on (a partition,
    # or a failover that a's watchdog did not see)
    a = await make_engine()
    hold.on(a.node_id)
    execution_id = await start(a, HELD)
    await hold.entered[a.node_id].wait()
    for task in [t for t in a._background if t.get_name() == "heartbeat"]:
        task.cancel()
    await redis.delete(a.keys.node(a.node_id))

    # when node b adopts the execution
    b = await make_engine()
    hold.on(b.node_id)
    await hold.entered[b.node_id].wait()

    # then a's attempt is cancelled at once, not left running beside b's until a's next write
    async with asyncio.timeout(2):
        await hold.cancelled[a.node_id].wait()
    assert not hold.cancelled[b.node_id].is_set()
    assert a.registry.get(execution_id) is None


async def test_after_a_failover_no_node_takes_a_live_nodes_executions(make_engine: EngineFactory, redis: Redis) -> None:
    # given two nodes, each driving executions
    a, b = await make_engine(), await make_engine()
    waiting = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="w")
    on_a = [await start(a, waiting) for _ in range(3)]
    on_b = [await start(b, waiting) for _ in range(3)]
    for node, ids in ((a, on_a), (b, on_b)):
        for execution_id in ids:
            await wait_element(node, execution_id, "w")
    before = await a.store.many_fields(on_a + on_b, ["owner", "epoch"])

    # when Redis fails over to a replica on which every heartbeat has expired (or restarts without them)
    await redis.delete(a.keys.node(a.node_id), b.keys.node(b.node_id))

    # then neither node takes the other's executions: not before its own heartbeat is back, nor in the TTL after
    assert (await a.reconcile(), await b.reconcile()) == (0, 0)
    for node in (a, b):  # renewed by the node's own heartbeat task
        await poll(functools.partial(redis.exists, node.keys.node(node.node_id)), within=2)
    assert (await a.reconcile(), await b.reconcile()) == (0, 0)
    assert await a.store.many_fields(on_a + on_b, ["owner", "epoch"]) == before

    # and a node that is really gone is still found dead, one TTL later
    for task in b._background:
        task.cancel()
    await asyncio.gather(*b._background, return_exceptions=True)
    b._background = []
    await b.registry.stop_all()
    await redis.delete(b.keys.node(b.node_id))
    await poll(
        lambda: a.store.many_fields(on_b, ["owner"]),
        lambda rows: {row["owner"] for row in rows} == {a.node_id},
        within=5,
        every=0.05,
    )


async def test_a_write_refused_by_the_epoch_names_the_new_owner(engine: Node, caplog: pytest.LogCaptureFixture) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="w"))
    await wait_element(engine, execution_id, "w")
    fields = await engine.store.fields(execution_id)
    await engine.store.takeover(
        execution_id, owner="other", expected_owner=engine.node_id, expected_epoch=int(fields["epoch"]), log=None
    )

    actor = engine.registry.get(execution_id)
    assert actor is not None
    with caplog.at_level(logging.WARNING, logger="procengine.actors.actor"):
        with pytest.raises(Fenced):  # 503: the client tries again, and reaches the new owner
            await engine.signal(CALLER, execution_id, "s", 1)
        await actor.stopped.wait()

    lost = [r.getMessage() for r in caplog.records if "lost to node" in r.getMessage()]
    assert len(lost) == 1 and lost[0].startswith(
        f"execution {execution_id}: lost to node other at epoch 2 (this node {engine.node_id} held epoch 1): "
        f"execution {execution_id}: epoch 1 is stale (now 2)"
    )
