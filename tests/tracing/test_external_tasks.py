"""A task handed to a worker outside the engine carries the trace context of its attempt's span (`traceContext`), so
the worker's spans join the execution's trace."""

from __future__ import annotations

from dataclasses import replace

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from procengine.api.task_views import FetchRequest, TaskCompleteRequest
from procengine.api.views import StartRequest
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, wait_status
from tests.support.processes import definition

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACED = replace(CALLER, traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
PAYING = definition(
    {"key": "pay", "type": "task", "handler": "charge-card", "queue": "payments", "next": "done"},
    {"key": "done", "type": "end"},
    key="pay",
)
FETCH = FetchRequest.model_validate({"queues": ["payments"], "workerId": "w1", "waitMs": 5000})


async def _fetched_trace(engine: Node) -> tuple[int, dict[str, str]]:
    summary, _ = await engine.register_process(TRACED, PAYING)
    started, _ = await engine.start_execution(TRACED, StartRequest(processID=summary.processID))
    [task] = (await engine.fetch_tasks(CALLER, FETCH)).tasks
    await engine.complete_task(CALLER, task.taskId, TaskCompleteRequest(lockToken=task.lockToken, output=None))
    assert await wait_status(engine, started.executionID, "completed") == "completed"
    return started.executionID, task.traceContext


async def test_a_fetched_task_carries_its_attempts_span_context(engine: Node, exporter: InMemorySpanExporter) -> None:
    # given an execution started by a traced request, whose task waits for a worker
    # when a worker fetches the task and completes it
    _, carried = await _fetched_trace(engine)
    # then the task carried the context of the attempt's span: the request's trace, the span of the task
    [attempt] = [span for span in exporter.get_finished_spans() if span.name == "task charge-card"]
    context = attempt.get_span_context()
    assert context is not None
    assert carried == {"traceparent": f"00-{TRACE}-{context.span_id:016x}-01"}


async def test_with_tracing_off_a_fetched_task_carries_no_context(make_engine: EngineFactory) -> None:
    # given a node that does not trace, and a start that sent a traceparent
    engine = await make_engine(traced=False)
    # when a worker fetches its task
    _, carried = await _fetched_trace(engine)
    # then there is no span to hand on
    assert carried == {}
