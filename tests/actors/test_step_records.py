"""An element's record after a step control cut its run short (found by the model-based test): an element retry or
a move of a lane whose element had started (a wait, a delay) ends that run's record `interrupted` in the step's own
write, so that a cancel (or a failure) after it does not leave the record `running` for good."""

from __future__ import annotations

import pytest

from procengine.api.views import ControlRequest, ElementRetryRequest, MoveRequest
from procengine.node.node import Node
from tests.support.nodes import CALLER, start, wait_element, wait_status
from tests.support.processes import definition

WAITS = definition(
    {"key": "wait", "type": "wait-signal", "signal": "go", "next": "done"},
    {"key": "done", "type": "end"},
    key="waits-for-records",
)


@pytest.mark.parametrize("action", ["retry", "move"])
async def test_a_run_cut_short_by_a_step_is_recorded_interrupted(engine: Node, action: str) -> None:
    execution_id = await start(engine, WAITS)
    await wait_element(engine, execution_id, "wait")
    await engine.pause(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "paused") == "paused"
    if action == "retry":
        await engine.retry_element(CALLER, execution_id, "wait", ElementRetryRequest())
    else:
        await engine.move(CALLER, execution_id, MoveRequest(lane="main", before="wait"))

    await engine.cancel(CALLER, execution_id, ControlRequest())
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert records["wait"].status == "interrupted" and records["wait"].stoppedAt is not None, records["wait"]


FAILS = definition(
    {"key": "boom", "type": "task", "handler": "fail", "input": {"message": "'boom'"}, "next": "done"},
    {"key": "done", "type": "end"},
    key="fails-for-records",
)


async def test_a_failed_elements_record_stays_failed_when_it_is_retried(engine: Node) -> None:
    # (its run ended: it failed; the retry is a new run, which its next start records)
    execution_id = await start(engine, FAILS)
    assert await wait_status(engine, execution_id, "failed") == "failed"
    await engine.retry_element(CALLER, execution_id, "boom", ElementRetryRequest())
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert records["boom"].status == "failed", records["boom"]
