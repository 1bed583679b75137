"""Steering a `Node` in-process (against the suite's real redis-server): start an execution, wait for a status or
an element, read its log; a task handler the test opens; a node stopped as kill -9 would leave it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from procengine.api.service import Caller
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.store.codec import decode
from procengine.store.stored_records import thread_doc
from tests.support.polling import poll

CALLER = Caller(tenant="default", by="default", request_id="req-test")

EngineFactory = Callable[..., Awaitable[Node]]
"""`make_engine(clock=None, **settings)` (tests/actors/conftest.py): a started node, stopped after the test."""


class Gate:
    """A task handler that blocks until the test opens it, and counts its calls."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0
        self.finished = 0

    async def run(self, task_input: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        self.finished += 1
        return {"gated": True, **task_input}


async def start(engine: Node, process: dict[str, Any], variables: dict[str, Any] | None = None) -> int:
    """Register `process` and start it; the execution's id."""
    summary, _ = await engine.register_process(CALLER, process)
    result, _ = await engine.start_execution(
        CALLER, StartRequest(processID=summary.processID, variables=variables or {})
    )
    return result.executionID


async def wait_status(engine: Node, execution_id: int, *statuses: str, within: float = 10.0) -> str:
    """Wait until the stored status is one of `statuses` (final ones: until the actor has stopped)."""

    async def read() -> str:
        return (await engine.status(CALLER, execution_id)).status

    status = await poll(read, lambda found: found in statuses, within=within)
    actor = engine.registry.get(execution_id)
    if actor is not None and status in ("completed", "failed", "cancelled"):
        async with asyncio.timeout(within):
            await actor.stopped.wait()
    return status


async def events(engine: Node, execution_id: int) -> list[tuple[str, str | None]]:
    """(event, element key) pairs of the execution's log, oldest first."""
    return [(entry.event, entry.elementKey) for entry in (await engine.log(CALLER, execution_id)).items]


async def wait_element(engine: Node, execution_id: int, key: str, status: str = "running") -> None:
    """Wait until element `key` has the given status in the element records."""

    async def read() -> str | None:
        return {e.key: e.status for e in (await engine.elements(CALLER, execution_id)).items}.get(key)

    await poll(read, lambda found: found == status)


async def crash(engine: Node) -> None:
    """Stop a node the way kill -9 would look to the others: no writes, heartbeat left to expire."""
    for task in engine._background:
        task.cancel()
    await asyncio.gather(*engine._background, return_exceptions=True)
    engine._background = []
    await engine.registry.stop_all()


async def child_of(engine: Node, parent_id: int) -> int:
    """The child's id, once the parent has recorded it."""
    while True:
        status = await engine.status(CALLER, parent_id)
        if status.children:
            [child] = status.children
            return child
        await engine.store.redis.ping()  # a round trip between reads, no sleep


async def completed_nodes(engine: Node, execution_id: int) -> int:
    """The completed nodes as Redis holds them: the sum of the thread records' (the execution hash has no count)."""
    stored = await engine.store.load(execution_id, with_state=False)
    assert stored is not None
    return sum(thread_doc(key, decode(raw))["completedNodes"] for key, raw in stored.threads.items())
