"""With tracing on, a worker runs each handler in a span under the attempt's (the task's `traceContext`), so the
handler's work joins the execution's trace; a handler's exception marks it failed."""

from __future__ import annotations

from typing import Any, cast

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from procengine.api.task_views import FetchedTask
from procengine.client import AsyncClient
from procengine.tasks import HandlerRegistry, TaskContext
from procengine.worker import Worker

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ATTEMPT_SPAN = "00f067aa0ba902b7"


class _Settled:
    """Stands in for the client: what the worker completed and failed."""

    def __init__(self) -> None:
        self.completed: list[Any] = []
        self.failed: list[str] = []

    async def complete_task(self, task_id: str, lock_token: str, output: Any = None) -> None:
        self.completed.append(output)

    async def fail_task(self, task_id: str, lock_token: str, error: str, **_: Any) -> None:
        self.failed.append(error)


def _task(amount: int) -> FetchedTask:
    return FetchedTask(
        taskId="7.3.1", lockToken="t", queue="payments", handler="charge", executionId=7, elementKey="pay",
        attempt=1, input={"amount": amount}, idempotencyKey="7:pay:3:1",
        traceContext={"traceparent": f"00-{TRACE}-{ATTEMPT_SPAN}-01"}, lockExpiresAt="2026-12-08T00:00:00Z",
    )  # fmt: skip


@pytest.mark.parametrize("amount", [5, -1], ids=["completed", "failed"])
async def test_a_handler_runs_in_a_span_under_the_attempts(amount: int) -> None:
    # given a worker tracing to an in-memory exporter, and a handler that refuses a negative amount
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handlers = HandlerRegistry()

    @handlers.task("charge")
    async def charge(data: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if data["amount"] < 0:
            raise ValueError("negative")
        return {"charged": data["amount"]}

    settled = _Settled()
    worker = Worker(cast(AsyncClient, settled), ["payments"], handlers, tracer=provider.get_tracer("test"))
    # when it serves a task whose attempt's span context it was handed
    await worker._run_task(_task(amount))
    # then the handler ran in one span, a child of the attempt's, in the execution's trace
    [span] = exporter.get_finished_spans()
    assert span.name == "work charge" and span.kind is SpanKind.CONSUMER
    assert span.parent is not None and f"{span.parent.span_id:016x}" == ATTEMPT_SPAN
    assert span.context is not None and f"{span.context.trace_id:032x}" == TRACE
    assert span.attributes is not None and span.attributes["procengine.execution.id"] == 7
    if amount < 0:
        assert span.status.status_code is StatusCode.ERROR and settled.failed == ["negative"]
    else:
        assert span.status.status_code is StatusCode.UNSET and settled.completed == [{"charged": 5}]
