"""parallel and for-each on a real engine: one runner per lane, the lanes' paths in the stored stack, pause
freezing every lane and resume going on from the stored snapshot, a failed iteration stopping the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from procengine.api.views import ControlRequest
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry, TaskContext, builtin_handlers
from tests.support.nodes import CALLER, start, wait_status
from tests.support.processes import definition


class Lanes:
    """A task handler that counts how many run at once, blocks while `hold` is clear and fails for `fail_on`."""

    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.running = 0
        self.most = 0
        self.calls: list[Any] = []
        self.fail_on: Any = object()
        self.changed = asyncio.Condition()

    async def run(self, task_input: dict[str, Any]) -> Any:
        self.calls.append(task_input["item"])
        self.running += 1
        self.most = max(self.most, self.running)
        async with self.changed:
            self.changed.notify_all()
        try:
            if task_input["item"] == self.fail_on:
                raise OutOfStock(f"no {task_input['item']}")
            await self.hold.wait()
            return {"shipped": task_input["item"]}
        finally:
            self.running -= 1

    async def until_running(self, count: int) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: self.running >= count)


class OutOfStock(Exception):
    pass


@pytest.fixture
def lanes() -> Lanes:
    return Lanes()


@pytest.fixture
def handlers(lanes: Lanes) -> HandlerRegistry:
    registry = builtin_handlers()
    registry.register("ship", lanes.run)
    return registry


def for_each(concurrency: int, **extra: Any) -> dict[str, Any]:
    return definition(
        {
            "key": "each",
            "type": "for-each",
            "items": "lines",
            "as": "line",
            "maxConcurrency": concurrency,
            "output": "shipped",
            "result": "parcel.shipped",
            "body": {
                "elements": [
                    {"key": "ship", "type": "task", "handler": "ship", "input": {"item": "line"}, "output": "parcel"}
                ]
            },
            "next": "invoice",
            **extra,
        },
        {"key": "invoice", "type": "set-variable", "set": {"invoiced": "size(shipped)"}},
    )


async def test_a_for_each_runs_at_most_max_concurrency_lanes_and_collects_in_order(engine: Node, lanes: Lanes) -> None:
    execution_id = await start(engine, for_each(4), {"lines": list(range(20))})
    await lanes.until_running(4)
    await asyncio.sleep(0.1)  # time for a fifth to start, if anything would start it
    assert lanes.running == 4
    lanes.hold.set()

    assert await wait_status(engine, execution_id, "completed") == "completed"

    state = await engine.state(CALLER, execution_id)
    assert state.memory["variables"]["shipped"] == list(range(20))
    assert state.memory["variables"]["invoiced"] == 20
    assert sorted(lanes.calls) == list(range(20))
    assert lanes.most == 4
    status = await engine.status(CALLER, execution_id)
    assert status.progress.percentage == 100.0
    log = (await engine.log(CALLER, execution_id)).items
    paths = {entry.detail.get("path") for entry in log if entry.elementKey == "ship"}
    assert paths == {f"main/each[{i}]" for i in range(20)}


async def test_pause_in_the_middle_of_a_fan_out_freezes_every_lane_and_resume_finishes_it(
    engine: Node, lanes: Lanes
) -> None:
    execution_id = await start(engine, for_each(3), {"lines": list(range(7))})
    await lanes.until_running(3)

    pause = asyncio.create_task(engine.pause(CALLER, execution_id, ControlRequest(reason="mid fan-out")))
    await asyncio.sleep(0)
    lanes.hold.set()  # the three in flight finish within the grace
    paused = await pause

    assert paused.inflightNodes == 3
    state = await engine.state(CALLER, execution_id)
    stack = state.stack["execution_stack"]
    parent = next(entry for entry in stack if entry["element_key"] == "each")
    assert parent["path"] == "main" and parent["branches"]["ended"] == 3 and parent["branches"]["total"] == 7
    pending = sorted(entry["path"] for entry in stack if entry["path"] != "main")
    assert pending == ["main/each[3]", "main/each[4]", "main/each[5]"]
    calls_at_pause = len(lanes.calls)
    status = await engine.status(CALLER, execution_id)
    assert 0 < status.progress.percentage < 100

    await asyncio.sleep(0.2)  # time for a lane to start, if anything would start one: no event tells of nothing
    assert len(lanes.calls) == calls_at_pause  # nothing runs while paused

    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory["variables"]["shipped"] == list(range(7))
    assert sorted(lanes.calls) == list(range(7))  # each item shipped once


async def test_a_failed_iteration_cuts_the_others_short_and_fails_the_execution(engine: Node, lanes: Lanes) -> None:
    lanes.fail_on = 2
    execution_id = await start(engine, for_each(3), {"lines": list(range(6))})

    assert await wait_status(engine, execution_id, "failed") == "failed"

    status = await engine.status(CALLER, execution_id)
    assert status.error is not None
    assert (status.error["element"], status.error["type"]) == ("each", "OutOfStock")
    assert status.error["error"] == "ship in main/each[2]: OutOfStock: no 2"
    assert set(lanes.calls) == {0, 1, 2}  # no iteration started after the failure
    records = {(e.key, e.path): e.status for e in (await engine.elements(CALLER, execution_id)).items}
    assert records[("each", None)] == "failed"


async def test_a_catch_on_the_for_each_takes_an_iteration_failure(engine: Node, lanes: Lanes) -> None:
    lanes.fail_on = 0
    lanes.hold.set()
    process = for_each(1, catch=[{"errors": ["OutOfStock"], "next": "sorry", "into": "why"}])
    process["threads"][0]["elements"].append({"key": "sorry", "type": "set-variable", "set": {"said": "why.type"}})
    execution_id = await start(engine, process, {"lines": [0, 1]})

    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory["variables"]["said"] == "OutOfStock"
    assert lanes.calls == [0]


async def test_parallel_branches_run_together_and_merge(engine: Node, lanes: Lanes) -> None:
    process = definition(
        {
            "key": "both",
            "type": "parallel",
            "branches": [
                {
                    "key": "a",
                    "elements": [
                        {"key": "sa", "type": "task", "handler": "ship", "input": {"item": "'a'"}, "output": "ra"}
                    ],
                },
                {
                    "key": "b",
                    "elements": [
                        {"key": "sb", "type": "task", "handler": "ship", "input": {"item": "'b'"}, "output": "rb"}
                    ],
                },
            ],
            "next": "after",
        },
        {"key": "after", "type": "set-variable", "set": {"both": "ra.shipped + rb.shipped"}},
    )
    execution_id = await start(engine, process)
    await lanes.until_running(2)  # both branches at once
    lanes.hold.set()

    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory["variables"]["both"] == "ab"


class SlowToCancel:
    """Branch a's task ignores its cancellation for a while; branch b's fails the first time."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def slow(self, task_input: dict[str, Any]) -> Any:
        self.calls.append(f"slow{task_input['n']}")
        if task_input["n"] == 0:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                await asyncio.sleep(0.5)  # a clean-up before it honours the cancel
                raise
        return {"ok": True}

    async def flaky(self, task_input: dict[str, Any]) -> Any:
        self.calls.append(f"flaky{task_input['n']}")
        if task_input["n"] == 0:
            raise RuntimeError("first time")
        return {"ok": True}


