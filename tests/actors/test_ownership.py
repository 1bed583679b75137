"""Single ownership: fencing epochs refuse stale writers; dead nodes' executions are adopted."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.node.node import Node
from procengine.store.executions import Commit, LogRecord, Outcome
from tests.support.nodes import (
    CALLER,
    EngineFactory,
    Gate,
    completed_nodes,
    crash,
    events,
    start,
    wait_element,
    wait_status,
)
from tests.support.polling import poll
from tests.support.processes import definition


async def test_a_stale_owner_cannot_write_after_a_takeover(engine: Node, gate: Gate) -> None:
    execution_id = await start(
        engine, definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, {"key": "e", "type": "end"})
    )
    await gate.entered.wait()
    actor = engine.registry.get(execution_id)
    assert actor is not None
    fields = await engine.store.fields(execution_id)

    taken = await engine.store.takeover(
        execution_id, owner="intruder", expected_owner=fields["owner"], expected_epoch=int(fields["epoch"]), log=None
    )
    assert taken.outcome is Outcome.OK and taken.epoch == 2
    gate.release.set()
    await actor.stopped.wait()

    assert ("element-completed", "work") not in await events(engine, execution_id)
    after = await engine.store.fields(execution_id)
    assert (after["owner"], after["epoch"], await completed_nodes(engine, execution_id)) == ("intruder", "2", 0)


async def test_commit_with_an_old_epoch_writes_nothing(engine: Node, redis: Redis) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    keys = engine.keys.execution(execution_id)
    before = {key: await redis.dump(key) for key in keys.all()}

    result = await engine.store.commit(
        execution_id,
        Commit(execution={"status": "completed"}, log=[LogRecord(0, "completed")]),
        epoch=0,
        expect="running",
    )

    assert result.outcome is Outcome.FENCED
    assert {key: await redis.dump(key) for key in keys.all()} == before


async def test_takeover_is_compare_and_set(engine: Node) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    fields = await engine.store.fields(execution_id)
    attempts = await asyncio.gather(
        *(
            engine.store.takeover(
                execution_id,
                owner=f"n{i}",
                expected_owner=fields["owner"],
                expected_epoch=int(fields["epoch"]),
                log=None,
            )
            for i in range(5)
        )
    )
    assert [a.outcome for a in attempts].count(Outcome.OK) == 1


async def test_a_dead_nodes_running_executions_are_adopted_and_finish(make_engine: EngineFactory) -> None:
    first = await make_engine()
    delayed = await start(
        first, definition({"key": "nap", "type": "delay", "durationMs": 300, "next": "e"}, {"key": "e", "type": "end"})
    )
    waiting = await start(first, definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="q"))
    paused = await start(first, definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="q"))
    await wait_element(first, paused, "w")
    await first.pause(CALLER, paused, ControlRequest())
    await crash(first)

    second = await make_engine()
    assert await wait_status(second, delayed, "completed") == "completed"

    assert [e for e in await events(second, delayed)].count(("element-completed", "nap")) == 1
    assert "adopted" in [e for e, _ in await events(second, delayed)]
    await poll(lambda: second.store.fields(waiting), lambda fields: fields["owner"] == second.node_id, within=5)
    await second.signal(CALLER, waiting, "s", 1)
    assert await wait_status(second, waiting, "completed") == "completed"
    assert (await second.status(CALLER, paused)).status == "paused"
    await second.resume(CALLER, paused, ControlRequest())
    await second.signal(CALLER, paused, "s", 1)
    assert await wait_status(second, paused, "completed") == "completed"


async def test_a_node_without_the_handlers_does_not_adopt(make_engine: EngineFactory, redis: Redis) -> None:
    from procengine.tasks import builtin_handlers

    first = await make_engine()
    execution_id = await start(first, definition({"key": "work", "type": "task", "handler": "gate"}))
    await crash(first)
    owner = (await first.store.fields(execution_id))["owner"]

    async with Node(redis, first.settings, builtin_handlers()) as lacking:  # no "gate" here
        # the first node's heartbeat expires (a Redis TTL: real time)
        await poll(lambda: redis.exists(first.keys.node(first.node_id)), lambda found: found == 0, within=5)
        assert await lacking.reconcile() == 0

    fields = await first.store.fields(execution_id)
    assert (fields["status"], fields["owner"]) == ("running", owner)


async def test_many_orphans_are_adopted_together_and_a_broken_one_does_not_hold_them_up(
    make_engine: EngineFactory, redis: Redis
) -> None:
    first = await make_engine()
    waiting = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="many")
    ids = [await start(first, waiting) for _ in range(120)]  # more than one adoption group
    for execution_id in ids:
        await wait_element(first, execution_id, "w")
    await crash(first)
    broken = ids[7]
    await redis.hset(f"{first.settings.prefix}:exec:{{{broken}}}:state", "memory", b"\xc1 not msgpack")

    second = await make_engine()
    rows = await poll(
        lambda: second.store.many_fields(ids, ["status", "owner"]),
        lambda rows: all(row["owner"] == second.node_id or row["status"] == "failed" for row in rows),
        every=0.05,
    )

    assert (await second.status(CALLER, broken)).status == "failed"  # unreadable while running: failed, visibly
    adopted = [i for i, row in zip(ids, rows, strict=True) if row["owner"] == second.node_id and i != broken]
    assert len(adopted) == 119
    await second.signal(CALLER, ids[0], "s", 1)
    assert await wait_status(second, ids[0], "completed") == "completed"


async def test_a_node_takes_back_its_own_stopped_executions_and_never_adopts_from_itself(
    engine: Node, gate: Gate
) -> None:
    # given a running execution whose actor this node stopped (what its heartbeat watchdog does), still its own
    execution_id = await start(
        engine, definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, {"key": "e", "type": "end"})
    )
    await gate.entered.wait()
    epoch = int((await engine.store.fields(execution_id))["epoch"])
    await engine.registry.stop_all()
    assert engine.registry.get(execution_id) is None

    # when the reconciler runs, then the node drives it again: taken back, not adopted
    adopted_before = engine.metrics.adopted._value.get()
    assert await engine.reconcile() == 0
    assert engine.registry.get(execution_id) is not None
    fields = await engine.store.fields(execution_id)
    assert (fields["owner"], int(fields["epoch"])) == (engine.node_id, epoch + 1)
    assert engine.metrics.adopted._value.get() == adopted_before
    gate.release.set()
    assert await wait_status(engine, execution_id, "completed") == "completed"
    log = await events(engine, execution_id)
    assert "adopted" not in [event for event, _ in log]
    assert log.count(("element-started", "work")) == 2  # cut short by the stop, run again: at least once
    assert [entry.detail.get("rerun") for entry in (await engine.log(CALLER, execution_id)).items
            if (entry.event, entry.elementKey) == ("element-started", "work")] == [None, True]  # fmt: skip


async def test_a_takeover_after_a_write_the_taker_did_not_load_is_refused(engine: Node) -> None:
    """A Redis failover can keep an owner's heartbeat away long enough for another node to load its execution
    and take it over, while the owner, still alive, writes a step in between: the taker would go on from the
    state before that step and complete the element again (seen under make chaos --mode failover)."""
    execution_id = await start(
        engine,
        definition({"key": "w", "type": "wait-signal", "signal": "s", "next": "e"}, {"key": "e", "type": "end"}),
    )
    await wait_element(engine, execution_id, "w")
    loaded = await engine.store.load(execution_id)  # what the other node read
    assert loaded is not None

    await engine.signal(CALLER, execution_id, "s", {"ok": True})  # the owner writes a step after that read
    await wait_status(engine, execution_id, "completed")

    stale = await engine.store.takeover(
        execution_id,
        owner="other",
        expected_owner=loaded.fields["owner"],
        expected_epoch=loaded.epoch,
        log=None,
        expected_commit=loaded.fields["lastCommit"],
    )
    assert stale.outcome is Outcome.CONFLICT
    fresh = await engine.store.load(execution_id)
    assert fresh is not None
    taken = await engine.store.takeover(
        execution_id,
        owner="other",
        expected_owner=fresh.fields["owner"],
        expected_epoch=fresh.epoch,
        log=None,
        expected_commit=fresh.fields["lastCommit"],
    )
    assert taken.outcome is Outcome.OK
