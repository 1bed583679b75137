"""A status answer rendered to JSON once per write and completed at each read (the hot read of the API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procengine.api.views import ExecutionStatusView
from procengine.runtime.clock import parse_iso

__all__ = ["RenderedStatus"]


@dataclass(frozen=True, slots=True)
class RenderedStatus:
    """A status answer rendered to JSON once per write: only `durationMs` changes with the clock, so it is
    kept apart and put in at each read (a read then costs a byte join instead of a model and its JSON)."""

    started_ms: int
    stopped_ms: int | None
    head: bytes
    tail: bytes

    @classmethod
    def of(cls, doc: dict[str, Any]) -> RenderedStatus:
        timing = doc["timing"]
        view = ExecutionStatusView.model_validate({**doc, "timing": {**timing, "durationMs": _PLACEHOLDER}})
        # the first occurrence is timing's: fields render in order, and a quote inside a string is escaped
        head, found, tail = view.model_dump_json().encode().partition(b'"durationMs":%d' % _PLACEHOLDER)
        assert found, "durationMs must render as a plain number"
        stopped = timing["stoppedAt"]
        return cls(parse_iso(timing["startedAt"]), parse_iso(stopped) if stopped else None, head, tail)

    def json(self, now_ms: int) -> bytes:
        end = self.stopped_ms if self.stopped_ms is not None else now_ms
        return b'%s"durationMs":%d%s' % (self.head, max(end - self.started_ms, 0), self.tail)


_PLACEHOLDER = -7_777_777
