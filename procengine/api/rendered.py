"""A status answer rendered to JSON once per write and completed at each read (the hot read of the API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, get_args

from pydantic_core import to_json

from procengine.api.views import BlockedKind, ExecutionStatusView, StatusName
from procengine.depth import clipped
from procengine.runtime.clock import parse_iso

__all__ = ["DURATION", "PAUSED", "RenderedStatus"]


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
        body = _plain_json(doc)
        if body is None:  # not the plain types status_doc writes: the model validates it (and says what is wrong)
            placeholders = {"durationMs": DURATION, "pausedDurationMs": PAUSED}
            view = ExecutionStatusView.model_validate({**doc, "timing": {**timing, **placeholders}})
            body = view.model_dump_json().encode()
        return cls.of_body(
            body,
            timing["startedAt"],
            timing["stoppedAt"],
            int(timing.get("pausedDurationMs") or 0),
            timing.get("pausedAt"),
        )

    @classmethod
    def of_body(
        cls, body: bytes, started_at: str, stopped_at: str | None, paused_ms: int, paused_at: str | None
    ) -> RenderedStatus:
        """From the answer rendered with DURATION and PAUSED in place of timing's two counters."""
        # the first occurrences are timing's: fields render in order, and a quote inside a string is escaped
        head, found, rest = body.partition(b'"durationMs":%d' % DURATION)
        middle, found_paused, tail = rest.partition(b'"pausedDurationMs":%d' % PAUSED)
        assert found and found_paused, "durationMs and pausedDurationMs must render as plain numbers, in this order"
        return cls(
            parse_iso(started_at),
            parse_iso(stopped_at) if stopped_at else None,
            paused_ms,
            parse_iso(paused_at) if paused_at and not stopped_at else None,
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


DURATION: Final = -7_777_777
"""What `durationMs` renders as in a body given to `RenderedStatus.of_body` (put in at each read)."""
PAUSED: Final = -7_777_778
"""Likewise `pausedDurationMs`."""

_STATUSES: Final = frozenset(get_args(StatusName))
_KINDS: Final = frozenset(get_args(BlockedKind))


def _plain_json(doc: dict[str, Any]) -> bytes | None:
    """What `ExecutionStatusView.model_validate(doc).model_dump_json()` gives (the timing's two counters as the
    placeholders), built without the model: a dict in the model's field order, rendered by pydantic's own
    serializer. The model's validation costs most of a first rendering, and at 50,000 executions nearly every read
    is one (issue 21). None when a value is not of the exact type the model would take as it is (a number as a
    string, a bool for an int, a key missing): the model then coerces it, or refuses it, as it always did."""
    try:
        progress, timing = doc["progress"], doc["timing"]
        plain = {
            "executionID": doc["executionID"],
            "processID": doc["processID"],
            "processKey": doc["processKey"],
            "processVersion": doc["processVersion"],
            "status": doc["status"],
            "isActive": doc["isActive"],
            "progress": {
                "totalNodes": progress["totalNodes"],
                "completedNodes": progress["completedNodes"],
                "failedNodes": progress["failedNodes"],
                "percentage": progress["percentage"],
            },
            "timing": {
                "startedAt": timing["startedAt"],
                "stoppedAt": timing["stoppedAt"],
                "durationMs": DURATION,
                "pausedAt": timing.get("pausedAt"),
                "pausedDurationMs": PAUSED,
            },
            "threads": [
                {
                    "threadExecutionID": t["threadExecutionID"],
                    "processThreadID": t["processThreadID"],
                    "threadKey": t["threadKey"],
                    "status": t["status"],
                    "completedNodes": t["completedNodes"],
                    "totalNodes": t["totalNodes"],
                }
                for t in doc["threads"]
            ],
            "error": _shown(doc["error"]) if doc.get("error") is not None else None,
            "parentExecutionID": doc.get("parentExecutionID"),
            "children": doc.get("children", []),
            "attributes": doc.get("attributes", {}),
            "blockedOn": [
                {
                    "lane": b["lane"],
                    "elementKey": b["elementKey"],
                    "kind": b["kind"],
                    "since": b["since"],
                    "until": b.get("until"),
                    "detail": _shown(b.get("detail", {})),
                }
                for b in doc.get("blockedOn", ())
            ],
        }
    except (KeyError, TypeError, AttributeError):  # a value the model would coerce or refuse
        return None
    if not _typed(plain):
        return None
    return to_json(plain, inf_nan_mode="null")  # the model's ser_json_inf_nan


def _typed(plain: dict[str, Any]) -> bool:
    """Every value of the exact type the model takes as it is (its validation would change none of them)."""
    progress, timing = plain["progress"], plain["timing"]
    parent = plain["parentExecutionID"]
    return (
        type(plain["executionID"]) is int
        and type(plain["processID"]) is int
        and type(plain["processKey"]) is str
        and type(plain["processVersion"]) is int
        and plain["status"] in _STATUSES
        and type(plain["status"]) is str
        and type(plain["isActive"]) is bool
        and type(progress["totalNodes"]) is int
        and type(progress["completedNodes"]) is int
        and type(progress["failedNodes"]) is int
        and type(progress["percentage"]) is float  # an int renders as 50.0 through the model
        and type(timing["startedAt"]) is str
        and (timing["stoppedAt"] is None or type(timing["stoppedAt"]) is str)
        and (timing["pausedAt"] is None or type(timing["pausedAt"]) is str)
        and (parent is None or type(parent) is int)
        and type(plain["children"]) is list
        and type(plain["attributes"]) is dict
        and all(type(child) is int for child in plain["children"])
        and all(
            type(t["threadExecutionID"]) is int
            and type(t["processThreadID"]) is int
            and type(t["threadKey"]) is str
            and type(t["status"]) is str
            and type(t["completedNodes"]) is int
            and type(t["totalNodes"]) is int
            for t in plain["threads"]
        )
        and all(
            type(b["lane"]) is str
            and type(b["elementKey"]) is str
            and b["kind"] in _KINDS
            and type(b["kind"]) is str
            and (b["since"] is None or type(b["since"]) is str)
            and (b["until"] is None or type(b["until"]) is str)
            for b in plain["blockedOn"]
        )
    )


_SCALARS: Final = (str, int, float, bool, type(None))


def _shown(value: Any) -> dict[str, Any]:
    """A stored map as the model shows it (`views.Shown`: cut below depth.RENDER_DEPTH)."""
    if type(value) is not dict or not all(type(key) is str for key in value):
        raise TypeError("a map the model would coerce or refuse")
    if all(type(item) in _SCALARS for item in value.values()):
        return value  # one level deep: nothing to cut
    shown: dict[str, Any] = clipped(value)
    return shown
