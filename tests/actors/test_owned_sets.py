"""Each node's `owned` set (the executions it owns) and the reconciler that reads it only when a heartbeat lapses:
idle nodes read no execution; a dead node's executions are adopted from its set alone; the upgrade from the
layout before the sets (`<p>:active` only) seeds them once."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.node.node import Node
from procengine.store.executions import ExecutionStore, Outcome
from procengine.store.scripts import Scripts
from tests.support.nodes import CALLER, EngineFactory, crash, events, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

WAITING = definition({"key": "w", "type": "wait-signal", "signal": "s", "next": "e"}, {"key": "e", "type": "end"})


async def _owned(redis: Redis, node: Node, owner: str | None = None) -> set[int]:
    return {int(m) for m in await redis.smembers(node.keys.owned(owner or node.node_id))}  # type: ignore[misc]


async def _waiting(node: Node, count: int) -> list[int]:
    ids = [await start(node, WAITING) for _ in range(count)]
    for execution_id in ids:
        await wait_element(node, execution_id, "w")
    return ids


async def test_the_owned_set_follows_the_owner_through_creation_passivation_takeover_and_the_end(
    make_engine: EngineFactory, redis: Redis
) -> None:
    a = await make_engine()
    b = await make_engine()
    # created: in its creator's set
    [execution_id] = await _waiting(a, 1)
    assert execution_id in await _owned(redis, a)
    # paused and passivated (no owner): out of it
    await a.pause(CALLER, execution_id, ControlRequest())
    await poll(lambda: _owned(redis, a), lambda owned: execution_id not in owned, within=5)
    assert (await a.store.fields(execution_id))["owner"] == ""
    # resumed through b: b's
    await b.resume(CALLER, execution_id, ControlRequest())
    assert (await b.store.fields(execution_id))["owner"] == b.node_id
    assert execution_id in await _owned(redis, b)
    # taken over by another node: moved in the same write
    fields = await b.store.fields(execution_id)
    await a.store.takeover(
        execution_id, owner=a.node_id, expected_owner=b.node_id, expected_epoch=int(fields["epoch"]), log=None
    )
    assert execution_id in await _owned(redis, a) and execution_id not in await _owned(redis, b)
    # final: out
    await a.signal(CALLER, execution_id, "s", 1)
    assert await wait_status(a, execution_id, "completed") == "completed"
    await poll(lambda: _owned(redis, a), lambda owned: execution_id not in owned, within=5)
    assert a.node_id in {m.decode() for m in await redis.smembers(a.keys.known_nodes)}  # type: ignore[misc]


async def test_an_idle_pass_reads_no_execution_of_a_live_node(make_engine: EngineFactory) -> None:
    # given node a driving waiting executions, and paused ones it passivated
    a = await make_engine()
    waiting = await _waiting(a, 30)
    for execution_id in waiting[:15]:
        await a.pause(CALLER, execution_id, ControlRequest())
    b = await make_engine()
    read: list[Any] = []
    many_fields, active_ids = b.store.many_fields, b.store.active_ids

    async def counted_many_fields(ids: list[int], names: list[str]) -> list[dict[str, str]]:
        read.append(("many_fields", len(ids)))
        return await many_fields(ids, names)

    async def counted_active_ids() -> list[int]:
        read.append(("active_ids", 0))
        return await active_ids()

    b.store.many_fields = counted_many_fields  # type: ignore[method-assign]
    b.store.active_ids = counted_active_ids  # type: ignore[method-assign]
    # when b reconciles while a is alive, then it reads no execution (it used to read all 30 on every pass)
    assert await b.reconcile() == 0
    assert read == []


async def test_a_dead_nodes_executions_are_adopted_from_its_owned_set_alone(
    make_engine: EngineFactory, redis: Redis
) -> None:
    # given node a with running executions and a paused one its actor still holds, then killed
    a = await make_engine(passivate_after_ms=60_000)
    running = await _waiting(a, 5)
    paused = running.pop()
    await a.pause(CALLER, paused, ControlRequest())
    await crash(a)
    await redis.delete(a.keys.active)  # nothing reads the active set: the owned set is enough
    b = await make_engine()

    # then b adopts the running ones (actors) and the paused one (ownership only), and a's set empties
    await poll(
        lambda: b.store.many_fields([*running, paused], ["owner"]),
        lambda rows: all(row["owner"] == b.node_id for row in rows),
        within=5,
        every=0.05,
    )
    assert all(b.registry.get(i) is not None for i in running)
    assert b.registry.get(paused) is None
    assert ("adopted", None) in await events(b, paused)
    assert await _owned(redis, a) == set()
    assert await _owned(redis, b) >= {*running, paused}
    # and the paused one answers on b as before
    await b.resume(CALLER, paused, ControlRequest())
    await b.signal(CALLER, paused, "s", 1)
    assert await wait_status(b, paused, "completed") == "completed"


async def test_a_dead_node_with_nothing_left_is_forgotten(make_engine: EngineFactory, redis: Redis) -> None:
    a = await make_engine()
    [execution_id] = await _waiting(a, 1)
    await a.cancel(CALLER, execution_id, ControlRequest())
    await crash(a)
    b = await make_engine()
    b.reconciler.forget_after_s = 0.0
    await poll(lambda: redis.exists(a.keys.node(a.node_id)), lambda found: found == 0, within=5)

    async def known() -> set[bytes]:
        return await redis.smembers(b.keys.known_nodes)  # type: ignore[misc, no-any-return]

    await b.reconcile()  # the first pass sees it lifeless, a later one forgets it
    await poll(known, lambda found: a.node_id.encode() not in found, within=5)
    assert b.node_id.encode() in await known()


async def test_after_the_watchdog_a_node_takes_back_its_own_executions_from_its_owned_set(engine: Node) -> None:
    [execution_id] = await _waiting(engine, 1)
    epoch = int((await engine.store.fields(execution_id))["epoch"])
    await engine._stop_background("reconciler")  # the passes below are the test's own
    # the watchdog stops every actor without writing; the notices of the actors' ends are left aside, so that
    # only the watchdog's flag can lead the reconciler to the execution
    await engine._stop_actors()
    engine.registry.take_ended()
    assert engine.registry.get(execution_id) is None

    await engine.reconcile()

    assert engine.registry.get(execution_id) is not None
    fields = await engine.store.fields(execution_id)
    assert (fields["owner"], int(fields["epoch"])) == (engine.node_id, epoch + 1)
    assert engine.reconciler.watchdog_fired is False


async def test_the_layout_before_the_owned_sets_is_seeded_once_and_a_killed_node_is_adopted(
    make_engine: EngineFactory, redis: Redis
) -> None:
    # given executions written as earlier versions wrote them: in `<p>:active` only, no owned set, no known nodes
    a = await make_engine()
    running = await _waiting(a, 3)
    await crash(a)  # kill -9: its heartbeat is left to expire
    await redis.delete(a.keys.owned(a.node_id), a.keys.known_nodes, a.keys.owned_seeded)
    assert len(await redis.smembers(a.keys.active)) == 3  # type: ignore[misc]

    # when a node of this version starts, then it seeds the sets (once) and adopts them
    b = await make_engine()
    await poll(
        lambda: b.store.many_fields(running, ["owner"]),
        lambda rows: all(row["owner"] == b.node_id for row in rows),
        within=5,
        every=0.05,
    )
    assert await redis.exists(b.keys.owned_seeded) == 1
    assert a.node_id.encode() in await redis.smembers(b.keys.known_nodes)  # type: ignore[misc]
    assert await _owned(redis, b) >= set(running)


async def test_what_a_failed_pass_could_not_read_is_looked_at_again(engine: Node) -> None:
    [execution_id] = await _waiting(engine, 1)
    await engine._stop_background("reconciler")
    await engine._stop_actors()
    many_fields = engine.store.many_fields

    async def away(ids: list[int], names: list[str]) -> list[dict[str, str]]:
        engine.store.many_fields = many_fields  # type: ignore[method-assign]
        raise ConnectionError("Redis away")

    engine.store.many_fields = away  # type: ignore[method-assign]
    with pytest.raises(Exception, match="away"):
        await engine.reconcile()
    assert engine.registry.get(execution_id) is None

    await engine.reconcile()  # Redis back: the watchdog's flag and the ended actors were kept

    assert engine.registry.get(execution_id) is not None


async def test_beside_the_script_as_on_a_cluster_a_takeover_moves_the_execution_and_a_take_back_keeps_it(
    engine: Node, redis: Redis
) -> None:
    beside = ExecutionStore(redis, engine.keys, Scripts.register(redis), log_maxlen=100, indexes_in_script=False)
    [execution_id] = await _waiting(engine, 1)

    async def take(owner: str, expected: str) -> None:
        epoch = int((await engine.store.fields(execution_id))["epoch"])
        taken = await beside.takeover(
            execution_id, owner=owner, expected_owner=expected, expected_epoch=epoch, log=None
        )
        assert taken.outcome is Outcome.OK

    await take(engine.node_id, engine.node_id)  # a take-back: it stays in the node's set
    assert execution_id in await _owned(redis, engine)
    await take("other", engine.node_id)  # another node's now: moved
    assert execution_id not in await _owned(redis, engine)
    assert execution_id in await _owned(redis, engine, "other")


@pytest.mark.parametrize("in_script", [True, False], ids=["in the script", "beside it, as on a cluster"])
async def test_an_execution_leaves_the_active_and_owned_sets_in_its_final_write(
    engine: Node, redis: Redis, monkeypatch: pytest.MonkeyPatch, in_script: bool
) -> None:
    """No round trip of its own after the final write (issue 21, goal 3: CPU per step): the two SREMs go with it."""
    monkeypatch.setattr(engine.store, "indexes_in_script", in_script)
    calls: list[tuple[int, ...]] = []
    original = engine.store.deactivate

    async def deactivate(*execution_ids: int) -> None:
        calls.append(execution_ids)
        await original(*execution_ids)

    monkeypatch.setattr(engine.store, "deactivate", deactivate)
    [execution_id] = await _waiting(engine, 1)
    assert execution_id in await _owned(redis, engine)
    assert await redis.sismember(engine.keys.active, str(execution_id))  # type: ignore[misc]
    await engine.signal(CALLER, execution_id, "s", 1)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    await poll(lambda: _owned(redis, engine), lambda owned: execution_id not in owned, within=5)
    assert not await redis.sismember(engine.keys.active, str(execution_id))  # type: ignore[misc]
    assert calls == []
