"""Engines against the real redis-server the suite starts, with handlers the tests can steer (the helpers that
steer them: tests/support/nodes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.node.node import Node
from procengine.runtime.clock import Clock
from procengine.settings import Settings
from procengine.tasks import HandlerRegistry, builtin_handlers
from tests.support.nodes import EngineFactory, Gate


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def handlers(gate: Gate) -> HandlerRegistry:
    registry = builtin_handlers()
    registry.register("gate", gate.run)
    return registry


@pytest.fixture
async def make_engine(redis: Redis, settings: Settings, handlers: HandlerRegistry) -> AsyncIterator[EngineFactory]:
    """Start engines (several may share one Redis, as nodes do; `clock`: one a test moves); all are stopped after
    the test."""
    engines: list[Node] = []

    async def make(clock: Clock | None = None, **overrides: Any) -> Node:
        node_settings = settings.model_copy(update=overrides) if overrides else settings
        engine = Node(redis, node_settings, handlers, clock=clock)
        await engine.__aenter__()
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):
        await engine.__aexit__(None, None, None)


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Node:
    return await make_engine()
