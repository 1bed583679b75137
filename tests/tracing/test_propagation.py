"""The trace context on the way in (the front door's `traceparent`, malformed ones ignored), kept with tracing off,
and on the way out (the `http` task's header, the log lines' ids)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.runtime.logs import JsonFormatter
from procengine.settings import Settings
from procengine.tasks import HandlerRegistry, builtin_handlers
from tests.support.api import BASE
from tests.support.nodes import CALLER, EngineFactory, start, wait_status
from tests.support.processes import WAIT_PROCESS, definition

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
EXECUTIONS = f"{BASE}/executions/processes"


async def _client(engine: Node) -> TestClient[web.Request, web.Application]:
    return TestClient(TestServer(create_app(engine, engine.settings)))


@pytest.mark.parametrize("traced", [True, False])
async def test_a_start_request_s_traceparent_is_kept_with_the_execution(
    make_engine: EngineFactory, exporter: InMemorySpanExporter, traced: bool
) -> None:
    engine = await make_engine(traced=traced)
    summary, _ = await engine.register_process(CALLER, WAIT_PROCESS)
    async with await _client(engine) as client:
        response = await client.post(
            EXECUTIONS,
            json={"processID": summary.processID, "variables": {"amount": 1}},
            headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
        )
        assert response.status == 201, await response.text()
        execution_id = (await response.json())["data"]["executionID"]
    fields = await engine.store.fields(execution_id)
    assert fields["traceparent"].startswith(f"00-{TRACE}-")
    assert fields["tracestate"] == "congo=t61rcWkgMzE"
    if traced:  # the start's own span is the execution's context
        [start_span] = [s for s in exporter.get_finished_spans() if s.name == "start approval"]
        assert start_span.context is not None
        assert fields["traceparent"] == f"00-{TRACE}-{start_span.context.span_id:016x}-01"
    else:  # tracing off: the request's context as it came, and no span at all
        assert fields["traceparent"] == TRACEPARENT
        assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{TRACE}-00f067aa0ba902b7",  # no flags
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # an all-zero parent id
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # upper case
        "00-" + "é" * 32 + "-00f067aa0ba902b7-01",
    ],
)
async def test_a_malformed_traceparent_is_ignored_never_an_error(
    make_engine: EngineFactory, exporter: InMemorySpanExporter, traceparent: str
) -> None:
    engine = await make_engine(traced=False)
    summary, _ = await engine.register_process(CALLER, WAIT_PROCESS)
    async with await _client(engine) as client:
        response = await client.post(
            EXECUTIONS,
            json={"processID": summary.processID, "variables": {"amount": 1}},
            headers={"traceparent": traceparent, "tracestate": "a=b"},
        )
        assert response.status == 201, await response.text()
        execution_id = (await response.json())["data"]["executionID"]
        paused = await client.post(f"{EXECUTIONS}/{execution_id}/pause", headers={"traceparent": traceparent})
        assert paused.status == 200, await paused.text()
    fields = await engine.store.fields(execution_id)
    assert "traceparent" not in fields and "tracestate" not in fields


async def test_control_and_signal_requests_carry_their_traceparent_to_the_span(
    make_engine: EngineFactory, exporter: InMemorySpanExporter
) -> None:
    engine = await make_engine()
    summary, _ = await engine.register_process(CALLER, WAIT_PROCESS)
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    async with await _client(engine) as client:
        started = await client.post(EXECUTIONS, json={"processID": summary.processID, "variables": {"amount": 1}})
        execution_id = (await started.json())["data"]["executionID"]
        for path in ("pause", "resume", "signals/approve"):
            response = await client.post(f"{EXECUTIONS}/{execution_id}/{path}", json={}, headers={"traceparent": other})
            assert response.status in (200, 202), await response.text()
    assert await wait_status(engine, execution_id, "completed") == "completed"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    for name in ("pause", "resume", "signal approve"):
        assert [f"{link.context.trace_id:032x}" for link in spans[name].links] == ["1" * 32]


@pytest.fixture
async def echo_headers() -> AsyncIterator[tuple[TestServer, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/hello", hello)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server, seen


@pytest.mark.parametrize("traced", [True, False])
async def test_the_http_task_sends_the_attempt_s_traceparent(
    redis: Redis,
    settings: Settings,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    echo_headers: tuple[TestServer, list[dict[str, str]]],
    traced: bool,
) -> None:
    server, seen = echo_headers
    handlers = builtin_handlers([f"127.0.0.1:{server.port}"])
    url = f"'http://127.0.0.1:{server.port}/hello'"
    process = definition({"key": "call", "type": "task", "handler": "http", "input": {"url": url}})
    async with Node(redis, settings, handlers, tracer_provider=provider if traced else None) as engine:
        execution_id = await start(engine, process)
        assert await wait_status(engine, execution_id, "completed") == "completed"
    [headers] = seen
    if not traced:  # tracing off: nothing is sent
        assert "traceparent" not in {name.lower() for name in headers}
        return
    [attempt] = [span for span in exporter.get_finished_spans() if span.name == "task http"]
    assert attempt.context is not None
    assert headers["traceparent"].startswith(f"00-{attempt.context.trace_id:032x}-{attempt.context.span_id:016x}-")


async def test_a_handler_s_json_log_lines_carry_the_attempt_s_trace_and_span_ids(
    engine: Node, handlers: HandlerRegistry, exporter: InMemorySpanExporter
) -> None:
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    said = logging.getLogger("tests.tracing.handler")
    said.addHandler(keep := Keep())
    said.setLevel(logging.INFO)

    async def chatty(task_input: dict[str, Any]) -> dict[str, Any]:
        said.info("charging")
        return {}

    handlers.register("chatty", chatty)
    try:
        execution_id = await start(engine, definition({"key": "t", "type": "task", "handler": "chatty"}))
        assert await wait_status(engine, execution_id, "completed") == "completed"
        said.info("outside any span")
    finally:
        said.removeHandler(keep)
    [attempt] = [span for span in exporter.get_finished_spans() if span.name == "task chatty"]
    assert attempt.context is not None
    inside, outside = lines
    assert inside["trace_id"] == f"{attempt.context.trace_id:032x}"
    assert inside["span_id"] == f"{attempt.context.span_id:016x}"
    assert inside["executionID"] == execution_id
    assert "trace_id" not in outside and "span_id" not in outside
