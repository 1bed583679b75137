"""AsyncClient against a real server: every route, typed answers, and the error answers as exceptions."""

from __future__ import annotations

import asyncio

import pytest

from procengine.api.views import (
    ExecutionStatusView,
    LogEntry,
    ProcessSummary,
    ProcessView,
    StartResult,
)
from procengine.client import (
    AsyncClient,
    BadRequest,
    ConnectionFailed,
    InvalidTransition,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationError,
)
from tests.support.api import BASE
from tests.support.processes import SHORT_PROCESS_YAML, WAIT_PROCESS


async def _started(client: AsyncClient, **variables: int) -> StartResult:
    await client.register(WAIT_PROCESS)
    return await client.start("approval", variables=variables or {"amount": 2})


async def test_definitions_register_as_json_or_yaml_and_read_back(client_a: AsyncClient) -> None:
    first = await client_a.register(WAIT_PROCESS)
    again = await client_a.register(WAIT_PROCESS)  # identical: the version it already is
    short = await client_a.register(SHORT_PROCESS_YAML)

    assert isinstance(first, ProcessSummary) and (first.key, first.version) == ("approval", 1)
    assert again.processID == first.processID
    assert (short.key, short.version) == ("short", 1)
    listed = await client_a.processes()
    assert {(p.key, p.version) for p in listed.items} == {("approval", 1), ("short", 1)}
    view = await client_a.process(short.processID)
    assert isinstance(view, ProcessView) and view.definition["key"] == "short" and view.tenant == "tenant-a"


async def test_an_execution_is_started_paused_resumed_signalled_and_read_in_every_way(client_a: AsyncClient) -> None:
    started = await _started(client_a, amount=21)
    execution_id = started.executionID
    assert (started.status, started.processVersion) == ("running", 1)

    paused = await client_a.pause(execution_id, reason="stock check")
    assert (paused.status, paused.executionID) == ("paused", execution_id)
    resumed = await client_a.resume(execution_id)
    assert resumed.status == "running"

    seen: list[LogEntry] = []
    async with asyncio.timeout(10), client_a.events(execution_id) as events:
        async for entry in events:
            seen.append(entry)
            if entry.event == "element-started" and entry.elementKey == "wait":
                accepted = await client_a.signal(execution_id, "approve", {"by": "dana"}, idempotency_key="sig-1")
                assert accepted.accepted and accepted.signal == "approve"
    names = [entry.event for entry in seen]
    assert names[0] == "started" and names[-1] == "completed"  # the stream ended by itself after the end
    assert {"paused", "resumed", "signal-received"} <= set(names)

    again = await client_a.signal(execution_id, "approve", {"by": "dana"}, idempotency_key="sig-1")
    assert again.accepted  # delivered once: the repeat is answered as the first, even now it has ended
    log = await client_a.log(execution_id)
    assert [entry.id for entry in log.items][: len(seen)] == [entry.id for entry in seen]
    paused_entry = next(entry for entry in log.items if entry.event == "paused")
    assert paused_entry.detail["reason"] == "stock check"
    elements = await client_a.elements(execution_id)
    assert {element.key: element.output for element in elements.items}["wait"] == {"by": "dana"}
    state = await client_a.state(execution_id)
    assert state.active is False and state.memory is not None
    assert state.memory["variables"]["total"] == 42


async def test_status_list_and_paging(client_a: AsyncClient) -> None:
    first = await _started(client_a)
    second = await client_a.start("approval", variables={"amount": 1}, idempotency_key="once")
    repeat = await client_a.start("approval", variables={"amount": 1}, idempotency_key="once")
    assert repeat.executionID == second.executionID
    await client_a.cancel(first.executionID, reason="not needed")

    view = await client_a.status(second.executionID)
    assert isinstance(view, ExecutionStatusView)
    assert (view.status, view.processKey, view.isActive) == ("running", "approval", True)
    assert [thread.threadKey for thread in view.threads] == ["main"]

    page = await client_a.executions(limit=1)
    assert [item.executionID for item in page.items] == [second.executionID] and page.nextCursor is not None
    rest = await client_a.executions(limit=1, cursor=page.nextCursor)
    assert [item.executionID for item in rest.items] == [first.executionID]
    cancelled = await client_a.executions(status="cancelled", process_id=first.processID)
    assert [item.executionID for item in cancelled.items] == [first.executionID]
    every = [item.executionID async for item in client_a.iter_executions(page_size=1)]
    assert every == [second.executionID, first.executionID]


async def test_the_status_table_probes_document_and_metrics(client_a: AsyncClient) -> None:
    table = await client_a.statuses()
    assert [row.name for row in table.items] == ["running", "paused", "completed", "failed", "cancelled"]
    assert await client_a.health() == "ok"
    assert await client_a.ready() == "ready"
    document = await client_a.openapi()
    assert document["openapi"].startswith("3.1") and f"{BASE}/executions/events" in document["paths"]
    assert "procengine_" in await client_a.metrics()


