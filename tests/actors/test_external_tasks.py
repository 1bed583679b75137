"""External task workers (issue 24, point 1): a task element with a `queue` is offered on the tenant's queue, a worker
fetches it, completes or fails it, and the execution goes on as with an in-process task (retries, timeoutMs, catch);
a stale lock, a second complete, a lock revoked by a pause past its grace or by a cancel change nothing and say so;
another tenant sees neither the queue nor the task."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.task_views import (
    FetchedTask,
    FetchRequest,
    TaskCompleteRequest,
    TaskExtendRequest,
    TaskFailRequest,
)
from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import NotFound, TaskAlreadySettled, TaskLockRevoked, TaskLockStale, ValidationFailed
from procengine.node.node import Node
from tests.support.clock import ShiftedClock
from tests.support.nodes import CALLER, EngineFactory
from tests.support.polling import poll, until
from tests.support.processes import definition

OTHER = Caller(tenant="other", by="other", request_id="req-other")


def paying(**task: Any) -> dict[str, Any]:
    element = {
        "key": "pay",
        "type": "task",
        "handler": "charge-card",  # the engine has no such handler: a worker does
        "queue": "payments",
        "input": {"amount": "amount"},
        "output": "payment",
        "next": "done",
        **task,
    }
    return definition(element, {"key": "done", "type": "end"}, key="pay")


async def _start(engine: Node, document: dict[str, Any], caller: Caller = CALLER, **variables: Any) -> int:
    summary, _ = await engine.register_process(caller, document)
    started, _ = await engine.start_execution(caller, StartRequest(processID=summary.processID, variables=variables))
    return started.executionID


async def _fetch(engine: Node, caller: Caller = CALLER, wait_ms: int = 5000, **body: Any) -> list[FetchedTask]:
    request = FetchRequest.model_validate({"queues": ["payments"], "workerId": "w1", "waitMs": wait_ms, **body})
    return (await engine.fetch_tasks(caller, request)).tasks


async def _one(engine: Node, **body: Any) -> FetchedTask:
    tasks = await _fetch(engine, **body)
    assert len(tasks) == 1, tasks
    return tasks[0]


async def _status(engine: Node, execution_id: int) -> str:
    return (await engine.status(CALLER, execution_id)).status


async def _final(engine: Node, execution_id: int) -> str:
    return await poll(lambda: _status(engine, execution_id), lambda s: s in ("completed", "failed", "cancelled"))


async def test_a_worker_fetches_the_task_and_its_output_goes_on_as_a_handlers(engine: Node) -> None:
    execution = await _start(engine, paying(), amount=42)
    task = await _one(engine)
    assert (task.executionId, task.elementKey, task.attempt, task.handler) == (execution, "pay", 1, "charge-card")
    assert task.input == {"amount": 42}
    assert task.idempotencyKey == f"{execution}:pay:{task.taskId.split('.')[1]}:1"
    assert task.traceContext == {}
    answer = await engine.complete_task(
        CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output={"id": "ch_1"})
    )
    assert answer.status == "completed"
    assert await _final(engine, execution) == "completed"
    state = await engine.state(CALLER, execution)
    assert state.memory is not None and state.memory["variables"]["payment"] == {"id": "ch_1"}


async def test_a_long_poll_answers_when_a_task_comes(engine: Node) -> None:
    import asyncio

    waiting = asyncio.ensure_future(_fetch(engine, wait_ms=5000))
    await asyncio.sleep(0)  # the fetch is under way before the task exists
    execution = await _start(engine, paying(), amount=1)
    tasks = await asyncio.wait_for(waiting, 5)
    assert [t.executionId for t in tasks] == [execution]


async def test_an_empty_queue_answers_an_empty_list_after_the_wait(engine: Node) -> None:
    assert await _fetch(engine, wait_ms=100) == []


async def test_a_failure_is_retried_as_the_policy_says_then_caught(engine: Node) -> None:
    document = paying(retry={"maxAttempts": 2, "backoffMs": 1}, catch=[{"errors": ["CardDeclined"], "next": "done"}])
    execution = await _start(engine, document, amount=5)
    first = await _one(engine)
    await engine.fail_task(
        CALLER, first.taskId, TaskFailRequest(lockToken=first.lockToken, error="timeout", type="Net")
    )
    second = await _one(engine)
    assert second.attempt == 2 and second.taskId != first.taskId
    declined = TaskFailRequest(lockToken=second.lockToken, error="no", type="CardDeclined", retryable=False)
    await engine.fail_task(CALLER, second.taskId, declined)
    assert await _final(engine, execution) == "completed"  # the catch took it to `done`
    elements = {e.key: e for e in (await engine.elements(CALLER, execution)).items}
    assert elements["pay"].attempts == 2


async def test_a_failure_that_is_not_retryable_fails_the_execution_at_once(engine: Node) -> None:
    execution = await _start(engine, paying(retry={"maxAttempts": 5, "backoffMs": 1}), amount=5)
    task = await _one(engine)
    request = TaskFailRequest(lockToken=task.lockToken, error="card stolen", type="Fraud", retryable=False)
    await engine.fail_task(CALLER, task.taskId, request)
    assert await _final(engine, execution) == "failed"
    status = await engine.status(CALLER, execution)
    assert "Fraud: card stolen" in str(status.model_dump())


async def test_completing_twice_or_with_a_stale_lock_changes_nothing_and_says_so(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    execution = await _start(engine, paying(), amount=7)
    first = await _one(engine, lockMs=1000)
    clock.advance(1500)  # the lock expires: the next fetch takes the task again
    again = await _one(engine, workerId="w2")
    assert again.taskId == first.taskId and again.lockToken != first.lockToken
    with pytest.raises(TaskLockStale):
        await engine.complete_task(CALLER, first.taskId, TaskCompleteRequest(lockToken=first.lockToken, output=1))
    with pytest.raises(TaskLockStale):
        await engine.extend_task(CALLER, first.taskId, TaskExtendRequest(lockToken=first.lockToken, lockMs=5000))
    await engine.complete_task(CALLER, again.taskId, TaskCompleteRequest(lockToken=again.lockToken, output=2))
    with pytest.raises(TaskAlreadySettled):
        await engine.complete_task(CALLER, again.taskId, TaskCompleteRequest(lockToken=again.lockToken, output=3))
    assert await _final(engine, execution) == "completed"
    state = await engine.state(CALLER, execution)
    assert state.memory is not None and state.memory["variables"]["payment"] == 2
    queues = {q.queue: q for q in (await engine.task_queues(CALLER)).items}
    assert queues["payments"].locksExpired == 1


async def test_an_extended_lock_is_not_taken_by_another_fetch(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    await _start(engine, paying(), amount=7)
    task = await _one(engine, lockMs=1000)
    extended = await engine.extend_task(CALLER, task.taskId, TaskExtendRequest(lockToken=task.lockToken, lockMs=60_000))
    assert extended.lockExpiresAt > task.lockExpiresAt
    clock.advance(1500)
    assert await _fetch(engine, wait_ms=0, workerId="w2") == []


async def test_another_tenant_sees_neither_the_queue_nor_the_task(engine: Node) -> None:
    await _start(engine, paying(), amount=1)
    assert await _fetch(engine, OTHER, wait_ms=50) == []
    task = await _one(engine)
    with pytest.raises(NotFound):
        await engine.complete_task(OTHER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken))
    assert (await engine.task_queues(OTHER)).items == []


async def test_a_late_complete_after_the_pause_grace_is_refused_and_the_task_offered_again_at_resume(
    engine: Node,
) -> None:
    execution = await _start(engine, paying(), amount=9)
    task = await _one(engine)
    paused = await engine.pause(CALLER, execution, ControlRequest())  # waits out the grace (500 ms), then revokes
    assert paused.status == "paused"
    with pytest.raises(TaskLockRevoked):
        await engine.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output=1))
    assert await _fetch(engine, wait_ms=50) == []  # not offered while paused
    await engine.resume(CALLER, execution, ControlRequest())
    again = await _one(engine)
    assert (again.taskId, again.attempt) == (task.taskId, 1)  # the same attempt, offered again
    with pytest.raises(TaskLockRevoked):  # the old lock stays refused
        await engine.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output=1))
    await engine.complete_task(CALLER, again.taskId, TaskCompleteRequest(lockToken=again.lockToken, output=3))
    assert await _final(engine, execution) == "completed"


async def test_a_task_completed_within_the_pause_grace_counts(engine: Node) -> None:
    import asyncio

    execution = await _start(engine, paying(), amount=9)
    task = await _one(engine)
    pausing = asyncio.ensure_future(engine.pause(CALLER, execution, ControlRequest()))
    await asyncio.sleep(0.05)
    await engine.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output="ok"))
    paused = await pausing
    assert paused.completedNodes == 1
    await engine.resume(CALLER, execution, ControlRequest())
    assert await _final(engine, execution) == "completed"
    assert await _fetch(engine, wait_ms=0) == []  # nothing offered again


async def test_cancel_revokes_the_lock_at_once(engine: Node) -> None:
    execution = await _start(engine, paying(), amount=9)
    task = await _one(engine)
    await engine.cancel(CALLER, execution, ControlRequest())
    with pytest.raises(TaskLockRevoked):
        await engine.fail_task(CALLER, task.taskId, TaskFailRequest(lockToken=task.lockToken, error="x"))


async def test_timeout_ms_fails_the_attempt_and_revokes_its_lock(engine: Node) -> None:
    execution = await _start(engine, paying(timeoutMs=200, retry={"maxAttempts": 2, "backoffMs": 1}), amount=9)
    first = await _one(engine)
    second = await _one(engine, workerId="w2")  # after the timeout, attempt 2
    assert second.attempt == 2
    with pytest.raises(TaskLockRevoked):
        await engine.complete_task(CALLER, first.taskId, TaskCompleteRequest(lockToken=first.lockToken, output=1))
    await engine.complete_task(CALLER, second.taskId, TaskCompleteRequest(lockToken=second.lockToken, output=2))
    assert await _final(engine, execution) == "completed"


async def test_a_result_given_while_the_owner_was_away_is_taken_by_the_node_that_adopts_it(
    make_engine: EngineFactory, redis: Redis
) -> None:
    first = await make_engine()
    execution = await _start(first, paying(), amount=3)
    task = await _one(first)
    await first.__aexit__(None, None, None)  # the owner goes away with the task in a worker's hands
    await first.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output="late"))
    second = await make_engine()
    assert await _final(second, execution) == "completed"
    state = await second.state(CALLER, execution)
    assert state.memory is not None and state.memory["variables"]["payment"] == "late"
    assert second.external.offered <= 1  # taken from the task, not done again


def test_a_queue_name_is_a_short_identifier() -> None:
    from procengine.engine.validation import validate_definition

    with pytest.raises(ValidationFailed) as refused:
        validate_definition(paying(queue="no spaces/here"), ["echo"])
    assert "queue" in str(refused.value.details)
    validate_definition(paying(queue="payments.eu-1"), ["echo"])  # the handler need not be known


async def test_the_queue_figures_reach_the_metrics(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    await _start(engine, paying(), amount=1)
    await _start(engine, paying(), amount=2)
    await _one(engine)  # one locked, one waiting
    clock.advance(3000)
    await engine.tasks.refresh_metrics(engine.metrics, ["default"])
    text = engine.metrics_text()[0].decode()
    labels = '{queue="payments",tenant="default"}'
    assert f"procengine_task_queue_depth{labels} 1.0" in text
    assert f"procengine_task_queue_in_flight{labels} 1.0" in text
    assert f"procengine_task_queue_locks_expired{labels} 0.0" in text
    oldest = next(line for line in text.splitlines() if line.startswith("procengine_task_queue_oldest_waiting"))
    assert float(oldest.split()[-1]) >= 3.0


async def test_a_queue_and_its_tasks_live_in_the_documented_keys(engine: Node, redis: Redis, prefix: str) -> None:
    execution = await _start(engine, paying(), amount=1)
    task = await _one(engine)
    tenant = f"{prefix}:tenant:{{default}}"
    found = sorted([k.decode() async for k in redis.scan_iter(match=f"{tenant}:*")])
    assert [k for k in found if ":queue" in k or ":task:" in k] == sorted(
        [
            f"{tenant}:queue:payments",
            f"{tenant}:queue:payments:locks",
            f"{tenant}:queues",
            f"{tenant}:task:{task.taskId}",
        ]
    )
    fields = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{tenant}:task:{task.taskId}")).items()}
    assert fields.keys() >= {
        "taskId", "queue", "executionId", "elementKey", "attempt", "handler", "input", "idempotencyKey", "node",
        "status", "entry", "queuedAt", "lockToken", "lockExpiresAt", "workerId", "deliveries",
    }  # fmt: skip
    assert (fields["status"], fields["executionId"], fields["lockToken"]) == ("locked", str(execution), task.lockToken)
    assert await redis.xlen(f"{tenant}:queue:payments") == 1
    pending = await redis.xpending(f"{tenant}:queue:payments", "workers")
    assert pending["pending"] == 1
    await engine.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output=1))
    assert await redis.xlen(f"{tenant}:queue:payments") == 0  # acknowledged and deleted
    assert 0 < await redis.pttl(f"{tenant}:task:{task.taskId}") <= 24 * 3600 * 1000


async def test_a_complete_on_another_node_reaches_the_runner_through_the_channel(make_engine: EngineFactory) -> None:
    owner, other = await make_engine(), await make_engine()
    await until(lambda: owner.tasks.listening.is_set())
    execution = await _start(owner, paying(), amount=4)
    task = await _one(other)  # any node answers a fetch
    assert not other.external.waits_here("default", task.taskId)
    await other.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output="there"))
    assert await _final(owner, execution) == "completed"
    state = await owner.state(CALLER, execution)
    assert state.memory is not None and state.memory["variables"]["payment"] == "there"


async def test_a_result_whose_runner_went_meanwhile_stays_for_the_re_run(
    engine: Node, redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = await _start(engine, paying(), amount=4)
    task = await _one(engine)
    hand_over = engine.external.settled
    monkeypatch.setattr(engine.external, "settled", lambda *args: False)  # as if the runner went during the write
    await engine.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output="kept"))
    key = f"{prefix}:tenant:{{default}}:task:{task.taskId}"
    assert await redis.hget(key, "status") == b"completed"  # not `taken`: the next runner of the attempt takes it
    monkeypatch.setattr(engine.external, "settled", hand_over)
    engine.external.settled("default", task.taskId)  # the runner (still there, in fact) looks again
    assert await _final(engine, execution) == "completed"
    assert await redis.hget(key, "status") == b"taken"
