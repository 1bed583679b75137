"""Rewind in place across nodes (issue 22, point 2): asked on a node that does not drive the execution, it is
forwarded to the owner's actor; after the owner is killed (kill -9), another node adopts the execution and
rewinds it; either way the write is the owner's, fenced by its epoch, and the execution goes on from the
checkpoint on resume."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import ControlRequest, RewindRequest
from procengine.node.node import Node
from tests.actors.test_quarantine import kill
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

TWO_WAITS = definition(
    {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": "approve"},
    {"key": "approve", "type": "wait-signal", "signal": "go", "next": "bump"},
    {"key": "bump", "type": "set-variable", "set": {"n": "n + 1"}, "next": "again"},
    {"key": "again", "type": "wait-signal", "signal": "go", "next": "done"},
    {"key": "done", "type": "end"},
)
VIA_B = Caller(tenant="default", by="default", request_id="via-b")


async def _at_again(a: Node) -> tuple[int, int]:
    """An execution of TWO_WAITS past its first wait, and the kept checkpoint of that wait's start."""
    execution_id = await start(a, TWO_WAITS)
    await wait_element(a, execution_id, "approve")
    await a.signal(CALLER, execution_id, "go", None)
    await wait_element(a, execution_id, "again")
    kept = (await a.checkpoints(CALLER, execution_id, limit=50, cursor=None)).items
    return execution_id, min(c.seq for c in kept if c.elementKey == "approve")


async def _n(engine: Node, execution_id: int) -> object:
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None
    return memory["variables"]["n"]


async def test_a_rewind_asked_on_another_node_is_the_owners(make_engine: EngineFactory) -> None:
    a, b = await make_engine(), await make_engine()
    await asyncio.gather(a.router.serving.wait(), b.router.serving.wait())
    execution_id, seq = await _at_again(a)
    await b.pause(VIA_B, execution_id, ControlRequest())

    rewound = await b.rewind(VIA_B, execution_id, RewindRequest(checkpoint=seq, reason="via b"))

    assert rewound.checkpoint == seq and rewound.rewoundFrom == "paused"
    fields = await a.store.fields(execution_id)
    assert fields["owner"] == a.node_id and fields["epoch"] == "1"  # a's actor wrote it: no change of hands
    assert await _n(a, execution_id) == 1
    await b.resume(VIA_B, execution_id, ControlRequest())
    await a.signal(CALLER, execution_id, "go", None)  # the rewound wait takes it: `bump` runs again
    assert await poll(lambda: _n(a, execution_id), lambda n: n == 2, within=10) == 2


async def test_a_rewind_after_the_owner_is_killed(make_engine: EngineFactory, redis: Redis) -> None:
    a, b = await make_engine(), await make_engine()
    execution_id, seq = await _at_again(a)
    await a.pause(CALLER, execution_id, ControlRequest())
    await kill(a, redis)

    rewound = await b.rewind(CALLER, execution_id, RewindRequest(checkpoint=seq))

    assert rewound.rewoundFrom == "paused"
    fields = await b.store.fields(execution_id)
    assert fields["owner"] == b.node_id and int(fields["epoch"]) >= 2  # b took it over, fencing a
    await b.resume(CALLER, execution_id, ControlRequest())
    await b.signal(CALLER, execution_id, "go", None)
    await b.signal(CALLER, execution_id, "go", None)
    assert await wait_status(b, execution_id, "completed") == "completed"
    assert await _n(b, execution_id) == 2
    events = [e.event for e in (await b.log(CALLER, execution_id)).items]
    assert events.count("rewound") == 1 and events.index("rewound") > events.index("paused")


async def test_a_fork_after_the_owner_is_killed(make_engine: EngineFactory, redis: Redis) -> None:
    from procengine.api.views import ForkRequest

    a, b = await make_engine(), await make_engine()
    execution_id, seq = await _at_again(a)
    await kill(a, redis)

    forked = await b.fork(CALLER, execution_id, ForkRequest(checkpoint=seq))

    assert forked.status == "running" and forked.executionID != execution_id
    fields = await b.store.fields(forked.executionID)
    assert fields["owner"] == b.node_id
    await b.signal(CALLER, forked.executionID, "go", None)
    await b.signal(CALLER, forked.executionID, "go", None)
    assert await wait_status(b, forked.executionID, "completed") == "completed"
    assert await _n(b, forked.executionID) == 2


async def test_a_wait_the_rewind_leaves_behind_ends_its_run_and_a_cancel_after_leaves_nothing_running(
    engine: Node,
) -> None:
    # given an execution paused in its second wait (its record says running), and the checkpoint of its first
    execution_id, seq = await _at_again(engine)
    await engine.pause(CALLER, execution_id, ControlRequest())
    paused_at = (await engine.status(CALLER, execution_id)).timing.pausedAt

    # when it is rewound to the first wait
    await engine.rewind(CALLER, execution_id, RewindRequest(checkpoint=seq))

    # then the second wait's run ended at the pause (the log says so), and the first one's is under way again
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert (records["again"].status, records["again"].stoppedAt) == ("interrupted", paused_at)
    assert records["approve"].status == "paused"  # (a paused execution's element under way reads paused)
    [rewound] = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "rewound"]
    assert rewound.detail["interrupted"] == ["again"]
    # and a cancel leaves no record running
    await engine.cancel(CALLER, execution_id, ControlRequest())
    running = [e.key for e in (await engine.elements(CALLER, execution_id)).items if e.status == "running"]
    assert running == []
