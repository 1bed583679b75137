"""`start_many` (AsyncClient and Client) against a real server: outcomes in order, replays, the 1,000 split."""

from __future__ import annotations

import pytest

from procengine.client import AsyncClient, Client, ValidationError
from tests.support.processes import WAIT_PROCESS


async def test_each_start_has_its_outcome_and_a_repeat_answers_the_same_executions(client_a: AsyncClient) -> None:
    await client_a.register(WAIT_PROCESS)
    starts = [
        {"variables": {"amount": 1}, "idempotencyKey": "a"},
        {"processKey": "no-such-process"},
        {"variables": {"amount": 2}},
        {"variables": {"amount": 3}, "idempotencyKey": "a"},
    ]

    answer = await client_a.start_many(starts, process_key="approval")
    again = await client_a.start_many([starts[0]], process_key="approval")

    assert [item.outcome for item in answer.items] == ["started", "failed", "started", "existing"]
    error = answer.items[1].error
    assert error is not None and (error.code, error.status) == ("NOT_FOUND", 404)
    assert answer.items[3].executionID == answer.items[0].executionID
    assert (answer.started, answer.existing, answer.failed) == (2, 1, 1)
    assert again.items[0].outcome == "existing" and again.items[0].executionID == answer.items[0].executionID
    first = answer.items[0].executionID
    assert first is not None
    assert (await client_a.log(first)).items[0].event == "started"
    other = await client_a.status(answer.items[2].executionID or 0)
    assert other.status == "running"


async def test_another_tenant_s_process_is_not_found(client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(WAIT_PROCESS)

    answer = await client_b.start_many([{}], process_key="approval")

    assert answer.items[0].outcome == "failed"
    assert answer.items[0].error is not None and answer.items[0].error.code == "NOT_FOUND"


async def test_more_than_1000_starts_go_in_several_requests_with_indexes_over_all(client_a: AsyncClient) -> None:
    await client_a.register(WAIT_PROCESS)

    answer = await client_a.start_many(({"variables": {"amount": i}} for i in range(1001)), process_key="approval")

    assert answer.started == 1001
    assert [item.index for item in answer.items] == list(range(1001))
    ids = [item.executionID for item in answer.items]
    assert len(set(ids)) == 1001


async def test_an_invalid_start_is_refused_before_anything_is_sent(client_a: AsyncClient) -> None:
    with pytest.raises(ValidationError) as refused:
        await client_a.start_many([{"processKey": "approval"}, {"processID": "7"}])

    assert refused.value.problems and refused.value.problems[0].startswith("starts.1.processID")
    assert (await client_a.executions()).items == []


def test_the_blocking_client_starts_many(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        process = client.register(WAIT_PROCESS)

        answer = client.start_many([{"variables": {"amount": 1}}] * 3, process_id=process.processID)

    assert [item.outcome for item in answer.items] == ["started"] * 3
