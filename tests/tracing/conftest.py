"""Engines whose spans go to the SDK's in-memory exporter (tracing on), against the suite's real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from procengine.node.node import Node
from procengine.runtime.clock import Clock
from procengine.settings import Settings
from procengine.tasks import HandlerRegistry, builtin_handlers
from tests.support.nodes import EngineFactory, Gate


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of this test's own (not the global one): each span is exported as it ends."""
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    yield made
    made.shutdown()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def handlers(gate: Gate) -> HandlerRegistry:
    registry = builtin_handlers()
    registry.register("gate", gate.run)
    return registry


@pytest.fixture
async def make_engine(
    redis: Redis, settings: Settings, handlers: HandlerRegistry, provider: TracerProvider
) -> AsyncIterator[EngineFactory]:
    """Start engines sharing one Redis, as nodes do, each tracing to `provider` (`traced=False`: tracing off)."""
    engines: list[Node] = []

    async def make(clock: Clock | None = None, *, traced: bool = True, **overrides: Any) -> Node:
        node_settings = settings.model_copy(update=overrides) if overrides else settings
        engine = Node(redis, node_settings, handlers, clock=clock, tracer_provider=provider if traced else None)
        await engine.__aenter__()
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):
        await engine.__aexit__(None, None, None)


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Node:
    return await make_engine()
