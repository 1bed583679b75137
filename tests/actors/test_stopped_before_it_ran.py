"""A request put in the mailbox of an actor whose task was cancelled before its first step (the heartbeat
watchdog's stop_all, between the activation that spawned it and its first turn of the loop) must not wait
for an answer that can never come: the chaos kill run saw a signal unanswered after 30 s of client retries."""

from __future__ import annotations

import asyncio

from procengine.actors.actor import ExecutionActor
from procengine.api.views import ControlRequest
from tests.support.nodes import CALLER, EngineFactory, start, wait_element
from tests.support.processes import definition

WAIT = definition(
    {"key": "approve", "type": "wait-signal", "signal": "approval", "into": "approval", "next": "done"},
    {"key": "done", "type": "end"},
)


async def test_a_request_to_an_actor_cancelled_before_it_ran_is_answered_at_once(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(pause_grace_ms=100)
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "approve")
    await engine.registry.stop_all()  # the next request activates the execution again
    spawn = engine.registry.spawn
    cancelled: list[ExecutionActor] = []

    def spawn_then_stop(actor: ExecutionActor) -> None:
        # what stop_all does when the heartbeat task's turn comes before the new actor's first step
        spawn(actor)
        if not cancelled:
            cancelled.append(actor)
            for task in engine.registry._tasks:
                task.cancel()

    engine.registry.spawn = spawn_then_stop  # type: ignore[method-assign]
    # when a pause reaches it, then: answered (by an actor activated again), well within the 30 s a stuck
    # request used to wait
    async with asyncio.timeout(5):
        paused = await engine.pause(CALLER, execution_id, ControlRequest())
    assert paused.status == "paused"
    assert cancelled and cancelled[0].stopped.is_set()
