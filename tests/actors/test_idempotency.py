"""Idempotent starts: one execution per key, whatever the concurrency; a repeat waits for the first start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.views import StartRequest, StartResult
from procengine.errors import Unavailable
from procengine.node.node import Node
from procengine.store.executions import NEW, Commit, WriteResult
from tests.support.nodes import CALLER, EngineFactory
from tests.support.processes import definition

WAIT = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="idem")


async def _registered(engine: Node) -> int:
    summary, _ = await engine.register_process(CALLER, WAIT)
    return summary.processID


def _start(engine: Node, process_id: int, key: str = "k") -> Any:
    return engine.start_execution(CALLER, StartRequest(processID=process_id, idempotencyKey=key))


def looked_up(engine: Node) -> asyncio.Event:
    """Set once a repeat has found a claim and asked for its execution (which it then waits for)."""
    seen = asyncio.Event()
    fields = engine.store.fields

    async def spy(execution_id: int) -> dict[str, str]:
        found = await fields(execution_id)
        seen.set()
        return found

    engine.store.fields = spy  # type: ignore[method-assign]
    return seen


class HeldCreation:
    """Holds the commit that creates an execution until released (the first start is slow), or fails it."""

    def __init__(self, engine: Node, fail: bool = False) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail
        self._commit = engine.store.commit

        async def commit(
            execution_id: int, commit: Commit, *, epoch: int | None, expect: str, not_after_ms: int | None = None
        ) -> WriteResult:
            if expect == NEW and not self.reached.is_set():
                self.reached.set()
                await self.release.wait()
                if self.fail:
                    raise ConnectionError("lost the store mid-start")
            return await self._commit(execution_id, commit, epoch=epoch, expect=expect, not_after_ms=not_after_ms)

        engine.store.commit = commit  # type: ignore[method-assign]


async def test_25_concurrent_starts_with_one_key_create_one_execution_and_all_answer_it(engine: Node) -> None:
    process_id = await _registered(engine)

    results = await asyncio.gather(*(_start(engine, process_id) for _ in range(25)))

    created = [result for result, was_created in results if was_created]
    assert len(created) == 1
    assert {result.executionID for result, _ in results} == {created[0].executionID}
    assert len((await engine.list_executions(CALLER, status=None, process_id=None, limit=50, cursor=None)).items) == 1


async def test_a_repeat_waits_for_a_slow_first_start_and_answers_with_its_execution(engine: Node, redis: Redis) -> None:
    process_id = await _registered(engine)
    held = HeldCreation(engine)
    first = asyncio.create_task(_start(engine, process_id))
    await held.reached.wait()
    # when a repeat comes while the first start is still creating its execution
    seen = looked_up(engine)
    repeat = asyncio.create_task(_start(engine, process_id))
    await seen.wait()  # it found the claim and no execution yet: it must wait, not answer
    assert not repeat.done()
    held.release.set()
    # then both answer the one execution: 201 for the first, 200 for the repeat
    (made, was_created), (again, created_again) = await asyncio.gather(first, repeat)
    assert was_created and not created_again and again.executionID == made.executionID
    assert again.status == "running" and again.processID == process_id
    # and the key is kept for good now that its execution exists
    assert await redis.pttl(engine.keys.idempotency("default", "k")) == -1


async def test_a_repeat_waiting_on_a_failed_first_start_creates_the_execution_itself(engine: Node) -> None:
    process_id = await _registered(engine)
    held = HeldCreation(engine, fail=True)
    first = asyncio.create_task(_start(engine, process_id))
    await held.reached.wait()
    seen = looked_up(engine)
    repeat = asyncio.create_task(_start(engine, process_id))
    await seen.wait()
    held.release.set()

    with pytest.raises(ConnectionError):
        await first
    result, created = await repeat
    assert created and result.status == "running"


async def test_the_claim_of_a_start_whose_node_died_expires_and_a_repeat_then_creates(
    engine: Node, redis: Redis
) -> None:
    # given a claim for an execution that was never created (its node died), with what is left of its TTL
    process_id = await _registered(engine)
    await redis.set(engine.keys.idempotency("default", "k"), 999_999, px=300)
    # when the key is used again, then the start waits out the claim and creates the execution
    result, created = await _start(engine, process_id)
    assert created and result.executionID != 999_999


async def test_a_persisted_claim_whose_execution_is_gone_is_taken_over(engine: Node, redis: Redis) -> None:
    process_id = await _registered(engine)
    await redis.set(engine.keys.idempotency("default", "k"), 999_999)
    result, created = await _start(engine, process_id)
    assert created and int(await redis.get(engine.keys.idempotency("default", "k"))) == result.executionID


async def test_a_start_still_in_progress_past_the_wait_is_503_with_retry_after(
    make_engine: EngineFactory, redis: Redis
) -> None:
    engine = await make_engine(redis_timeout_s=0.2)
    process_id = await _registered(engine)
    await redis.set(engine.keys.idempotency("default", "k"), 999_999, px=60_000)

    with pytest.raises(Unavailable) as refused:
        await _start(engine, process_id)
    assert refused.value.retry_after_s == 1 and "still in progress" in refused.value.message


async def test_a_repeat_persists_a_claim_its_start_could_not(engine: Node, redis: Redis) -> None:
    # given a start that created its execution but failed before persisting its claim
    process_id = await _registered(engine)
    result, _ = await _start(engine, process_id)
    idem_key = engine.keys.idempotency("default", "k")
    await redis.pexpire(idem_key, 60_000)
    # when it is repeated, then the answer is the execution and the key no longer expires
    again, created = await _start(engine, process_id)
    assert not created and again == StartResult(
        executionID=result.executionID, status="running", processID=process_id, processVersion=1
    )
    assert await redis.pttl(idem_key) == -1


async def test_a_start_with_another_key_does_not_wait(engine: Node) -> None:
    process_id = await _registered(engine)
    held = HeldCreation(engine)
    first = asyncio.create_task(_start(engine, process_id, "a"))
    await held.reached.wait()
    # a start with another key does not wait for the held one
    other, created = await _start(engine, process_id, "b")
    assert created
    held.release.set()
    made, _ = await first
    assert made.executionID != other.executionID


async def test_a_repeated_start_spends_no_execution_id(engine: Node, redis: Redis) -> None:
    """Issue 19 point 14: every repeat took an id from the counter, and the list of executions had gaps."""
    process_id = await _registered(engine)
    first, _ = await _start(engine, process_id)

    for _ in range(3):
        again, created = await _start(engine, process_id)
        assert not created and again.executionID == first.executionID
    after, _ = await _start(engine, process_id, "another")

    assert after.executionID == first.executionID + 1
    assert int(await redis.get(engine.keys.sequence("execution"))) == after.executionID


async def test_an_identical_registration_spends_no_process_id(engine: Node, redis: Redis) -> None:
    """Issue 19 point 14: an identical re-registration took a process id it did not use."""
    first, created = await engine.register_process(CALLER, WAIT)
    for _ in range(3):
        again, created_again = await engine.register_process(CALLER, WAIT)
        assert not created_again and again == first
    changed, created_changed = await engine.register_process(CALLER, {**WAIT, "name": "changed"})

    assert created and created_changed and (changed.processID, changed.version) == (first.processID + 1, 2)
    assert int(await redis.get(engine.keys.sequence("process"))) == changed.processID


async def test_on_a_cluster_an_identical_registration_spends_no_process_id(engine: Node, redis: Redis) -> None:
    """Where the counter is in another slot than the process keys (Redis Cluster), the store looks first."""
    engine.catalog.store.ids_in_script = False
    first, _ = await engine.register_process(CALLER, WAIT)
    again, created_again = await engine.register_process(CALLER, WAIT)
    changed, _ = await engine.register_process(CALLER, {**WAIT, "name": "changed"})

    assert not created_again and again == first and changed.processID == first.processID + 1
    assert int(await redis.get(engine.keys.sequence("process"))) == changed.processID
