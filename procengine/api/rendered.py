"""A status answer rendered to JSON once per write and completed at each read (the hot read of the API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procengine.api.views import ExecutionStatusView
from procengine.runtime.clock import parse_iso

__all__ = ["RenderedStatus"]


@dataclass(frozen=True, slots=True)
class RenderedStatus:
    """A status answer rendered to JSON once per write: only `durationMs` and, while paused, `pausedDurationMs`
    change with the clock, so they are kept apart and put in at each read (a read then costs a byte join instead
    of a model and its JSON)."""

    started_ms: int
    stopped_ms: int | None
    paused_ms: int
    """The pauses that have ended (`pausedDurationMs` as written)."""
    paused_at_ms: int | None
    """When the pause under way began (None: not paused): it counts up to the read."""
    head: bytes
    middle: bytes
    tail: bytes

    @classmethod
    def of(cls, doc: dict[str, Any]) -> RenderedStatus:
        timing = doc["timing"]
        placeholders = {"durationMs": _DURATION, "pausedDurationMs": _PAUSED}
        view = ExecutionStatusView.model_validate({**doc, "timing": {**timing, **placeholders}})
        # the first occurrences are timing's: fields render in order, and a quote inside a string is escaped
        head, found, rest = view.model_dump_json().encode().partition(b'"durationMs":%d' % _DURATION)
        middle, found_paused, tail = rest.partition(b'"pausedDurationMs":%d' % _PAUSED)
        assert found and found_paused, "durationMs and pausedDurationMs must render as plain numbers, in this order"
        stopped, paused_at = timing["stoppedAt"], timing.get("pausedAt")
        return cls(
            parse_iso(timing["startedAt"]),
            parse_iso(stopped) if stopped else None,
            int(timing.get("pausedDurationMs") or 0),
            parse_iso(paused_at) if paused_at and not stopped else None,
            head,
            middle,
            tail,
        )

    def json(self, now_ms: int) -> bytes:
        end = self.stopped_ms if self.stopped_ms is not None else now_ms
        paused = self.paused_ms + (max(now_ms - self.paused_at_ms, 0) if self.paused_at_ms is not None else 0)
        return b'%s"durationMs":%d%s"pausedDurationMs":%d%s' % (
            self.head,
            max(end - self.started_ms, 0),
            self.middle,
            paused,
            self.tail,
        )


_DURATION = -7_777_777
_PAUSED = -7_777_778
