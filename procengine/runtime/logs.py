"""Structured logs: one JSON object a line (or readable text), every line carrying the executionID and
element key where there is one.

The actor sets `execution_id` in its task's context and each thread runner sets `element_key` before an
element runs; child tasks inherit both (contextvars), so a handler's own log lines carry them too.
A call may also pass them explicitly: `log.info(..., extra={"executionID": 7})`.

When a span is current (tracing on: a task attempt's handler, a command the actor carries out; runtime/tracing.py)
a line carries its `trace_id` and `span_id` too, as OpenTelemetry's log correlation names them.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from procengine.runtime.tracing import current_ids

execution_id: ContextVar[int | None] = ContextVar("procengine_execution_id", default=None)
element_key: ContextVar[str | None] = ContextVar("procengine_element_key", default=None)

LogFormat = Literal["json", "text"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    execution = getattr(record, "executionID", None) or execution_id.get()
    element = getattr(record, "elementKey", None) or element_key.get()
    if execution is not None:
        fields["executionID"] = execution
    if element is not None:
        fields["elementKey"] = element
    ids = current_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in entry and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={value}" for name, value in _context(record).items())
        record.context = f" [{context}]" if context else ""
        return super().format(record)


def configure(level: str, fmt: LogFormat) -> None:
    """Send every procengine (and library) log line to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
