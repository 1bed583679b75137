"""What makes a bulk operation fast without changing what it does (issue 23, point 2, the bench's 2 s): a filter whose
one index holds exactly its matches is resolved from that index alone, without reading a row; a bulk pause goes
straight to the mailboxes of the actors this node drives (node/bulk_local.py), each still the actor's own single
pause, and what it cannot deliver there goes the whole way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from procengine.actors.messages import Command, Request
from procengine.api.bulk_views import BulkRequest
from procengine.api.views import ControlRequest
from procengine.errors import InvalidTransition
from procengine.node.bulk_items import JobParams, pause_outcome
from procengine.node.bulk_local import ask_local
from procengine.node.node import Node
from procengine.statuses import Status
from procengine.store.executions import PAUSED_BY_BULK
from tests.actors.test_bulk import OTHER, _ended, _job, _status, _waiting
from tests.support.nodes import CALLER


@pytest.fixture
def rows_read(engine: Node, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many executions' rows each `many_fields` call read."""
    counted: list[int] = []
    many_fields = engine.store.many_fields

    async def counting(execution_ids: list[int], names: list[str]) -> Any:
        counted.append(len(execution_ids))
        return await many_fields(execution_ids, names)

    monkeypatch.setattr(engine.store, "many_fields", counting)
    return counted


async def _matched(engine: Node, wanted: dict[str, Any]) -> list[int]:
    answer = await engine.bulk(CALLER, BulkRequest(action="pause", filter=wanted, dryRun=True))
    return list(answer.model_dump()["sample"])


async def test_a_filter_of_live_status_and_process_is_read_from_its_index_alone(
    engine: Node, rows_read: list[int]
) -> None:
    ids = await _waiting(engine, 3)
    await _waiting(engine, 1, OTHER)
    process_id = (await engine.status(CALLER, ids[0])).processID
    rows_read.clear()

    matched = await _matched(engine, {"processID": process_id, "status": "running"})

    assert matched == sorted(ids, reverse=True)
    assert rows_read == []  # before: the list query read each row


async def test_a_filter_the_index_does_not_hold_exactly_still_reads_the_rows(
    engine: Node, rows_read: list[int]
) -> None:
    ids = await _waiting(engine, 2)
    rows_read.clear()

    matched = await _matched(engine, {"status": "running", "processKey": "nope"})

    assert matched == [] and sum(rows_read) == len(ids)


@pytest.fixture
def asked(engine: Node, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The executions the node's single path (`_ask`: activation, forwarding, a deadline each) was asked about."""
    seen: list[int] = []
    ask = engine._ask

    async def counting(execution_id: int, *args: Any, **kwargs: Any) -> Any:
        seen.append(execution_id)
        return await ask(execution_id, *args, **kwargs)

    monkeypatch.setattr(engine, "_ask", counting)
    return seen


async def test_a_bulk_pause_goes_straight_to_the_actors_here_each_its_own_audited_pause(
    engine: Node, asked: list[int]
) -> None:
    ids = await _waiting(engine, 3)

    created = await _job(engine, action="pause", ids=ids, reason="maintenance")
    job = await _ended(engine, created.jobID)

    assert (job.status, job.done, job.refused, job.failed) == ("completed", 3, {}, 0)
    assert asked == []  # before: one `_ask` per item
    paused_at = await engine.bulk_store.paused_by("default", created.jobID)
    for execution_id in ids:
        fields = await engine.execution_fields(CALLER, execution_id, ["status", "pausedAt", PAUSED_BY_BULK])
        expected = {"status": "paused", "pausedAt": paused_at[execution_id], PAUSED_BY_BULK: str(job.jobID)}
        assert fields == {**expected, "tenant": "default"}
        [entry] = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "paused"]
        assert (entry.detail["bulk"], entry.detail["reason"]) == (created.jobID, "maintenance")


async def test_what_is_not_running_here_or_not_the_tenants_goes_the_whole_way(engine: Node, asked: list[int]) -> None:
    running, paused = await _waiting(engine, 2)
    theirs = await _waiting(engine, 1, OTHER)
    await engine.pause(CALLER, paused, ControlRequest())
    asked.clear()

    created = await _job(engine, action="pause", ids=[running, paused, *theirs])
    job = await _ended(engine, created.jobID)

    assert (job.done, job.refused) == (1, {"execution is paused": 1, "not found": 1})
    assert sorted(asked) == sorted([paused, *theirs])
    assert await _status(engine, theirs[0], OTHER) == "running"


async def test_a_pause_refused_as_paused_by_this_job_counts_as_done(engine: Node) -> None:
    [execution_id] = await _waiting(engine, 1)
    created = await _job(engine, action="pause", ids=[execution_id])
    await _ended(engine, created.jobID)
    job = JobParams(job_id=created.jobID, action="pause", reason=None)
    refused = InvalidTransition("cannot pause", Status.PAUSED.value)

    again = await pause_outcome(engine, CALLER, execution_id, job, refused)  # applied again after a failover
    other = await pause_outcome(
        engine, CALLER, execution_id, JobParams(job_id=999, action="pause", reason=None), refused
    )

    paused_at = (await engine.bulk_store.paused_by("default", created.jobID))[execution_id]
    assert (again.outcome, again.paused_at) == ("done", paused_at)
    assert (other.outcome, other.reason) == ("refused", "execution is paused")


class _Silent:
    """An actor that takes requests and never answers them."""

    def __init__(self) -> None:
        self.tenant = CALLER.tenant
        self.status = Status.RUNNING
        self.mailbox = self
        self.taken: list[Request] = []

    def put(self, request: Request) -> None:
        self.taken.append(request)

    def get(self, execution_id: int) -> _Silent:  # the registry too
        return self


async def test_a_request_not_answered_by_the_deadline_is_withdrawn_and_left_to_the_whole_way() -> None:
    silent = _Silent()

    answers = await ask_local(silent, [1, 2, 3], Command("pause", CALLER), window=2, deadline_s=0.05)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the withdrawn replies' callbacks run: none sends another request

    assert answers == {}
    assert len(silent.taken) == 2  # the window: the third was never sent
    assert all(request.reply.cancelled() for request in silent.taken)  # an actor skips a cancelled request
