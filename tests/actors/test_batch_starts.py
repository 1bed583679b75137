"""Many starts in one request (node/starting.py): each item as a single start would be, the Redis work pipelined."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import BatchStartRequest, StartRequest
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, wait_status
from tests.support.processes import definition

T = TypeVar("T")

WAIT = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="batch-wait")
ECHO = definition(
    {"key": "t", "type": "task", "handler": "echo", "input": {"n": "n"}, "output": "out", "next": "done"},
    {"key": "done", "type": "end"},
    key="batch-echo",
)


def _batch(*items: dict[str, Any]) -> BatchStartRequest:
    return BatchStartRequest(items=[StartRequest.model_validate(item) for item in items])


async def _registered(engine: Node, document: dict[str, Any] = WAIT) -> int:
    summary, _ = await engine.register_process(CALLER, document)
    return summary.processID


async def test_each_item_has_its_outcome_in_order_and_the_good_ones_run(engine: Node) -> None:
    echo = await _registered(engine, ECHO)
    too_many = {f"v{i}": i for i in range(engine.settings.max_variables + 1)}

    answer = await engine.start_many(
        CALLER,
        _batch(
            {"processID": echo, "variables": {"n": 1}},
            {"processKey": "no-such-process"},
            {"processKey": "batch-echo", "variables": too_many},
            {"processKey": "batch-echo", "variables": {"n": 2}},
        ),
    )

    assert [item.outcome for item in answer.items] == ["started", "failed", "failed", "started"]
    assert [item.index for item in answer.items] == [0, 1, 2, 3]
    assert (answer.started, answer.existing, answer.failed) == (2, 0, 2)
    unknown, invalid = answer.items[1].error, answer.items[2].error
    assert unknown is not None and (unknown.code, unknown.status) == ("NOT_FOUND", 404)
    assert invalid is not None and (invalid.code, invalid.status) == ("VALIDATION_ERROR", 422)
    assert invalid.details
    first, last = answer.items[0].executionID, answer.items[3].executionID
    assert first is not None and last is not None and last == first + 1  # ids have no gaps for refused starts
    for item, n in ((answer.items[0], 1), (answer.items[3], 2)):
        assert item.executionID is not None
        assert await wait_status(engine, item.executionID, "completed") == "completed"
        assert (await engine.state(CALLER, item.executionID)).memory["variables"]["out"] == {"n": n}


async def test_every_started_execution_logs_its_start_with_the_batch_request_id(engine: Node) -> None:
    process_id = await _registered(engine)
    caller = Caller(tenant="default", by="default", request_id="req-batch-7")

    answer = await engine.start_many(caller, _batch(*({"processID": process_id} for _ in range(3))))

    for item in answer.items:
        assert item.executionID is not None
        first = (await engine.log(CALLER, item.executionID)).items[0]
        assert first.event == "started"
        assert first.detail["requestId"] == "req-batch-7"
        assert (first.detail["from"], first.detail["to"]) == ("", "running")


async def test_a_repeated_key_answers_the_first_execution_in_the_batch_and_in_later_ones(engine: Node) -> None:
    process_id = await _registered(engine)
    single, _ = await engine.start_execution(CALLER, StartRequest(processID=process_id, idempotencyKey="before"))

    answer = await engine.start_many(
        CALLER,
        _batch(
            {"processID": process_id, "idempotencyKey": "k"},
            {"processID": process_id, "idempotencyKey": "k"},
            {"processID": process_id, "idempotencyKey": "before"},
            {"processID": process_id},
        ),
    )
    again = await engine.start_many(CALLER, _batch({"processID": process_id, "idempotencyKey": "k"}))

    assert [item.outcome for item in answer.items] == ["started", "existing", "existing", "started"]
    assert answer.items[1].executionID == answer.items[0].executionID
    assert answer.items[2].executionID == single.executionID
    assert again.items[0].outcome == "existing"
    assert again.items[0].executionID == answer.items[0].executionID
    page = await engine.list_executions(CALLER, status=None, process_id=None, limit=50, cursor=None)
    assert len(page.items) == 3  # before, k, and the one without a key


async def test_another_tenant_cannot_start_a_process_it_does_not_own(engine: Node) -> None:
    process_id = await _registered(engine)
    other = Caller(tenant="other", by="other", request_id="req-other")

    answer = await engine.start_many(other, _batch({"processID": process_id}))

    assert answer.items[0].outcome == "failed"
    assert answer.items[0].error is not None and answer.items[0].error.code == "NOT_FOUND"


async def test_the_starts_past_the_tenant_rate_limit_fail_with_429(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_starts_per_second=2)
    process_id = await _registered(engine)

    answer = await engine.start_many(CALLER, _batch(*({"processID": process_id} for _ in range(3))))

    assert [item.outcome for item in answer.items][:2] == ["started", "started"]
    last = answer.items[2]
    assert (
        last.outcome == "failed"
        and last.error is not None
        and (last.error.code, last.error.status)
        == (
            "RATE_LIMITED",
            429,
        )
    )


class RoundTrips:
    """Counts what the code under `counting()` sends to Redis, in the tasks it starts too (they inherit the context),
    not the node's background work: single commands and pipelines (a pipeline is one round trip)."""

    def __init__(self, redis: Redis) -> None:
        self.count = 0
        self._on: ContextVar[list[bool] | None] = ContextVar("counting", default=None)
        command, pipeline = redis.execute_command, redis.pipeline

        async def counted_command(*args: Any, **options: Any) -> Any:
            self.count += self._counts()
            return await command(*args, **options)

        def counted_pipeline(*args: Any, **options: Any) -> Any:
            self.count += self._counts()
            return pipeline(*args, **options)

        redis.execute_command = counted_command  # type: ignore[method-assign]
        redis.pipeline = counted_pipeline  # type: ignore[method-assign]

    def _counts(self) -> int:
        on = self._on.get()
        return int(on is not None and on[0])

    async def counting(self, work: Awaitable[T]) -> tuple[T, int]:
        """`work`'s result, and its round trips (those of the actors it started, once it has returned, not)."""
        flag = [True]
        token = self._on.set(flag)
        before = self.count
        try:
            return await work, self.count - before
        finally:
            flag[0] = False
            self._on.reset(token)