async def test_the_tenant_s_status_changes_stream_from_now(client_a: AsyncClient, client_b: AsyncClient) -> None:
    before = await _started(client_a)  # before the stream: not in it
    seen = []
    async with asyncio.timeout(10), client_a.status_events() as changes:  # connected once entered
        started = await client_a.start("approval", variables={"amount": 1})
        await _started(client_b)  # another tenant's: never seen here
        await client_a.pause(started.executionID)
        await client_a.cancel(started.executionID)
        async for change in changes:
            seen.append(change)
            if change.status == "cancelled":
                break
    assert [(change.executionID, change.status) for change in seen] == [
        (started.executionID, status) for status in ("running", "paused", "cancelled")
    ]
    assert before.executionID not in [change.executionID for change in seen]

    # after=: what came after an event, from any time later
    async with asyncio.timeout(10), client_a.status_events(after=seen[0].id) as replay:
        assert [(await anext(replay)).status for _ in range(2)] == ["paused", "cancelled"]


async def test_an_execution_s_events_go_on_after_a_given_id(client_a: AsyncClient) -> None:
    started = await _started(client_a)
    await client_a.cancel(started.executionID)
    every = [entry async for entry in client_a.events(started.executionID)]
    after = [entry async for entry in client_a.events(started.executionID, after=every[0].id)]
    assert [entry.id for entry in after] == [entry.id for entry in every[1:]]
    assert after[-1].event == "cancelled"


async def test_a_409_carries_the_current_status(client_a: AsyncClient) -> None:
    started = await _started(client_a)
    await client_a.pause(started.executionID)

    with pytest.raises(InvalidTransition) as paused:
        await client_a.pause(started.executionID)
    await client_a.cancel(started.executionID)
    with pytest.raises(InvalidTransition) as cancelled:
        await client_a.signal(started.executionID, "approve")

    error = paused.value
    assert (error.status, error.code, error.current_status) == (409, "INVALID_TRANSITION", "paused")
    assert "paused" in error.message and error.request_id
    assert cancelled.value.current_status == "cancelled"


async def test_unknown_and_other_tenants_ids_are_not_found(client_a: AsyncClient, client_b: AsyncClient) -> None:
    started = await _started(client_a)
    with pytest.raises(NotFound) as unknown:
        await client_a.status(started.executionID + 1000)
    for call in (
        client_b.status(started.executionID),
        client_b.pause(started.executionID),
        client_b.log(started.executionID),
        client_b.process(started.processID or 0),
        client_b.start("approval"),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound):  # a stream too, before it streams anything
        await anext(client_b.events(started.executionID))
    assert (unknown.value.status, unknown.value.code) == (404, "NOT_FOUND")


async def test_a_422_lists_every_problem(client_a: AsyncClient) -> None:
    broken = {"key": "broken", "threads": [{"key": "main", "elements": [{"key": "a", "type": "frobnicate"}]}]}
    with pytest.raises(ValidationError) as definition:
        await client_a.register(broken)
    with pytest.raises(ValidationError) as query:
        await client_a.executions(limit=0)
    with pytest.raises(ValidationError) as local:  # refused before it is sent, as the server would
        await client_a.start("approval", process_id=0)

    assert definition.value.status == 422 and definition.value.problems
    assert any("frobnicate" in problem for problem in definition.value.problems)
    assert query.value.problems == ["limit: Input should be greater than or equal to 1"]
    assert local.value.problems == ["processID: Input should be greater than or equal to 1"]


async def test_a_malformed_body_is_400_and_a_big_one_413(client_a: AsyncClient) -> None:
    started = await _started(client_a)
    with pytest.raises(BadRequest) as malformed:
        await client_a.register("key: [unclosed")
    with pytest.raises(PayloadTooLarge) as large:
        await client_a.signal(started.executionID, "approve", "x" * 100_000)
    assert malformed.value.status == 400 and "YAML" in malformed.value.message
    assert large.value.status == 413


async def test_tokens_come_from_arguments_or_the_environment(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with AsyncClient(server_url) as anonymous, AsyncClient(server_url, "nope") as stranger:
        with pytest.raises(Unauthorized) as missing:
            await anonymous.statuses()
        with pytest.raises(Unauthorized) as unknown:
            await stranger.statuses()
    assert missing.value.status == 401 and "missing bearer token" in missing.value.message
    assert unknown.value.message == "unknown bearer token"

    monkeypatch.setenv("PROCENGINE_URL", server_url + BASE + "/")  # the base path may be given
    monkeypatch.setenv("PROCENGINE_TOKEN", "tok-b")
    async with AsyncClient() as from_environment:
        assert from_environment.url == server_url
        assert (await from_environment.processes()).items == []


async def test_a_server_that_is_not_there_is_a_connection_failure(unused_tcp_port: int) -> None:
    async with AsyncClient(f"http://127.0.0.1:{unused_tcp_port}", reconnects=0) as client:
        with pytest.raises(ConnectionFailed) as request:
            await client.statuses()
        with pytest.raises(ConnectionFailed):
            await anext(client.status_events())
    assert request.value.status == 0 and "cannot reach the server" in request.value.message
