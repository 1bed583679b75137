"""Bulk operations as durable jobs (issue 23, point 2): a dry run touches nothing; a job over a filter or over ids
applies the single operation to each execution (audited with the job's id and reason), counts refusals by reason,
pages its items; it can be paused, resumed and cancelled; a bulk pause can be undone; a job goes on on another node
after the node running it is killed; a tenant's job never touches another tenant's executions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.bulk_views import BulkCreated, BulkJobView, BulkRequest, BulkSteerRequest
from procengine.api.service import Caller
from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import InvalidTransition, NotFound, ValidationFailed
from procengine.node.bulk_items import JobParams, apply_item
from procengine.node.node import Node
from procengine.store.bulk_jobs import ItemOutcome
from tests.support.nodes import CALLER, EngineFactory
from tests.support.polling import poll
from tests.support.processes import definition

WAITS = definition(
    {"key": "approve", "type": "wait-signal", "signal": "go", "into": "approval", "next": "done"},
    {"key": "done", "type": "end"},
)
OTHER = Caller(tenant="other", by="other", request_id="req-other")


async def _waiting(engine: Node, count: int, caller: Caller = CALLER) -> list[int]:
    """`count` executions of the caller's, each waiting for its signal."""
    summary, _ = await engine.register_process(caller, WAITS)
    ids = []
    for _ in range(count):
        result, _ = await engine.start_execution(caller, StartRequest(processID=summary.processID))
        ids.append(result.executionID)
    for execution_id in ids:

        async def at(execution_id: int = execution_id) -> str | None:
            return {e.key: e.status for e in (await engine.elements(caller, execution_id)).items}.get("approve")

        await poll(at, lambda found: found == "running")
    return ids


async def _status(engine: Node, execution_id: int, caller: Caller = CALLER) -> str:
    return (await engine.status(caller, execution_id)).status


async def _ended(engine: Node, job_id: int, caller: Caller = CALLER, within: float = 15) -> BulkJobView:
    return await poll(
        lambda: engine.bulk_job(caller, job_id),
        lambda job: job.status in ("completed", "cancelled", "failed"),
        within=within,
    )


async def _job(engine: Node, caller: Caller = CALLER, **body: Any) -> BulkCreated:
    created = await engine.bulk(caller, BulkRequest.model_validate(body))
    assert isinstance(created, BulkCreated)
    return created


async def test_a_dry_run_counts_and_samples_and_touches_nothing(engine: Node) -> None:
    ids = await _waiting(engine, 3)

    answer = await engine.bulk(CALLER, BulkRequest(action="pause", filter={"status": "running"}, dryRun=True))

    assert answer.model_dump() == {"action": "pause", "matched": 3, "sample": sorted(ids, reverse=True)}
    assert [await _status(engine, i) for i in ids] == ["running"] * 3
    assert (await engine.bulk_jobs(CALLER, limit=10, cursor=None)).items == []


async def test_a_bulk_pause_over_a_filter_pauses_each_as_its_single_form_with_the_job_in_its_log(engine: Node) -> None:
    ids = await _waiting(engine, 3)

    created = await _job(engine, action="pause", filter={"status": "running"}, reason="maintenance")
    job = await _ended(engine, created.jobID)

    assert (created.status, created.matched) == ("running", 3)
    assert (job.status, job.action, job.matched, job.done, job.refused, job.failed) == (
        "completed",
        "pause",
        3,
        3,
        {},
        0,
    )
    assert job.filter == {"status": "running"} and job.reason == "maintenance" and job.endedAt is not None
    for execution_id in ids:
        assert await _status(engine, execution_id) == "paused"
        [paused] = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "paused"]
        assert paused.detail["bulk"] == created.jobID and paused.detail["reason"] == "maintenance"
        assert paused.detail["by"] == "default" and paused.detail["requestId"] == "req-test"