async def test_a_fan_out_opened_again_while_its_old_lanes_wind_down_runs_to_the_end(make_engine: Any) -> None:
    slow = SlowToCancel()
    engine = await make_engine()
    engine.ctx.handlers.register("slow", slow.slow)
    engine.ctx.handlers.register("flaky", slow.flaky)
    process = definition(
        {"key": "init", "type": "set-variable", "set": {"n": "0"}, "next": "p"},
        {
            "key": "p",
            "type": "parallel",
            "branches": [
                {"key": "a", "elements": [{"key": "s", "type": "task", "handler": "slow", "input": {"n": "n"}}]},
                {"key": "b", "elements": [{"key": "f", "type": "task", "handler": "flaky", "input": {"n": "n"}}]},
            ],
            "catch": [{"errors": ["RuntimeError"], "next": "inc"}],
            "next": "end",
        },
        {"key": "inc", "type": "set-variable", "set": {"n": "n + 1"}, "next": "p"},
        {"key": "end", "type": "end"},
    )
    execution_id = await start(engine, process)

    assert await wait_status(engine, execution_id, "completed", within=10) == "completed"
    assert sorted(slow.calls) == ["flaky0", "flaky1", "slow0", "slow1"]


async def test_each_iteration_gets_its_own_idempotency_key(engine: Node) -> None:
    async def key(task_input: dict[str, Any], ctx: TaskContext) -> str:
        assert ctx.path.startswith("main/each[")
        return ctx.idempotency_key

    engine.ctx.handlers.register("key", key)
    body = {"elements": [{"key": "k", "type": "task", "handler": "key", "output": "key"}]}
    each = {"key": "each", "type": "for-each", "items": "[1, 2, 3]", "body": body, "result": "key", "output": "keys"}
    execution_id = await start(engine, definition(each))

    assert await wait_status(engine, execution_id, "completed") == "completed"
    keys = (await engine.state(CALLER, execution_id)).memory["variables"]["keys"]
    assert len(set(keys)) == 3  # a payment API would otherwise take the second and third as repeats of the first
