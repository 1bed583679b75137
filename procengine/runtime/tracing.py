"""OpenTelemetry traces: the W3C trace context an execution keeps, and the spans a node emits when tracing is on.

An execution's trace context (`traceparent`, `tracestate`) is a carrier dict of W3C header values, stored in its
hash from the start on, so that every node that runs it later (after an adoption, a restart) puts its spans in the
same trace. Tracing is on for a node when it was given a tracer provider (`procengine serve` makes one from the
standard OTEL_* variables when the SDK is installed: `configure_from_env`); off, the node makes no span objects at
all (`Tracing` is None where it is held), and a start only keeps the `traceparent` a request sent.

Only the OpenTelemetry API is imported here; the SDK is imported by `configure_from_env` alone, when asked.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "Tracing",
    "carrier",
    "configure_from_env",
    "current_ids",
    "extract",
    "inject",
    "stored_context",
]

log = logging.getLogger(__name__)

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
"""The W3C header names, which are also the execution hash's fields (docs/redis-keys.md)."""

_PROPAGATOR: Final = TraceContextTextMapPropagator()


def extract(carrier: Mapping[str, str] | None) -> Context:
    """The OpenTelemetry context of a carrier of W3C headers (`traceparent`, `tracestate`); an empty context when it
    has none, or one that is malformed (ignored, as W3C Trace Context says a receiver must)."""
    if not carrier or TRACEPARENT not in carrier:
        return Context()
    return _extracted(carrier[TRACEPARENT], carrier.get(TRACESTATE, ""))


@functools.lru_cache(maxsize=1024)
def _extracted(traceparent: str, tracestate: str) -> Context:
    """Parsed once per value: every element span of an execution has the same parent."""
    headers = {TRACEPARENT: traceparent, TRACESTATE: tracestate} if tracestate else {TRACEPARENT: traceparent}
    context = _PROPAGATOR.extract(headers)
    return context if trace.get_current_span(context).get_span_context().is_valid else Context()


def inject(context: Context | None = None) -> dict[str, str]:
    """The W3C headers (`traceparent`, and `tracestate` when there is one) of `context`, by default the current one
    (a task attempt's span while a handler runs); empty when it holds no valid span context."""
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers, context=context)
    return headers


def carrier(traceparent: str | None, tracestate: str | None = None) -> dict[str, str] | None:
    """A request's or a stored execution's trace headers, checked: None when `traceparent` is missing or malformed
    (a bad `tracestate` alone is dropped), else the headers as W3C writes them."""
    if not traceparent:
        return None
    found = inject(extract({TRACEPARENT: traceparent, TRACESTATE: tracestate or ""}))
    return found or None


def stored_context(fields: Mapping[str, str]) -> dict[str, str] | None:
    """The trace context an execution's hash keeps (its `traceparent`, `tracestate` fields, written by its start),
    as W3C headers: what a task handed to a worker outside the engine carries (`traceContext`); None when it keeps
    none (started with tracing off and no `traceparent`)."""
    parent = fields.get(TRACEPARENT)
    if not parent:
        return None
    state = fields.get(TRACESTATE)
    return {TRACEPARENT: parent, TRACESTATE: state} if state else {TRACEPARENT: parent}


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None when there is none."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


class Tracing:
    """A node's tracer. Made only when tracing is on: where tracing is off, code holds None and makes no span."""

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer: Tracer = provider.get_tracer("procengine", _version())

    def span(
        self,
        name: str,
        parent: Mapping[str, str] | None,
        attributes: Mapping[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        start_ns: int | None = None,
        links: Sequence[Mapping[str, str]] = (),
    ) -> Span:
        """A span (to be ended by the caller) whose parent is the context of the carrier `parent` (a new trace when
        it has none), linked to the contexts of `links` that are valid and of another trace."""
        context = extract(parent)
        linked = []
        parent_trace = trace.get_current_span(context).get_span_context().trace_id if links else 0
        for link in links:
            span_context = trace.get_current_span(extract(link)).get_span_context()
            if span_context.is_valid and span_context.trace_id != parent_trace:
                linked.append(Link(span_context))
        return self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=linked, start_time=start_ns
        )

    @staticmethod
    def failed(span: Span, description: str) -> None:
        span.set_status(Status(StatusCode.ERROR, description))


def _version() -> str:
    try:
        return metadata.version("procengine")
    except metadata.PackageNotFoundError:
        return "0"


def configure_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """The tracer provider `procengine serve` uses: None (tracing off, the API's no-op) unless the SDK is installed
    (`pip install procengine[otel]`) and OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT (or
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set and OTEL_SDK_DISABLED is not true. The exporter is the one
    OTEL_TRACES_EXPORTER names (default `otlp`; `console`, `otlp_proto_http`, `none` ...: the SDK's entry points),
    configured, like the resource (OTEL_SERVICE_NAME, default `procengine`; OTEL_RESOURCE_ATTRIBUTES) and the
    sampler (OTEL_TRACES_SAMPLER), by the SDK from the standard variables; spans go out in batches
    (OTEL_BSP_*)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not names and not endpoint:
        return None
    names = names or ["otlp"]
    if names == ["none"]:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* is set but the OpenTelemetry SDK is not installed (pip install 'procengine[otel]')")
        return None
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attributes = {} if named else {"service.name": "procengine"}
    provider = SdkTracerProvider(resource=Resource.create(attributes))
    for name in names:
        if name == "none":
            continue
        found = metadata.entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("OTEL_TRACES_EXPORTER names %r, which no installed package provides: not exported", name)
            continue
        exporter = next(iter(found)).load()()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