async def test_items_are_paged_oldest_first(engine: Node) -> None:
    ids = await _waiting(engine, 3)
    created = await _job(engine, action="pause", ids=ids)
    await _ended(engine, created.jobID)

    first = await engine.bulk_items(CALLER, created.jobID, limit=2, cursor=None)
    second = await engine.bulk_items(CALLER, created.jobID, limit=2, cursor=first.nextCursor)

    assert first.nextCursor is not None and second.nextCursor is None
    seen = [item.executionID for item in first.items + second.items]
    assert sorted(seen) == sorted(ids) and len(seen) == 3
    assert {item.outcome for item in first.items + second.items} == {"done"}
    with pytest.raises(ValidationFailed):
        await engine.bulk_items(CALLER, created.jobID, limit=2, cursor="x")


async def test_refusals_are_counted_by_reason_and_listed_per_execution(engine: Node) -> None:
    running, paused = await _waiting(engine, 2)
    await engine.pause(CALLER, paused, ControlRequest())

    created = await _job(engine, action="resume", ids=[running, paused, 987654321])
    job = await _ended(engine, created.jobID)

    assert (job.done, job.failed) == (1, 0)
    assert job.refused == {"execution is running": 1, "not found": 1}
    items = {
        i.executionID: (i.outcome, i.reason)
        for i in (await engine.bulk_items(CALLER, job.jobID, limit=10, cursor=None)).items
    }
    assert items == {
        running: ("refused", "execution is running"),
        paused: ("done", None),
        987654321: ("refused", "not found"),
    }
    assert await _status(engine, paused) == "running"


async def test_a_tenants_job_never_touches_another_tenants_executions(engine: Node) -> None:
    mine = await _waiting(engine, 1)
    theirs = await _waiting(engine, 1, OTHER)

    created = await _job(engine, action="cancel", ids=[*mine, *theirs])
    job = await _ended(engine, created.jobID)
    over_filter = await engine.bulk(CALLER, BulkRequest(action="cancel", filter={}, dryRun=True))

    assert (job.done, job.refused) == (1, {"not found": 1})
    assert await _status(engine, theirs[0], OTHER) == "running"
    assert over_filter.sample == mine  # every execution of the caller's, none of the other tenant's
    with pytest.raises(NotFound):
        await engine.bulk_job(OTHER, created.jobID)
    with pytest.raises(NotFound):
        await engine.bulk_steer(OTHER, created.jobID, "cancel", BulkSteerRequest())
    with pytest.raises(NotFound):
        await engine.bulk_items(OTHER, created.jobID, limit=10, cursor=None)
    assert (await engine.bulk_jobs(OTHER, limit=10, cursor=None)).items == []


async def test_a_job_is_paused_resumed_and_cancelled(engine: Node) -> None:
    ids = await _waiting(engine, 8)
    created = await _job(engine, action="pause", ids=ids, maxPerSecond=4)

    paused = await engine.bulk_steer(CALLER, created.jobID, "pause", BulkSteerRequest())
    await engine.bulk_idle()  # the runner let the job go
    held = await engine.bulk_job(CALLER, created.jobID)
    assert paused.status == "paused" and held.status == "paused" and held.done < 8
    assert (await engine.bulk_store.read("default", created.jobID))["owner"] == ""
    with pytest.raises(InvalidTransition):
        await engine.bulk_steer(CALLER, created.jobID, "pause", BulkSteerRequest())

    resumed = await engine.bulk_steer(CALLER, created.jobID, "resume", BulkSteerRequest())
    job = await _ended(engine, created.jobID)
    assert resumed.status == "running" and (job.status, job.done) == ("completed", 8)

    again = await _job(engine, action="resume", ids=ids, maxPerSecond=2)
    cancelled = await engine.bulk_steer(CALLER, again.jobID, "cancel", BulkSteerRequest())
    await engine.bulk_idle()
    job = await engine.bulk_job(CALLER, again.jobID)
    assert cancelled.status == "cancelled" and job.status == "cancelled" and job.done < 8 and job.endedAt
    assert sum([await _status(engine, i) == "paused" for i in ids]) == 8 - job.done
    with pytest.raises(InvalidTransition):
        await engine.bulk_steer(CALLER, again.jobID, "resume", BulkSteerRequest())


