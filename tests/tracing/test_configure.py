"""`procengine serve`'s tracer provider from the standard OTEL_* variables, and the carrier helpers task workers use."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from procengine.actors.messages import Command
from procengine.api.service import Caller
from procengine.runtime.tracing import Tracing, carrier, configure_from_env, extract, inject

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "environ",
    [
        {},  # nothing asked: the API's no-op
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_SERVICE_NAME": "shop"},  # a name alone exports nothing
    ],
)
def test_tracing_is_off_unless_an_exporter_or_endpoint_is_named(environ: dict[str, str]) -> None:
    assert configure_from_env(environ) is None


def test_an_exporter_named_makes_an_sdk_provider_named_procengine_by_default() -> None:
    provider = configure_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(provider, TracerProvider)
    try:
        assert provider.resource.attributes["service.name"] == "procengine"
    finally:
        provider.shutdown()


def test_an_exporter_no_package_provides_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    provider = configure_from_env({"OTEL_TRACES_EXPORTER": "nosuch"})
    assert isinstance(provider, TracerProvider)
    provider.shutdown()
    assert "'nosuch', which no installed package provides" in caplog.text


def test_a_carrier_is_checked_and_written_as_w3c_says() -> None:
    assert carrier(TRACEPARENT, "a=b") == {"traceparent": TRACEPARENT, "tracestate": "a=b"}
    assert carrier(TRACEPARENT) == {"traceparent": TRACEPARENT}
    assert carrier("00-xyz") is None
    assert carrier(None) is None
    assert carrier("") is None


def test_inject_writes_the_current_span_and_extract_reads_it_back() -> None:
    assert inject() == {}  # no span current
    provider = TracerProvider()
    tracing = Tracing(provider)
    span = tracing.span("work", {"traceparent": TRACEPARENT}, {})
    with trace.use_span(span, end_on_exit=True):
        headers = inject()
    context = trace.get_current_span(extract(headers)).get_span_context()
    assert f"{context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.get_span_context().span_id == context.span_id
    provider.shutdown()


def test_a_forwarded_command_carries_its_caller_s_trace_context_checked_again() -> None:
    caller = Caller(tenant="t", by="t", request_id="r", traceparent=TRACEPARENT, tracestate="a=b")
    wire = Command("pause", caller).to_wire()
    assert Command.from_wire(wire, 0).caller == caller
    wire.update(traceparent="00-bad", tracestate="a=b")
    received = Command.from_wire(wire, 0).caller
    assert (received.traceparent, received.tracestate, received.trace) == (None, None, None)
