"""An element's record, built from its event: a pure element's end (the commonest record, one per element of a
pure run) is built by a path of its own, which must give the same map, in the same order, as the general one."""

from __future__ import annotations

import itertools
from typing import Any

from procengine.actors.records import element_record
from procengine.engine.outcomes import ElementEvent
from procengine.runtime.clock import iso


def _general(event: ElementEvent) -> dict[str, Any]:
    """The record as every event's was built before the pure path (records.py at 93bff92)."""
    record: dict[str, Any] = {
        "key": event.element_key,
        "type": event.element_type,
        "threadKey": event.thread_key,
        "path": event.path,
        "attempts": event.attempt,
        "startedAt": None if event.started_at_ms is None else iso(event.started_at_ms),
    }
    record.update(status="completed", stoppedAt=iso(event.at_ms), output=event.output)
    return {name: value for name, value in record.items() if value is not None}


def test_a_pure_elements_end_is_recorded_as_by_the_general_path() -> None:
    kinds = ["set-variable", "if-condition", "switch", "delay", "wait-signal", "end", "parallel", "call-process"]
    paths = [None, "main/fan[0]"]
    starts = [None, 1_700_000_000_000]
    outputs = [None, {"result": True, "next": "b"}, 0, "", False]
    for kind, path, started, output in itertools.product(kinds, paths, starts, outputs):
        at = 1_700_000_000_123
        event = ElementEvent(
            "element-completed", "a", kind, "main", 2, at, output=output, started_at_ms=started, path=path
        )
        built = element_record(event)
        expected = _general(event)
        assert built == expected
        assert list(built) == list(expected)  # the same order: the same stored bytes
