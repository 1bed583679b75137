"""The executions with a task in flight are kept as tasks start and end (actors/inflight.py), so that the node's
lease check reads those, not every actor it runs (issue 21, goal 2)."""

from __future__ import annotations

import asyncio

from procengine.actors.inflight import InFlight
from procengine.node.node import Node
from tests.support.nodes import Gate, start, wait_status
from tests.support.polling import until
from tests.support.processes import KYC, WAIT


def test_an_execution_counts_until_its_last_task_has_ended() -> None:
    # given two actors of one execution with a task each (one stopping, its successor), and another execution
    in_flight = InFlight()
    in_flight.began(7)
    in_flight.began(7)
    in_flight.began(9)

    # when the first of the two ends, and the other execution's
    in_flight.ended(7)
    in_flight.ended(9)

    # then the execution still has one, the other none; an end never counted is harmless
    assert in_flight.ids() == [7]
    in_flight.ended(7)
    in_flight.ended(7)
    assert in_flight.ids() == [] and len(in_flight) == 0


async def test_the_lease_check_sees_the_running_task_and_not_the_parked_actors(engine: Node, gate: Gate) -> None:
    # given actors parked on a signal and one execution whose task runs
    parked = [await start(engine, WAIT) for _ in range(5)]
    running = await start(engine, KYC, {"customer": "ada"})
    async with asyncio.timeout(10):
        await gate.entered.wait()

    # then only that execution is in flight, and the lease check's actors are its actor alone
    assert engine.ctx.in_flight.ids() == [running]
    assert engine.registry.with_tasks_in_flight() == [engine.registry.get(running)]
    assert await engine.check_leases() == 0
    assert all(engine.registry.get(execution_id) is not None for execution_id in parked)

    # when the task ends, nothing is in flight any more
    gate.release.set()
    await wait_status(engine, running, "completed")
    await until(lambda: not engine.ctx.in_flight.ids())
    assert engine.registry.with_tasks_in_flight() == []


async def test_a_running_task_takes_one_task_for_its_attempt_and_none_to_watch_its_stop(
    engine: Node, gate: Gate
) -> None:
    # given an execution whose task runs
    running = await start(engine, KYC, {"customer": "ada"})
    async with asyncio.timeout(10):
        await gate.entered.wait()

    # then its attempt is one task, and nothing waits on the lane's stop in a task of its own (a stop calls back:
    # a task step used to cost three tasks, a fifth of the task path's CPU)
    coroutines = [task.get_coro().__qualname__ for task in asyncio.all_tasks()]  # type: ignore[union-attr]
    assert coroutines.count("run_attempt") == 1
    assert "Event.wait" not in coroutines

    # and the attempt ends as before
    gate.release.set()
    await wait_status(engine, running, "completed")