async def test_200_starts_with_keys_take_a_few_round_trips_not_a_few_per_start(engine: Node) -> None:
    process_id = await _registered(engine)
    await engine.start_many(CALLER, _batch({"processID": process_id}))  # the definition read and compiled
    trips = RoundTrips(engine.redis)
    items = [{"processID": process_id, "idempotencyKey": f"k{i}"} for i in range(200)]

    answer, started = await trips.counting(engine.start_many(CALLER, _batch(*items)))
    replayed, replaying = await trips.counting(engine.start_many(CALLER, _batch(*items)))

    assert answer.started == 200
    # rate limit, claims, ids, binds, active set, 1 commit pipeline, events, keys kept (+ actors' first writes)
    assert started <= 12, started
    assert replayed.existing == 200
    assert [item.executionID for item in replayed.items] == [item.executionID for item in answer.items]
    assert replaying <= 4, replaying  # rate limit, claims, key reads, fields


async def test_a_start_whose_write_fails_is_undone_alone_and_frees_its_key(engine: Node, redis: Redis) -> None:
    process_id = await _registered(engine)
    commit = engine.store.commit
    failing: set[int] = set()

    async def flaky(execution_id: int, *args: Any, **options: Any) -> Any:
        if not failing:
            failing.add(execution_id)  # the first creation of the batch
            raise ConnectionError("lost the store mid-start")
        return await commit(execution_id, *args, **options)

    engine.store.commit = flaky  # type: ignore[method-assign]
    items = [{"processID": process_id, "idempotencyKey": f"f{i}"} for i in range(3)]

    answer = await engine.start_many(CALLER, _batch(*items))

    assert [item.outcome for item in answer.items] == ["failed", "started", "started"]
    error = answer.items[0].error
    assert error is not None and (error.code, error.status) == ("UNAVAILABLE", 503)
    assert await redis.get(engine.keys.idempotency("default", "f0")) is None  # a retry may start it
    assert not await redis.sismember(engine.keys.active, str(failing.pop()))
    engine.store.commit = commit  # type: ignore[method-assign]
    again = await engine.start_many(CALLER, _batch(*items))
    assert [item.outcome for item in again.items] == ["started", "existing", "existing"]
    page = await engine.list_executions(CALLER, status=None, process_id=None, limit=50, cursor=None)
    assert len(page.items) == 3


