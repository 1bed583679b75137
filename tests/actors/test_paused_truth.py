"""Paused is one truth everywhere (issue 19 point 6): the threads of a paused execution read `paused`,
`pausedDurationMs` counts the pause under way (by the engine's clock), and an element frozen by the pause does not
claim the pause as running time."""

from __future__ import annotations

from procengine.api.views import ControlRequest
from procengine.runtime.clock import parse_iso
from tests.support.clock import ShiftedClock
from tests.support.nodes import CALLER, EngineFactory, start, wait_element
from tests.support.processes import definition

NAP = definition({"key": "nap", "type": "delay", "durationMs": 60_000})


async def test_a_paused_execution_reads_paused_threads_and_its_pause_counts_while_it_lasts(
    make_engine: EngineFactory,
) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    reader = await make_engine(clock=clock)  # no actor of the execution: reads what Redis holds
    execution_id = await start(engine, NAP)
    await wait_element(engine, execution_id, "nap")
    paused = await engine.pause(CALLER, execution_id, ControlRequest())

    clock.advance(30_000)  # half a minute into the pause, by the engine's clock

    for node in (engine, reader):
        view = await node.status(CALLER, execution_id)
        assert [thread.status for thread in view.threads] == ["paused"]
        assert view.timing.pausedAt == paused.pausedAt
        assert view.timing.pausedDurationMs >= 30_000
    clock.advance(1_000)
    assert (await reader.status(CALLER, execution_id)).timing.pausedDurationMs >= 31_000

    resumed = await engine.resume(CALLER, execution_id, ControlRequest())
    for node in (engine, reader):
        view = await node.status(CALLER, execution_id)
        assert [thread.status for thread in view.threads] == ["running"]
        assert view.timing.pausedDurationMs == resumed.pausedDurationMs  # no jump at the resume: it was counted


async def test_a_delay_frozen_by_a_pause_reads_paused_and_stopped_at_the_pause(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    execution_id = await start(engine, NAP)
    await wait_element(engine, execution_id, "nap")
    paused = await engine.pause(CALLER, execution_id, ControlRequest())
    clock.advance(33_000)

    record = (await engine.elements(CALLER, execution_id)).items[0]
    assert (record.status, record.stoppedAt) == ("paused", paused.pausedAt)
    assert record.startedAt is not None and parse_iso(paused.pausedAt) - parse_iso(record.startedAt) < 5_000

    # cancelled while paused: it stopped running at the pause, not at the cancel 33 s later
    await engine.cancel(CALLER, execution_id, ControlRequest())
    record = (await engine.elements(CALLER, execution_id)).items[0]
    assert (record.status, record.stoppedAt) == ("interrupted", paused.pausedAt)


async def test_a_resumed_delay_reads_running_again(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await start(engine, NAP)
    await wait_element(engine, execution_id, "nap")
    await engine.pause(CALLER, execution_id, ControlRequest())
    await engine.resume(CALLER, execution_id, ControlRequest())

    record = (await engine.elements(CALLER, execution_id)).items[0]
    assert (record.status, record.stoppedAt) == ("running", None)
