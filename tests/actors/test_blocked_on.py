"""`blockedOn` in the status: per lane that is not moving, why (issue 20, point 5). Every answer is checked the
same from the live actor and from Redis (a node that does not drive the execution reads it so)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from procengine.api.views import ControlRequest, ExecutionStatusView
from procengine.node.node import Node
from procengine.node.ownership import Ownership
from procengine.node.queries import Queries
from procengine.runtime.clock import iso, parse_iso
from tests.support.clock import ShiftedClock
from tests.support.nodes import CALLER, EngineFactory, Gate, child_of, crash, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import KYC, definition, parent


async def _blocked(engine: Node, execution_id: int) -> list[dict[str, Any]]:
    """`blockedOn` as the node answers it, checked equal to the one read from Redis."""
    answered = (await engine.status(CALLER, execution_id)).model_dump(mode="json")["blockedOn"]
    from_redis = await engine.queries.status(CALLER.tenant, execution_id)
    view = ExecutionStatusView.model_validate_json(from_redis.json(engine.clock.now_ms()))
    assert view.model_dump(mode="json")["blockedOn"] == answered
    return list(answered)


async def _started_at(engine: Node, execution_id: int, key: str) -> str:
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    started = records[key].startedAt
    assert started is not None
    return started


async def test_a_wait_says_which_signal_how_many_are_buffered_and_when_it_times_out(
    make_engine: EngineFactory,
) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    clock.advance(3_600_000)  # the engine's clock, not the wall's, times the wait
    execution_id = await start(
        engine,
        definition(
            {"key": "approve", "type": "wait-signal", "signal": "go", "timeoutMs": 60_000, "next": "again"},
            {"key": "again", "type": "wait-signal", "signal": "again"},
        ),
    )
    await wait_element(engine, execution_id, "approve")
    since = await _started_at(engine, execution_id, "approve")
    timeout_at = iso(parse_iso(since) + 60_000)
    assert await _blocked(engine, execution_id) == [
        {
            "lane": "main",
            "elementKey": "approve",
            "kind": "signal",
            "since": since,
            "until": timeout_at,
            "detail": {"signal": "go", "buffered": 0, "timeoutAt": timeout_at},
        }
    ]
    # a signal the next wait takes waits in the buffer meanwhile: counted
    await engine.signal(CALLER, execution_id, "again", {"n": 1})
    await engine.signal(CALLER, execution_id, "again", {"n": 2})
    [entry] = await _blocked(engine, execution_id)
    assert (entry["detail"]["signal"], entry["detail"]["buffered"]) == ("go", 0)
    await engine.signal(CALLER, execution_id, "go", None)
    await wait_status(engine, execution_id, "completed")


async def test_buffered_signals_of_the_waited_name_are_counted_while_paused(engine: Node) -> None:
    execution_id = await start(engine, definition({"key": "approve", "type": "wait-signal", "signal": "go"}))
    await wait_element(engine, execution_id, "approve")
    await engine.pause(CALLER, execution_id, ControlRequest(reason="checking the order"))
    await engine.signal(CALLER, execution_id, "go", 1)
    await engine.signal(CALLER, execution_id, "go", 2)
    [entry] = await _blocked(engine, execution_id)
    assert entry["kind"] == "paused"
    assert entry["detail"]["waiting"] == {"kind": "signal", "signal": "go", "buffered": 2, "timeoutAt": None}
    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "completed")
    status = await engine.status(CALLER, execution_id)
    assert status.blockedOn == []  # final: nothing waits


async def test_a_delay_says_when_it_is_due(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    clock.advance(86_400_000)
    execution_id = await start(engine, definition({"key": "nap", "type": "delay", "durationMs": 90_000}))
    await wait_element(engine, execution_id, "nap")
    since = await _started_at(engine, execution_id, "nap")
    due = iso(parse_iso(since) + 90_000)
    assert await _blocked(engine, execution_id) == [
        {"lane": "main", "elementKey": "nap", "kind": "delay", "since": since, "until": due, "detail": {"dueAt": due}}
    ]


async def test_a_task_in_its_backoff_says_when_it_retries_and_the_last_error(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    retry = {"maxAttempts": 3, "backoffMs": 120_000}
    execution_id = await start(
        engine,
        definition(
            {
                "key": "charge",
                "type": "task",
                "handler": "fail",
                "input": {"message": "'card declined'"},
                "retry": retry,
            }
        ),
    )
    await wait_element(engine, execution_id, "charge", "retrying")
    [retried] = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "element-retry"]
    retry_at = retried.detail["retryAt"]
    [entry] = await _blocked(engine, execution_id)
    assert entry == {
        "lane": "main",
        "elementKey": "charge",
        "kind": "backoff",
        "since": iso(parse_iso(retry_at) - 120_000),  # when attempt 1 failed
        "until": retry_at,
        "detail": {
            "attempt": 2,
            "retryAt": retry_at,
            "lastError": "TaskFailed: card declined",
            "lastErrorType": "TaskFailed",
        },
    }


async def test_a_running_task_says_its_attempt_and_node(engine: Node, gate: Gate) -> None:
    execution_id = await start(
        engine, definition({"key": "check", "type": "task", "handler": "gate", "timeoutMs": 300_000})
    )
    await gate.entered.wait()
    await wait_element(engine, execution_id, "check")
    since = await _started_at(engine, execution_id, "check")
    timeout_at = iso(parse_iso(since) + 300_000)
    assert await _blocked(engine, execution_id) == [
        {
            "lane": "main",
            "elementKey": "check",
            "kind": "task",
            "since": since,
            "until": timeout_at,
            "detail": {"attempt": 1, "node": engine.node_id, "handler": "gate", "timeoutAt": timeout_at},
        }
    ]
    gate.release.set()
    await wait_status(engine, execution_id, "completed")


async def test_every_lane_of_a_paused_execution_says_who_paused_it_and_why(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    side = {"key": "side", "elements": [{"key": "nap", "type": "delay", "durationMs": 50_000}]}
    main = {"key": "main", "elements": [{"key": "approve", "type": "wait-signal", "signal": "go"}]}
    execution_id = await start(engine, definition(threads=[main, side]))
    await wait_element(engine, execution_id, "approve")
    await wait_element(engine, execution_id, "nap")
    paused = await engine.pause(CALLER, execution_id, ControlRequest(reason="fraud check"))
    clock.advance(20_000)  # paused time does not run the delay
    blocked = await _blocked(engine, execution_id)
    by_lane = {entry["lane"]: entry for entry in blocked}
    assert set(by_lane) == {"main", "side"}
    for entry in blocked:
        assert (entry["kind"], entry["since"], entry["until"]) == ("paused", paused.pausedAt, None)
        assert (entry["detail"]["by"], entry["detail"]["reason"]) == ("default", "fraud check")
    assert by_lane["main"]["detail"]["waiting"]["kind"] == "signal"
    waiting = by_lane["side"]["detail"]["waiting"]
    assert waiting["kind"] == "delay" and 0 < waiting["remainingMs"] <= 50_000
    # resumed: who paused it is gone with the pause
    await engine.resume(CALLER, execution_id, ControlRequest())
    kinds = {entry["lane"]: entry["kind"] for entry in await _blocked(engine, execution_id)}
    assert kinds == {"main": "signal", "side": "delay"}


async def test_a_running_execution_whose_owner_died_says_so_until_adopted(
    make_engine: EngineFactory, redis: Redis
) -> None:
    engine = await make_engine()
    execution_id = await start(engine, definition({"key": "approve", "type": "wait-signal", "signal": "go"}))
    await wait_element(engine, execution_id, "approve")
    await crash(engine)
    await redis.delete(engine.keys.node(engine.node_id))  # its heartbeat's TTL ran out; no node has adopted it
    observer = Ownership(redis, engine.keys, "observer", 1000, 3000)
    await observer.renew()  # a node whose own heartbeat is believable: it judges the others
    queries = Queries(engine.store, engine.catalog.compiled, observer.alive)
    status = ExecutionStatusView.model_validate_json((await queries.status(CALLER.tenant, execution_id)).json(0))
    saved_at = (await engine.queries.state(CALLER.tenant, execution_id)).savedAt
    [entry] = status.model_dump(mode="json")["blockedOn"]
    assert entry == {
        "lane": "main",
        "elementKey": "approve",
        "kind": "owner-dead",
        "since": saved_at,
        "until": None,
        "detail": {
            "owner": engine.node_id,
            "lastCheckpointAt": saved_at,
            "waiting": {"kind": "signal", "signal": "go", "buffered": 0, "timeoutAt": None},
        },
    }


async def test_a_call_says_which_child_it_waits_for_and_whether_the_child_runs_or_is_paused(
    make_engine: EngineFactory, gate: Gate
) -> None:
    engine = await make_engine(pause_grace_ms=50)  # the child's pause cuts its task short at once
    await engine.register_process(CALLER, KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "ada"}})
    child_id = await child_of(engine, parent_id)
    await gate.entered.wait()

    async def child_entry() -> dict[str, Any]:
        [entry] = await _blocked(engine, parent_id)
        assert (entry["lane"], entry["elementKey"], entry["kind"]) == ("main", "run-kyc", "child")
        return entry

    entry = await child_entry()
    assert entry["detail"] == {"childExecutionID": child_id, "childStatus": "running"}
    assert entry["since"] == await _started_at(engine, parent_id, "run-kyc")
    await engine.pause(CALLER, child_id, ControlRequest(reason="look at the child"))
    entry = await poll(child_entry, lambda found: found["detail"]["childStatus"] == "paused")
    assert entry["detail"]["childExecutionID"] == child_id
    [child] = await _blocked(engine, child_id)
    assert (child["kind"], child["detail"]["by"], child["detail"]["waiting"]) == ("paused", "default", None)
    gate.release.set()
