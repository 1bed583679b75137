"""Engines against the real redis-server the suite starts, with handlers the tests can steer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import HandlerRegistry, builtin_handlers

CALLER = Caller(tenant="default", by="default", request_id="req-test")


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


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def handlers(gate: Gate) -> HandlerRegistry:
    registry = builtin_handlers()
    registry.register("gate", gate.run)
    return registry


EngineFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_engine(redis: Redis, settings: Settings, handlers: HandlerRegistry) -> AsyncIterator[EngineFactory]:
    """Start engines (several may share one Redis, as nodes do); all are stopped after the test."""
    engines: list[Node] = []

    async def make(**overrides: Any) -> Node:
        node_settings = settings.model_copy(update=overrides) if overrides else settings
        engine = Node(redis, node_settings, handlers)
        await engine.__aenter__()
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):
        await engine.__aexit__(None, None, None)


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Node:
    return await make_engine()


def definition(
    *elements: dict[str, Any], key: str = "p", threads: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "threads": threads or [{"key": "main", "elements": list(elements)}]}
    return body


async def start(engine: Node, process: dict[str, Any], variables: dict[str, Any] | None = None) -> int:
    summary, _ = await engine.register_process(CALLER, process)
    result, _ = await engine.start_execution(
        CALLER, StartRequest(processID=summary.processID, variables=variables or {})
    )
    return result.executionID


async def wait_status(engine: Node, execution_id: int, *statuses: str, within: float = 10.0) -> str:
    """Wait until the stored status is one of `statuses` (final ones: until the actor has stopped)."""
    async with asyncio.timeout(within):
        while True:
            status = (await engine.status(CALLER, execution_id)).status
            if status in statuses:
                actor = engine.registry.get(execution_id)
                if actor is not None and status in ("completed", "failed", "cancelled"):
                    await actor.stopped.wait()
                return status
            await asyncio.sleep(0.01)


async def events(engine: Node, execution_id: int) -> list[tuple[str, str | None]]:
    return [(entry.event, entry.elementKey) for entry in (await engine.log(CALLER, execution_id)).items]


async def wait_element(engine: Node, execution_id: int, key: str, status: str = "running") -> None:
    """Wait until element `key` has the given status in the element records."""
    async with asyncio.timeout(10):
        while True:
            found = {e.key: e.status for e in (await engine.elements(CALLER, execution_id)).items}
            if found.get(key) == status:
                return
            await asyncio.sleep(0.01)
