"""Schedules over HTTP, through the clients (issue 24, point 3): created (201) with its next fire times, refused (422)
listing every problem, triggered by hand and its outcome shown, paused, resumed, changed, listed and deleted;
another tenant's schedule is 404 for every verb. The server's own schedule loop fires it (real time: a trigger
wakes it at once)."""

from __future__ import annotations

import pytest

from procengine.client import AsyncClient, Client, NotFound, ValidationError
from tests.support.polling import poll

QUICK = {
    "key": "sched-quick",
    "threads": [{"key": "main", "elements": [{"key": "done", "type": "end"}]}],
}


async def test_a_schedule_through_its_life(client_a: AsyncClient) -> None:
    await client_a.register(QUICK)
    created = await client_a.create_schedule(
        "sched-quick", cron="0 9 * * 1-5", timezone="Europe/Berlin", variables={"from": "schedule"}
    )
    assert len(created.nextFireTimes) == 5
    assert all(t.endswith(("07:00:00.000Z", "08:00:00.000Z")) for t in created.nextFireTimes)  # 09:00 CET/CEST

    triggered = await client_a.trigger_schedule(created.scheduleID, reason="smoke test")
    view = await poll(lambda: client_a.schedule(created.scheduleID), lambda found: bool(found.lastOutcomes), within=10)
    [outcome] = view.lastOutcomes
    assert (outcome.result, outcome.manual, outcome.fireTime) == ("started", True, triggered.fireTime)
    assert outcome.executionID is not None
    assert (await client_a.status(outcome.executionID)).processID > 0

    paused = await client_a.pause_schedule(created.scheduleID, reason="holidays")
    assert (paused.state, paused.nextFireTimes) == ("paused", [])
    resumed = await client_a.resume_schedule(created.scheduleID)
    assert resumed.state == "active" and len(resumed.nextFireTimes) == 5
    changed = await client_a.update_schedule(created.scheduleID, every="1h", overlap="allow")
    assert (changed.cron, changed.every, changed.overlap) == (None, "1h", "allow")
    assert [s.scheduleID for s in (await client_a.schedules()).items] == [created.scheduleID]
    assert (await client_a.delete_schedule(created.scheduleID, reason="done")).deleted
    with pytest.raises(NotFound):
        await client_a.schedule(created.scheduleID)


async def test_a_bad_schedule_is_422_listing_every_problem(client_a: AsyncClient) -> None:
    await client_a.register(QUICK)
    with pytest.raises(ValidationError) as refused:
        await client_a.create_schedule("sched-quick", cron="0 25 * * *", every="5m", timezone="Atlantis/Capital")
    problems = " | ".join(refused.value.problems)
    assert "not both" in problems and "cron:" in problems and "timezone:" in problems, problems
    with pytest.raises(ValidationError) as refused:  # checked by the client before it is sent
        await client_a.create_schedule("sched-quick", every="5m", overlap="sometimes")
    assert "overlap" in " ".join(refused.value.problems)


async def test_another_tenants_schedule_is_404(client_a: AsyncClient, client_b: AsyncClient) -> None:
    await client_a.register(QUICK)
    created = await client_a.create_schedule("sched-quick", every="1d")
    for call in (
        client_b.schedule(created.scheduleID),
        client_b.pause_schedule(created.scheduleID),
        client_b.resume_schedule(created.scheduleID),
        client_b.trigger_schedule(created.scheduleID),
        client_b.update_schedule(created.scheduleID, every="1h"),
        client_b.delete_schedule(created.scheduleID),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await client_b.schedules()).items == []
    assert (await client_a.schedule(created.scheduleID)).state == "active"


def test_the_blocking_client_has_the_same_calls(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(QUICK)
        created = client.create_schedule("sched-quick", every="30m", catchup="latest")
        assert client.schedule(created.scheduleID).catchup == "latest"
        assert client.pause_schedule(created.scheduleID).state == "paused"
        assert client.resume_schedule(created.scheduleID).state == "active"
        assert client.update_schedule(created.scheduleID, every="5m").every == "5m"
        assert client.trigger_schedule(created.scheduleID).scheduleID == created.scheduleID
        assert [s.scheduleID for s in client.schedules(limit=10).items] == [created.scheduleID]
        assert client.delete_schedule(created.scheduleID).deleted
