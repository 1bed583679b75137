"""An execution whose threads start on a wait for a signal is created with the wait begun (node/starting.py
`begun_waits`): its creation is its first checkpoint, and its log reads as if the lane had begun it."""

from __future__ import annotations

from procengine.api.views import BatchStartRequest, StartRequest
from procengine.node.node import Node
from tests.support.nodes import CALLER, events, start, wait_status
from tests.support.polling import until
from tests.support.processes import definition

WAIT = definition(
    {"key": "w", "type": "wait-signal", "signal": "go", "into": "got", "next": "done"},
    {"key": "done", "type": "end"},
    key="first-wait",
)


def _parked(engine: Node, execution_id: int) -> bool:
    actor = engine.registry.get(execution_id)
    return actor is not None and bool(actor.lanes._idle_lanes) and actor.lanes._all_idle()  # its lanes ran and wait


async def test_a_start_on_a_wait_writes_once_and_logs_the_wait_after_the_start(engine: Node) -> None:
    execution_id = await start(engine, WAIT)
    await until(lambda: _parked(engine, execution_id))

    actor = engine.registry.get(execution_id)
    assert actor is not None and actor._checkpoints_asked == 0  # the creation was the only write
    assert await events(engine, execution_id) == [("started", None), ("element-started", "w")]
    elements = {e.key: e.status for e in (await engine.elements(CALLER, execution_id)).items}
    assert elements == {"w": "running"}
    log = (await engine.log(CALLER, execution_id)).items
    assert log[0].at == log[1].at

    await engine.signal(CALLER, execution_id, "go", {"ok": 1})

    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await engine.state(CALLER, execution_id)).memory["variables"]["got"] == {"ok": 1}
    assert [event for event, _ in await events(engine, execution_id)] == [
        "started", "element-started", "signal-received", "element-completed", "element-completed", "completed",
    ]  # fmt: skip


async def test_each_thread_that_starts_on_a_wait_has_it_begun_the_others_run(engine: Node) -> None:
    both = definition(
        key="first-wait-two",
        threads=[
            {"key": "a", "elements": [{"key": "wa", "type": "wait-signal", "signal": "go", "timeoutMs": 60_000}]},
            {"key": "b", "elements": [{"key": "set", "type": "set-variable", "set": {"x": "1"}}]},
        ],
    )
    summary, _ = await engine.register_process(CALLER, both)

    answer = await engine.start_many(CALLER, BatchStartRequest(items=[StartRequest(processID=summary.processID)]))

    execution_id = answer.items[0].executionID
    assert execution_id is not None
    await until(lambda: _parked(engine, execution_id))
    seen = await events(engine, execution_id)
    assert seen[:2] == [("started", None), ("element-started", "wa")]
    assert ("element-completed", "set") in seen
    status = await engine.status(CALLER, execution_id)
    assert status.status == "running"
