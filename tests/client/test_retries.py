"""503 with Retry-After is retried, event streams are resumed with Last-Event-ID: against a small fake server
whose answers each test scripts, since a real one cannot be made to fail on cue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from procengine.client import AsyncClient, ConnectionFailed, Unavailable
from tests.support.api import BASE

STATUS: dict[str, Any] = {
    "executionID": 1,
    "processID": 1,
    "processKey": "p",
    "processVersion": 1,
    "status": "running",
    "isActive": True,
    "progress": {"totalNodes": 2, "completedNodes": 1, "failedNodes": 0, "percentage": 50.0},
    "timing": {"startedAt": "2026-01-01T00:00:00.000Z", "stoppedAt": None, "durationMs": 5},
    "threads": [],
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unavailable(retry_after: str | None = "0") -> web.Response:
    body = {"success": False, "error": {"code": "UNAVAILABLE", "message": "the store cannot be reached; try again"}}
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return web.json_response(body, status=503, headers=headers)


def entry(number: int, event: str) -> bytes:
    data = {"id": f"{number}-0", "at": "2026-01-01T00:00:00.000Z", "event": event, "elementKey": None}
    return f"id: {number}-0\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Fake:
    """A server whose one route answers with the next of `answers` each time, and keeps what it was asked."""

    def __init__(self, answers: list[Handler]) -> None:
        self.answers = answers
        self.requests: list[web.Request] = []
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        self.bodies.append(await request.read())
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return await answer(request)

    @property
    def last_event_ids(self) -> list[str | None]:
        return [request.headers.get("Last-Event-ID") for request in self.requests]


@pytest.fixture
async def fake() -> AsyncIterator[Callable[[str, str, list[Handler]], Awaitable[tuple[Fake, AsyncClient]]]]:
    servers: list[TestServer] = []
    clients: list[AsyncClient] = []

    async def make(method: str, path: str, answers: list[Handler]) -> tuple[Fake, AsyncClient]:
        fake = Fake(answers)
        app = web.Application()
        app.router.add_route(method, BASE + path, fake.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        client = AsyncClient(str(server.make_url("")), retries=2, reconnects=2, max_retry_wait=0.05)
        clients.append(client)
        return fake, client

    yield make
    for client in clients:
        await client.close()
    for server in servers:
        await server.close()


def answer(response: Callable[[], web.StreamResponse]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return response()

    return handle


def ok(data: Any, status: int = 200) -> Handler:
    return answer(lambda: web.json_response({"success": True, "data": data}, status=status))


def busy(retry_after: str | None = "0") -> Handler:
    return answer(lambda: unavailable(retry_after))


async def test_a_503_with_retry_after_is_retried(fake: Any) -> None:
    server, client = await fake("GET", "/executions/processes/1/status", [busy(), busy("3600"), ok(STATUS)])
    view = await client.status(1)  # Retry-After 3600 is waited for only max_retry_wait
    assert view.progress.percentage == 50.0 and len(server.requests) == 3


async def test_retries_have_an_end_and_a_503_without_retry_after_has_none(fake: Any) -> None:
    server, client = await fake("GET", "/statuses", [busy("1")])
    with pytest.raises(Unavailable) as exhausted:
        await client.statuses()
    assert exhausted.value.retry_after == 1.0 and len(server.requests) == 3  # the first and two retries

    server, client = await fake("GET", "/statuses", [busy(None), ok({"items": []})])
    with pytest.raises(Unavailable) as hopeless:
        await client.statuses()
    assert hopeless.value.retry_after is None and len(server.requests) == 1


async def test_a_start_is_retried_only_with_an_idempotency_key(fake: Any) -> None:
    started = {"executionID": 7, "status": "running", "processID": 1, "processVersion": 1}
    server, client = await fake("POST", "/executions/processes", [busy(), busy(), ok(started, 201)])
    with pytest.raises(Unavailable):
        await client.start("p")  # it may have started before the server failed: not sent twice
    assert len(server.requests) == 1

    result = await client.start("p", idempotency_key="k-1")
    assert result.executionID == 7 and len(server.requests) == 3
    assert [json.loads(body) for body in server.bodies[1:]] == [
        {"processKey": "p", "variables": {}, "idempotencyKey": "k-1"}
    ] * 2


def _events(*parts: bytes, reset: bool = False) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in parts:
            await response.write(part)
        if reset:  # cut off without the end of the chunked body: what a crashed node or a proxy does
            assert request.transport is not None
            request.transport.close()
        return response

    return handle


async def test_an_execution_s_stream_resumes_after_a_reset_or_a_503(fake: Any) -> None:
    server, client = await fake(
        "GET",
        "/executions/processes/1/events",
        [
            _events(entry(1, "started"), b": keep-alive\n\n", reset=True),
            busy(),
            _events(entry(2, "element-completed"), reset=True),
            _events(entry(3, "completed")),
        ],
    )
    async with asyncio.timeout(10):
        seen = [item async for item in client.events(1)]
    assert [item.event for item in seen] == ["started", "element-completed", "completed"]
    assert server.last_event_ids == [None, "1-0", "1-0", "2-0"]


async def test_a_stream_gives_up_after_its_reconnects(fake: Any) -> None:
    server, client = await fake("GET", "/executions/processes/1/events", [_events(entry(1, "started"), reset=True)])
    seen = []
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionFailed):
            async for item in client.events(1, after="0-1"):
                seen.append(item.id)
    # the event given again after a reconnect is neither shown twice nor progress: 2 reconnects, then the end
    assert seen == ["1-0"]
    assert server.last_event_ids == ["0-1", "1-0", "1-0"]


async def test_the_status_stream_that_never_ends_is_resumed_when_it_ends(fake: Any) -> None:
    change = {"id": "4-0", "executionID": 3, "status": "paused", "processKey": "p"}
    again = {**change, "id": "5-0", "status": "running"}
    server, client = await fake(
        "GET",
        "/executions/events",
        [
            _events(f"id: 4-0\nevent: status\ndata: {json.dumps(change)}\n\n".encode()),  # ends: it should not
            _events(f"id: 5-0\nevent: status\ndata: {json.dumps(again)}\n\n".encode()),
        ],
    )
    async with asyncio.timeout(10), client.status_events() as changes:
        assert [(await anext(changes)).status for _ in range(2)] == ["paused", "running"]
    assert server.last_event_ids[:2] == [None, "4-0"]
