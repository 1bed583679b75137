"""The spans of an execution (docs/tracing.md): one trace, whose root is the start, holds every element run, every
task attempt, the children and the commands, whichever node runs them, across a node's loss and an adoption."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from procengine.api.service import Caller
from procengine.api.views import ControlRequest, StartRequest
from procengine.node.node import Node
from procengine.runtime.tracing import Tracing
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, Gate, child_of, crash, wait_element, wait_status
from tests.support.processes import WAIT_PROCESS, definition

TRACE = "0af7651916cd43dd8448eb211c80319c"
REQUEST_SPAN = "b7ad6b7169203331"
TRACED = replace(CALLER, traceparent=f"00-{TRACE}-{REQUEST_SPAN}-01", tracestate="vendor=x")

KYC = definition({"key": "check", "type": "task", "handler": "echo", "input": {"who": "'ha'"}}, key="kyc")
ORDER = definition(
    {
        "key": "checks",
        "type": "parallel",
        "branches": [
            {"key": "a", "elements": [{"key": "call", "type": "call-process", "process": "kyc"}]},
            {
                "key": "b",
                "elements": [
                    {"key": "charge", "type": "task", "handler": "flaky", "retry": {"maxAttempts": 2, "backoffMs": 1}}
                ],
            },
        ],
        "next": "after",
    },
    {"key": "after", "type": "set-variable", "set": {"done": "true"}},
    key="order",
)


async def _start(engine: Node, caller: Caller, process: dict[str, Any], **variables: Any) -> int:
    summary, _ = await engine.register_process(caller, process)
    result, _ = await engine.start_execution(caller, StartRequest(processID=summary.processID, variables=variables))
    return result.executionID


def _hex(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _parent(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def _of(spans: list[ReadableSpan], execution_id: int) -> dict[str, list[ReadableSpan]]:
    """The execution's spans by name, oldest first."""
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        if span.attributes is not None and span.attributes.get("procengine.execution.id") == execution_id:
            named.setdefault(span.name, []).append(span)
    return named


async def test_a_parallel_a_child_and_a_retried_task_are_one_trace_under_the_request(
    engine: Node, handlers: HandlerRegistry, exporter: InMemorySpanExporter
) -> None:
    # given a process whose parallel calls a child in one branch and retries a task once in the other
    calls = 0

    async def flaky(task_input: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("card declined")
        return {"charged": True}

    handlers.register("flaky", flaky)
    await engine.register_process(CALLER, KYC)

    # when it is started by a request that sent a traceparent, and runs to the end
    parent_id = await _start(engine, TRACED, ORDER)
    assert await wait_status(engine, parent_id, "completed") == "completed"
    child_id = await child_of(engine, parent_id)
    assert await wait_status(engine, child_id, "completed") == "completed"

    # then every span is in the request's trace
    spans = list(exporter.get_finished_spans())
    assert {_hex(span)[0] for span in spans} == {TRACE}
    # the start is a child of the request's span, and the execution keeps its context
    parent = _of(spans, parent_id)
    [start] = parent["start order"]
    assert _parent(start) == REQUEST_SPAN
    stored = await engine.store.fields(parent_id)
    assert stored["traceparent"] == f"00-{TRACE}-{_hex(start)[1]}-01"
    assert stored["tracestate"] == "vendor=x"
    # each element run is a span under the start, with its attributes
    elements = {name: spans for name, spans in parent.items() if name.startswith("element ")}
    assert sorted(elements) == ["element after", "element call", "element charge", "element checks"]
    for [span] in elements.values():
        assert _parent(span) == _hex(start)[1]
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time
    [charge] = elements["element charge"]
    assert charge.attributes is not None
    assert charge.attributes["procengine.element.attempts"] == 2
    assert charge.attributes["procengine.lane"] == "main/checks[b]"
    assert charge.attributes["procengine.element.type"] == "task"
    # each attempt of the retried task is a span under the start: the first failed
    first, second = parent["task flaky"]
    assert [a.attributes["procengine.task.attempt"] for a in (first, second) if a.attributes] == [1, 2]
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "RuntimeError: card declined"
    assert second.status.status_code is StatusCode.UNSET
    assert {_parent(first), _parent(second)} == {_hex(start)[1]}
    # the child's start is a child of the parent's, and its elements are under its own start
    child = _of(spans, child_id)
    [child_start] = child["start kyc"]
    assert _parent(child_start) == _hex(start)[1]
    [check] = child["element check"]
    assert _parent(check) == _hex(child_start)[1]
    [echo] = child["task echo"]
    assert _parent(echo) == _hex(child_start)[1]


async def test_a_node_lost_mid_task_and_the_adopter_keep_one_trace(
    make_engine: EngineFactory, gate: Gate, exporter: InMemorySpanExporter
) -> None:
    # given an execution (started with no traceparent: the start makes a trace) whose task runs on a node
    first = await make_engine()
    process = definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, {"key": "e", "type": "end"})
    execution_id = await _start(first, CALLER, process)
    await gate.entered.wait()

    # when that node stops as kill -9 would leave it, and another adopts the execution and runs the task again
    await crash(first)
    second = await make_engine()
    gate.release.set()
    assert await wait_status(second, execution_id, "completed", within=20) == "completed"

    # then the adopter's spans are in the trace the start made, under the start
    named = _of(list(exporter.get_finished_spans()), execution_id)
    [start] = named["start p"]
    assert _parent(start) is None
    trace_id, root = _hex(start)
    spans = [span for group in named.values() for span in group]
    assert {_hex(span)[0] for span in spans} == {trace_id}
    assert {_parent(span) for span in spans if span is not start} == {root}
    # the attempt cut short on the lost node says so; the adopter's ran to the end; the element is one span
    lost, rerun = named["task gate"]
    assert lost.attributes is not None and lost.attributes.get("procengine.task.interrupted") is True
    assert rerun.attributes is not None and "procengine.task.interrupted" not in rerun.attributes
    [work] = named["element work"]
    assert work.attributes is not None and work.attributes["procengine.element.attempts"] == 1
    assert [name for name in named if name.startswith("element ")] == ["element work", "element e"]


