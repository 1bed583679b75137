"""The spans of an execution (docs/tracing.md): what each is, its parent and its attributes, in one place.

Every span of an execution has the execution's trace context (the `traceparent` its hash keeps from the start) as
its parent, so one trace holds the whole execution whichever node runs it, after adoptions and restarts:

- `start <processKey>`: the start itself, a child of the request's `traceparent` (or of the parent execution's
  context, for a child of a call-process); its context becomes the execution's.
- `element <key>`: one element's run, made when its end is durable (its `element-completed` or `element-failed`
  write) with the times that write holds, so an element that began on a node that died and ended on the node that
  adopted it is one span, made once.
- `task <handler>`: one attempt of an in-process task, live while its handler runs (the handler's own spans, log
  lines and the `http` task's `traceparent` header are under it); a failed attempt has status ERROR.
- `pause`, `resume`, `cancel`, `retry`, `signal <name>` and the other commands an actor carries out: one span each,
  linked to the request's own `traceparent` when it sent one from another trace.

Every function here takes the node's `Tracing` or None: with None (tracing off) nothing is made, and callers test
for None before calling, so that the hot path costs one comparison.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from procengine.actors.attempt import Attempt
from procengine.api.service import Caller
from procengine.engine.outcomes import ElementEvent, RunTask
from procengine.runtime.tracing import Tracing, inject, stored_context

__all__ = [
    "EXECUTION_ID",
    "attempt_span",
    "command_span",
    "element_spans",
    "execution_trace",
    "start_trace",
    "traced_attempt",
]

EXECUTION_ID: Final = "procengine.execution.id"
PROCESS_KEY: Final = "procengine.process.key"
ELEMENT_KEY: Final = "procengine.element.key"
_ENDED: Final = frozenset({"element-completed", "element-failed"})
_MS: Final = 1_000_000
"""Nanoseconds in a millisecond: span times are in ns, the engine's clock in ms."""


execution_trace = stored_context
"""The trace context an execution's hash keeps (None: none)."""


def start_trace(
    tracing: Tracing | None, caller: Caller, execution_id: int, process_key: str, version: int, now_ms: int
) -> dict[str, str] | None:
    """The trace context a new execution keeps (its hash's `traceparent`, `tracestate`): tracing off, the request's
    own (None if it sent none); on, that of a `start` span, a child of the request's."""
    if tracing is None:
        return caller.trace
    attributes = {
        EXECUTION_ID: execution_id,
        PROCESS_KEY: process_key,
        "procengine.process.version": version,
        "procengine.tenant": caller.tenant,
    }
    span = tracing.span(f"start {process_key}", caller.trace, attributes, kind=SpanKind.SERVER, start_ns=now_ms * _MS)
    try:
        return inject(trace.set_span_in_context(span))
    finally:
        span.end()


def element_spans(tracing: Tracing, fields: Mapping[str, str], execution_id: int, events: list[ElementEvent]) -> None:
    """A span for each element whose end `events` (just written) tell, with the times they hold."""
    parent = execution_trace(fields)
    if parent is None:
        return
    for event in events:
        if event.event not in _ENDED:
            continue
        attributes: dict[str, Any] = {
            EXECUTION_ID: execution_id,
            ELEMENT_KEY: event.element_key,
            "procengine.element.type": event.element_type,
            "procengine.thread.key": event.thread_key,
            "procengine.element.attempts": event.attempt,
        }
        if event.path is not None:
            attributes["procengine.lane"] = event.path
        started = event.started_at_ms if event.started_at_ms is not None else event.at_ms
        span = tracing.span(f"element {event.element_key}", parent, attributes, start_ns=started * _MS)
        if event.event == "element-failed":
            span.set_attribute("procengine.error.type", event.error_type or "")
            if event.caught:
                span.set_attribute("procengine.caught.by", event.caught)
            tracing.failed(span, event.error or "failed")
        span.end(end_time=max(event.at_ms, started) * _MS)


def attempt_span(tracing: Tracing, fields: Mapping[str, str], execution_id: int, step: RunTask) -> Span | None:
    """The span of one task attempt, not yet current (the attempt's task makes it so); None when the execution keeps
    no trace context."""
    parent = execution_trace(fields)
    if parent is None:
        return None
    entry = step.entry
    attributes: dict[str, Any] = {
        EXECUTION_ID: execution_id,
        ELEMENT_KEY: entry.element_key,
        "procengine.task.handler": step.handler,
        "procengine.task.attempt": entry.attempt,
    }
    if entry.path is not None and entry.path != entry.thread_key:
        attributes["procengine.lane"] = entry.path
    return tracing.span(f"task {step.handler}", parent, attributes)


async def traced_attempt(span: Span, attempt: Awaitable[Attempt]) -> Attempt:
    """`attempt` with `span` current (its handler's spans, log lines and outgoing requests are under it); the span
    ends with it: ERROR when the attempt failed, marked interrupted when it was cut short."""
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            result = await attempt
        except asyncio.CancelledError:
            span.set_attribute("procengine.task.interrupted", True)
            raise
        if not result.ok:
            span.set_attribute("procengine.error.type", result.error_type)
            span.set_attribute("procengine.task.retryable", result.retry)
            Tracing.failed(span, str(result.value))
        return result


@contextmanager
def command_span(
    tracing: Tracing, fields: Mapping[str, str], execution_id: int, verb: str, caller: Caller, name: str = ""
) -> Iterator[Span | None]:
    """The span of a command the actor carries out (pause, resume, cancel, a repair, a signal), current while it
    runs; an error it raises sets the span's status."""
    parent = execution_trace(fields)
    if parent is None:
        yield None
        return
    attributes: dict[str, Any] = {EXECUTION_ID: execution_id, "procengine.command": verb, "procengine.by": caller.by}
    if caller.request_id:
        attributes["procengine.request.id"] = caller.request_id
    links = [caller.trace] if caller.trace is not None else []
    span = tracing.span(f"{verb} {name}" if name else verb, parent, attributes, links=links)
    with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
        yield span