async def test_a_key_another_start_is_creating_is_answered_with_its_execution(engine: Node) -> None:
    process_id = await _registered(engine)
    reached, release = asyncio.Event(), asyncio.Event()
    commit = engine.store.commit

    async def slow(execution_id: int, *args: Any, **options: Any) -> Any:
        if not reached.is_set():
            reached.set()
            await release.wait()
        return await commit(execution_id, *args, **options)

    engine.store.commit = slow  # type: ignore[method-assign]
    first = asyncio.create_task(engine.start_execution(CALLER, StartRequest(processID=process_id, idempotencyKey="x")))
    await reached.wait()
    batch = asyncio.create_task(engine.start_many(CALLER, _batch({"processID": process_id, "idempotencyKey": "x"})))
    release.set()

    (single, _), answer = await asyncio.gather(first, batch)

    assert answer.items[0].outcome == "existing"
    assert answer.items[0].executionID == single.executionID


async def test_a_batch_whose_request_is_cancelled_mid_write_is_still_carried_through(
    engine: Node, redis: Redis
) -> None:
    process_id = await _registered(engine)
    reached, release = asyncio.Event(), asyncio.Event()
    commit = engine.store.commit

    async def held(execution_id: int, *args: Any, **options: Any) -> Any:
        reached.set()
        await release.wait()
        return await commit(execution_id, *args, **options)

    engine.store.commit = held  # type: ignore[method-assign]
    items = [{"processID": process_id, "idempotencyKey": f"c{i}"} for i in range(3)]
    request = asyncio.create_task(engine.start_many(CALLER, _batch(*items)))
    await reached.wait()

    request.cancel()
    release.set()

    with pytest.raises(asyncio.CancelledError):
        await request
    engine.store.commit = commit  # type: ignore[method-assign]
    again = await engine.start_many(CALLER, _batch(*items))  # waits for the first on the keys it holds
    assert [item.outcome for item in again.items] == ["existing"] * 3
    for item in again.items:
        assert item.executionID is not None
        assert engine.registry.get(item.executionID) is not None  # its actor runs
        assert await redis.pttl(engine.keys.idempotency("default", f"c{item.index}")) == -1  # kept for good


async def test_the_started_counter_counts_each_start_of_a_batch_by_its_process(engine: Node) -> None:
    await _registered(engine)
    await _registered(engine, ECHO)
    items = [{"processKey": "batch-wait"}] * 3 + [{"processKey": "batch-echo", "variables": {"n": 1}}] * 2
    items.append({"processKey": "no-such-process"})

    answer = await engine.start_many(CALLER, _batch(*items))

    assert answer.started == 5
    registry = engine.metrics.registry
    sample = "procengine_executions_started_total"
    assert registry.get_sample_value(sample, {"process_key": "batch-wait"}) == 3
    assert registry.get_sample_value(sample, {"process_key": "batch-echo"}) == 2
    assert [item.model_dump() for item in answer.items[:1]] == [
        {
            "index": 0, "outcome": "started", "executionID": answer.items[0].executionID, "status": "running",
            "processID": answer.items[0].processID, "processVersion": 1, "error": None,
        }
    ]  # fmt: skip