async def test_commands_are_spans_in_the_execution_trace_linked_to_their_requests(
    make_engine: EngineFactory, exporter: InMemorySpanExporter
) -> None:
    # given an execution waiting for a signal on one node, started in the request's trace
    owner = await make_engine()
    other = await make_engine()
    execution_id = await _start(owner, TRACED, WAIT_PROCESS, amount=2)
    assert await wait_status(owner, execution_id, "running") == "running"

    # when another trace pauses it through the other node (forwarded to the owner), then it is resumed, signalled
    elsewhere = replace(CALLER, traceparent="00-11111111111111111111111111111111-2222222222222222-01")
    await other.pause(elsewhere, execution_id, ControlRequest(reason="look"))
    await owner.resume(CALLER, execution_id, ControlRequest())
    await owner.signal(TRACED, execution_id, "approve", {"ok": True})
    assert await wait_status(owner, execution_id, "completed") == "completed"

    # then each is a span under the execution's start, in its trace; the pause links to the request's own trace
    named = _of(list(exporter.get_finished_spans()), execution_id)
    [start] = named["start approval"]
    for name in ("pause", "resume", "signal approve"):
        [span] = named[name]
        assert _hex(span)[0] == TRACE
        assert _parent(span) == _hex(start)[1]
    [pause] = named["pause"]
    assert [f"{link.context.trace_id:032x}" for link in pause.links] == ["11111111111111111111111111111111"]
    assert pause.attributes is not None and pause.attributes["procengine.command"] == "pause"
    [signal] = named["signal approve"]
    assert signal.links == ()  # the request's trace is the execution's: no link to itself
    [resume] = named["resume"]
    assert resume.links == ()


async def test_a_refused_command_is_a_failed_span(engine: Node, exporter: InMemorySpanExporter) -> None:
    execution_id = await _start(engine, CALLER, WAIT_PROCESS, amount=2)
    assert await wait_status(engine, execution_id, "running") == "running"
    try:
        await engine.resume(CALLER, execution_id, ControlRequest())
    except Exception as exc:
        assert getattr(exc, "code", "") == "INVALID_TRANSITION"
    else:
        raise AssertionError("a running execution was resumed")
    [resume] = _of(list(exporter.get_finished_spans()), execution_id)["resume"]
    assert resume.status.status_code is StatusCode.ERROR


async def test_tracing_off_makes_no_span_even_for_an_execution_with_a_trace_context(
    make_engine: EngineFactory, handlers: HandlerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a node with tracing off, where making any span would fail the test
    def no_span(*args: object, **kwargs: object) -> None:
        raise AssertionError("a span was made with tracing off")

    monkeypatch.setattr(Tracing, "span", no_span)
    engine = await make_engine(traced=False)

    async def work(task_input: dict[str, Any]) -> dict[str, Any]:
        return {}

    handlers.register("work", work)
    process = definition(
        {"key": "t", "type": "task", "handler": "work", "next": "w"},
        {"key": "w", "type": "wait-signal", "signal": "go"},
    )

    # when an execution started in a trace runs a task, is paused, resumed and signalled to its end
    execution_id = await _start(engine, TRACED, process)
    await wait_element(engine, execution_id, "w")
    await engine.pause(TRACED, execution_id, ControlRequest())
    await engine.resume(TRACED, execution_id, ControlRequest())
    await engine.signal(TRACED, execution_id, "go", None)

    # then it completes, and keeps the request's context as it came for a node that traces
    assert await wait_status(engine, execution_id, "completed") == "completed"
    fields = await engine.store.fields(execution_id)
    assert (fields["traceparent"], fields["tracestate"]) == (TRACED.traceparent, TRACED.tracestate)


async def test_an_element_begun_on_a_draining_node_and_ended_on_its_adopter_is_one_span(
    make_engine: EngineFactory, exporter: InMemorySpanExporter
) -> None:
    # given a delay begun on node A, with node B beside it
    a = await make_engine()
    b = await make_engine()
    await b.control.subscribed.wait()
    process = definition({"key": "nap", "type": "delay", "durationMs": 300, "next": "e"}, {"key": "e", "type": "end"})
    execution_id = await _start(a, TRACED, process)
    await wait_element(a, execution_id, "nap")

    # when A drains and B adopts the execution and ends the delay
    await a.drain()
    assert await wait_status(b, execution_id, "completed") == "completed"

    # then the delay is one span, from its start on A to its end on B, under the start in the request's trace
    named = _of(list(exporter.get_finished_spans()), execution_id)
    [start] = named["start p"]
    [nap] = named["element nap"]
    assert _hex(nap)[0] == TRACE and _parent(nap) == _hex(start)[1]
    [record] = [e for e in (await b.elements(CALLER, execution_id)).items if e.key == "nap"]
    assert record.startedAt is not None and record.stoppedAt is not None
    assert nap.start_time is not None and nap.end_time is not None
    assert nap.start_time // 1_000_000 == _epoch_ms(record.startedAt)
    assert nap.end_time // 1_000_000 == _epoch_ms(record.stoppedAt)
    assert (await b.store.fields(execution_id))["owner"] == b.node_id


def _epoch_ms(at: str) -> int:
    return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)