async def test_undo_resumes_only_what_the_pause_still_holds_paused(engine: Node) -> None:
    ids = await _waiting(engine, 4)
    created = await _job(engine, action="pause", ids=ids)
    await _ended(engine, created.jobID)
    by_hand, paused_again = ids[0], ids[1]
    await engine.resume(CALLER, by_hand, ControlRequest())
    await engine.resume(CALLER, paused_again, ControlRequest())
    await engine.pause(CALLER, paused_again, ControlRequest(reason="by hand"))

    undo = await engine.bulk_undo(CALLER, created.jobID, BulkSteerRequest())
    job = await _ended(engine, undo.jobID)

    assert (job.action, job.undoOf, job.matched, job.done) == ("resume", created.jobID, 4, 2)
    assert job.refused == {"resumed since (execution is running)": 1, "paused again since": 1}
    assert [await _status(engine, i) for i in ids] == ["running", "paused", "running", "running"]
    assert (await engine.bulk_job(CALLER, created.jobID)).undoneBy == undo.jobID
    with pytest.raises(InvalidTransition):
        await engine.bulk_undo(CALLER, created.jobID, BulkSteerRequest())
    with pytest.raises(ValidationFailed):
        await engine.bulk_undo(CALLER, undo.jobID, BulkSteerRequest())  # not a pause


async def _kill(node: Node, redis: Redis) -> None:
    """As kill -9 would leave it: no more writes (its runners and actors stop), its heartbeat gone at once."""
    for task in node._background:
        task.cancel()
    await asyncio.gather(*node._background, return_exceptions=True)
    node._background = []
    await node.stop_bulk_runners()
    await node.registry.stop_all()
    await redis.delete(node.keys.node(node.node_id))


