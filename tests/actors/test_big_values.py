"""Values too big for an execution's memory: refused or failing their element (LimitExceeded), never written,
and never holding up the event loop, the node's heartbeat or its other executions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import PayloadTooLarge
from procengine.node.node import Node
from procengine.store.codec import decode
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, events, start, wait_element, wait_status
from tests.support.processes import definition

LIMIT = 2_097_152  # the default


@asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """The longest the event loop was held while the block ran (a 5 ms ticker's worst lateness), in seconds."""
    worst = [0.0]

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - 0.005)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        yield worst
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


@pytest.fixture
def big_handlers(handlers: HandlerRegistry) -> HandlerRegistry:
    async def hundred_megabytes(task_input: dict[str, Any]) -> Any:
        return {"blob": "x" * 100_000_000}

    async def millions_of_items(task_input: dict[str, Any]) -> Any:
        return list(range(3_000_000))

    async def just_fits(task_input: dict[str, Any]) -> Any:
        return "y" * 600_000

    async def timestamp(task_input: dict[str, Any]) -> Any:
        return {"at": datetime.now(UTC)}

    handlers.register("hundred-megabytes", hundred_megabytes)
    handlers.register("millions-of-items", millions_of_items)
    handlers.register("just-fits", just_fits)
    handlers.register("timestamp", timestamp)
    return handlers


async def _memory_blob(redis: Redis, engine: Node, execution_id: int) -> bytes:
    blob: bytes = await redis.hget(engine.keys.execution(execution_id).state, "memory")
    return blob


@pytest.mark.parametrize("handler", ["hundred-megabytes", "millions-of-items"])
async def test_an_output_over_the_limit_fails_its_element_without_stalling_the_node(
    make_engine: EngineFactory,
    big_handlers: HandlerRegistry,
    redis: Redis,
    handler: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = await make_engine(node_ttl_ms=1000, node_heartbeat_ms=100)
    # another execution on the node, ticking along on a delay loop
    ticking = await start(
        engine,
        definition(
            {"key": "nap", "type": "delay", "durationMs": 10, "next": "count"},
            {"key": "count", "type": "set-variable", "set": {"n": "n + 1"}, "next": "again"},
            {"key": "again", "type": "if-condition", "condition": "n < 1000000", "then": "nap"},
            key="ticking",
        ),
        {"n": 0},
    )
    big = definition(
        {"key": "fetch", "type": "task", "handler": handler, "output": "data", "retry": {"maxAttempts": 3}},
        key="big",
    )
    with caplog.at_level(logging.WARNING):
        async with loop_lag() as lag:
            execution_id = await start(engine, big)
            assert await wait_status(engine, execution_id, "failed") == "failed"

    # the element failed as too big, once (no retry), and the execution with it
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert (record.status, record.errorType, record.attempts) == ("failed", "LimitExceeded", 1)
    assert record.error is not None and f"over the {LIMIT} bytes" in record.error
    status = await engine.status(CALLER, execution_id)
    assert status.error is not None and status.error["type"] == "LimitExceeded"
    # nothing oversized was written
    memory = await _memory_blob(redis, engine, execution_id)
    assert len(memory) < 10_000 and "data" not in decode(memory)["variables"]
    # the loop was never held for long: no missed heartbeat, no actor stopped, nothing adopted
    print(f"{handler}: the event loop was held for at most {lag[0] * 1000:.0f} ms")
    assert lag[0] < 1.0, f"the event loop was held for {lag[0]:.2f} s"
    assert not [r for r in caplog.records if "heartbeat" in r.getMessage() or "took back" in r.getMessage()]
    assert ("adopted", None) not in await events(engine, ticking)
    assert (await engine.status(CALLER, ticking)).status == "running"
    await engine.cancel(CALLER, ticking, ControlRequest())


async def test_an_output_under_the_limit_is_stored_and_the_snapshot_stays_under_it(
    engine: Node, big_handlers: HandlerRegistry, redis: Redis
) -> None:
    execution_id = await start(
        engine,
        definition(
            {"key": "a", "type": "task", "handler": "just-fits", "output": "first", "next": "b"},
            {"key": "b", "type": "task", "handler": "just-fits", "output": "second", "next": "c"},
            {"key": "c", "type": "task", "handler": "just-fits", "output": "third", "next": "d"},
            {"key": "d", "type": "task", "handler": "just-fits", "output": "fourth"},
        ),
    )
    # three of 600 KB fit (each stored once: its variable, which its node output names); a fourth does not
    await wait_status(engine, execution_id, "failed")
    elements = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert [elements[key].status for key in "abc"] == ["completed"] * 3
    assert (elements["d"].status, elements["d"].errorType) == ("failed", "LimitExceeded")
    memory = await _memory_blob(redis, engine, execution_id)
    assert 1_800_000 < len(memory) <= LIMIT
    assert set(decode(memory)["variables"]) == {"first", "second", "third"}


async def test_an_output_the_codec_cannot_hold_fails_as_unstorable(engine: Node, big_handlers: HandlerRegistry) -> None:
    execution_id = await start(engine, definition({"key": "t", "type": "task", "handler": "timestamp"}))
    await wait_status(engine, execution_id, "failed")
    [record] = (await engine.elements(CALLER, execution_id)).items
    assert record.errorType == "Unstorable" and "datetime" in (record.error or "")


async def test_a_signal_that_does_not_fit_is_413_and_nothing_is_stored(
    make_engine: EngineFactory, redis: Redis
) -> None:
    engine = await make_engine(max_snapshot_bytes=64 * 1024)
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "go", "into": "x"}))
    await wait_element(engine, execution_id, "w")
    before = await _memory_blob(redis, engine, execution_id)

    with pytest.raises(PayloadTooLarge) as refused:
        await engine.signal(CALLER, execution_id, "go", "s" * 60_000)

    assert refused.value.status == 413 and "signal not stored" in refused.value.message
    assert await _memory_blob(redis, engine, execution_id) == before
    assert ("signal-received", None) not in await events(engine, execution_id)
    # a signal that fits still goes through
    await engine.signal(CALLER, execution_id, "go", "small")
    await wait_status(engine, execution_id, "completed")


async def test_start_variables_that_do_not_fit_are_413(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_snapshot_bytes=64 * 1024)
    summary, _ = await engine.register_process(CALLER, definition({"key": "e", "type": "end"}))
    with pytest.raises(PayloadTooLarge) as refused:
        await engine.start_execution(CALLER, StartRequest(processID=summary.processID, variables={"big": "v" * 70_000}))
    assert "--max-snapshot-bytes" in refused.value.message
    page = await engine.list_executions(CALLER, status=None, process_id=None, limit=10, cursor=None)
    assert page.items == []