async def test_a_job_goes_on_on_another_node_after_the_node_running_it_is_killed(
    make_engine: EngineFactory, redis: Redis
) -> None:
    a = await make_engine()
    ids = await _waiting(a, 20)
    b = await make_engine()
    # paced at 10 a second, in stretches of 10: the first stretch's progress is written after about a second, the
    # last one's a second later, so the kill falls between them (a kill during the last write would let A end it)
    created = await _job(a, action="pause", ids=ids, maxPerSecond=10)
    await poll(lambda: a.bulk_job(CALLER, created.jobID), lambda job: job.done >= 4)

    await _kill(a, redis)
    job = await _ended(b, created.jobID)

    assert (job.status, job.done, job.refused, job.failed) == ("completed", 20, {}, 0)
    fields = await b.bulk_store.read("default", created.jobID)
    assert fields["epoch"] == "2" and fields["owner"] == ""
    assert [await _status(b, i) for i in ids] == ["paused"] * 20
    assert not await redis.smembers(b.keys.node_bulk_jobs(a.node_id))


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"action": "pause"}, ["filter, ids: give exactly one of them"]),
        ({"action": "pause", "ids": [1], "filter": {}}, ["filter, ids: give exactly one of them"]),
        ({"action": "signal", "ids": [1]}, ["signal: the signal's name is required for action signal"]),
        (
            {"action": "pause", "ids": [1], "variables": {}, "signal": "go"},
            ["signal: not taken by action pause", "variables: not taken by action pause"],
        ),
        (
            {"action": "migrate", "ids": [1]},
            ["version: the version to migrate to is required for action migrate"],
        ),
        (
            {"action": "pause", "filter": {"order_id": 1, "status": "nope"}},
            [
                "filter.order_id: unknown (known: status, processID, processKey, startedAfter, startedBefore, "
                "errorType, attr.<name>, attr.<name>.<gte|lte|gt|lt>)",
                "filter.status: 'nope' is not a status (running, paused, completed, failed, cancelled)",
            ],
        ),
    ],
)
async def test_a_bad_request_is_refused_listing_every_problem(
    engine: Node, body: dict[str, Any], problems: list[str]
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await engine.bulk(CALLER, BulkRequest.model_validate(body))
    assert refused.value.problems == problems
    assert (await engine.bulk_jobs(CALLER, limit=10, cursor=None)).items == []


async def test_signal_and_edit_variables_in_bulk(engine: Node) -> None:
    ids = await _waiting(engine, 2)
    created = await _job(engine, action="signal", ids=ids, signal="go", payload={"ok": True})
    job = await _ended(engine, created.jobID)
    assert job.done == 2
    await poll(lambda: _status(engine, ids[0]), lambda s: s == "completed")

    more = await _waiting(engine, 2)
    await engine.pause(CALLER, more[0], ControlRequest())
    edit = await _job(engine, action="edit-variables", ids=more, variables={"x": 1})
    job = await _ended(engine, edit.jobID)
    assert (job.done, job.refused) == (1, {"execution is running": 1})
    state = await engine.state(CALLER, more[0])
    assert state.memory is not None and state.memory["variables"]["x"] == 1
    [changed] = [e for e in (await engine.log(CALLER, more[0])).items if e.event == "variables-changed"]
    assert changed.detail["bulk"] == edit.jobID


async def test_a_pause_applied_again_after_a_failover_counts_as_done_when_this_job_paused_it(engine: Node) -> None:
    # given an execution a job's item paused before the job's node died (its outcome never written)
    mine, theirs = await _waiting(engine, 2)
    first = await engine.pause(Caller("default", "default", "req-job", bulk=41), mine, ControlRequest())
    await engine.pause(CALLER, theirs, ControlRequest())  # and one paused by hand

    # when the adopting node applies the item again
    again = await apply_item(engine, CALLER, mine, JobParams(job_id=41, action="pause", reason=None))
    other = await apply_item(engine, CALLER, theirs, JobParams(job_id=41, action="pause", reason=None))

    # then it is done, with the first pause's time (what an undo checks), and the other is refused
    assert (again.outcome, again.paused_at) == ("done", first.pausedAt)
    assert (other.outcome, other.reason) == ("refused", "execution is paused")


async def test_a_job_matching_nothing_completes_at_once(engine: Node) -> None:
    created = await _job(engine, action="cancel", filter={"status": "paused"})
    job = await _ended(engine, created.jobID)
    assert (created.matched, job.status, job.done) == (0, "completed", 0)


async def test_a_paused_job_costs_no_node_and_runs_where_its_resume_lands(make_engine: EngineFactory) -> None:
    a, b = await make_engine(), await make_engine()
    ids = await _waiting(a, 6)
    created = await _job(a, action="pause", ids=ids, maxPerSecond=3)
    await a.bulk_steer(CALLER, created.jobID, "pause", BulkSteerRequest())
    await a.bulk_idle()
    assert not await a.redis.smembers(a.keys.node_bulk_jobs(a.node_id))  # let go: in no node's set

    await b.bulk_steer(CALLER, created.jobID, "resume", BulkSteerRequest())
    assert b._runners and not a._runners
    job = await _ended(b, created.jobID)

    assert (job.status, job.done) == ("completed", 6)
    assert (await b.bulk_store.read("default", created.jobID))["epoch"] == "2"


async def test_progress_is_written_only_by_the_owner_at_its_epoch(engine: Node) -> None:
    # given a job adopted by another node (its epoch moved on) while this node still ran it
    ids = await _waiting(engine, 3)
    created = await _job(engine, action="pause", ids=ids, maxPerSecond=1)
    store = engine.bulk_store
    taken = await store.change_owner("default", created.jobID, "adopt", engine.node_id, 1, "other", "now")
    assert taken == ["OK", "2"]

    # when the old owner writes its stretch, and then the new one
    outcome = ItemOutcome(ids[0], "done")
    stale = await store.progress("default", created.jobID, engine.node_id, 1, 1, 0, "now", [outcome])
    fresh = await store.progress("default", created.jobID, "other", 2, 1, 0, "now", [outcome, outcome])

    # then the old owner's is refused and changes nothing; the new owner's counts the execution once
    assert stale.status is None and fresh.status == "running"
    await engine.bulk_idle()  # this node's runner finds itself fenced and stops
    fields = await store.read("default", created.jobID)
    assert (fields["owner"], fields["epoch"], fields["done"], fields["cursor"]) == ("other", "2", "1", "1")
    assert [i.executionID for i in (await engine.bulk_items(CALLER, created.jobID, limit=10, cursor=None)).items] == [
        ids[0]
    ]
