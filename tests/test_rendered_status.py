"""The status answer's first rendering is built without validating a model (issue 21: at 50,000 executions nearly
every read is a first one); it must be, byte for byte, what the model renders, for every status the engine
writes, and a document of other types must still go through the model (coerced or refused as before)."""

from __future__ import annotations

import copy
import os
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from procengine.api import rendered as rendered_module
from procengine.api.rendered import RenderedStatus
from procengine.api.views import ExecutionStatusView
from procengine.depth import RENDER_DEPTH
from procengine.runtime.clock import parse_iso

NOW: Final = parse_iso("2026-12-07T12:00:05.250Z")


def _model_bytes(doc: dict[str, Any], now_ms: int) -> bytes:
    """The answer as the model renders it (how RenderedStatus.of rendered every status before issue 21)."""
    timing = doc["timing"]
    started = parse_iso(timing["startedAt"])
    end = parse_iso(timing["stoppedAt"]) if timing["stoppedAt"] else now_ms
    paused = int(timing.get("pausedDurationMs") or 0)
    if timing.get("pausedAt") and not timing["stoppedAt"]:
        paused += max(now_ms - parse_iso(timing["pausedAt"]), 0)
    counters = {"durationMs": max(end - started, 0), "pausedDurationMs": paused}
    view = ExecutionStatusView.model_validate({**doc, "timing": {**timing, **counters}})
    return view.model_dump_json().encode()


def _doc(**changes: Any) -> dict[str, Any]:
    """A status document as node/queries.py `status_doc` writes it (+ blockedOn), with changes."""
    doc: dict[str, Any] = {
        "executionID": 41,
        "processID": 3,
        "processKey": "order",
        "processVersion": 2,
        "status": "running",
        "isActive": True,
        "progress": {"totalNodes": 9, "completedNodes": 3, "failedNodes": 0, "percentage": 33.33},
        "timing": {
            "startedAt": "2026-12-07T12:00:00.000Z",
            "stoppedAt": None,
            "pausedAt": None,
            "pausedDurationMs": 0,
        },
        "threads": [
            {
                "threadExecutionID": 1,
                "processThreadID": 1,
                "threadKey": "main",
                "status": "running",
                "completedNodes": 3,
                "totalNodes": 9,
            }
        ],
        "error": None,
        "parentExecutionID": None,
        "children": [],
        "blockedOn": [
            {
                "lane": "main",
                "elementKey": "wait-paid",
                "kind": "signal",
                "since": "2026-12-07T12:00:01.000Z",
                "until": None,
                "detail": {"signal": "paid", "buffered": 0, "timeoutAt": None},
            }
        ],
    }
    for name, value in changes.items():
        doc[name] = value
    return doc


def _threads(count: int, status: str = "running") -> list[dict[str, Any]]:
    return [
        {
            "threadExecutionID": 100 + i,
            "processThreadID": i + 1,
            "threadKey": f"branch-{i}",
            "status": status if i % 3 else "completed",
            "completedNodes": i * 7,
            "totalNodes": 1_000 + i,
        }
        for i in range(count)
    ]


_DEEP: Any = "bottom"
for _ in range(RENDER_DEPTH + 5):
    _DEEP = {"in": _DEEP}

STATUSES: Final = {
    "running, waiting for a signal": _doc(),
    "paused, with the waits under it": _doc(
        status="paused",
        timing={
            "startedAt": "2026-12-07T12:00:00.000Z",
            "stoppedAt": None,
            "pausedAt": "2026-12-07T12:00:02.000Z",
            "pausedDurationMs": 1_234,
        },
        threads=_threads(1, "paused"),
        blockedOn=[
            {
                "lane": "main/ship[3]",
                "elementKey": "ship",
                "kind": "paused",
                "since": "2026-12-07T12:00:02.000Z",
                "until": None,
                "detail": {
                    "by": "ops@example.com",
                    "reason": 'a "quoted" reason\nover two lines, é ü 中文 🚀 \u0001\u007f',
                    "waiting": {"kind": "delay", "dueAt": "2026-12-07T13:00:00.000Z", "remainingMs": 3_595_000},
                },
            }
        ],
    ),
    "failed with an error": _doc(
        status="failed",
        isActive=False,
        progress={"totalNodes": 9, "completedNodes": 4, "failedNodes": 1, "percentage": 44.44},
        timing={
            "startedAt": "2026-12-07T12:00:00.000Z",
            "stoppedAt": "2026-12-07T12:00:03.500Z",
            "pausedAt": None,
            "pausedDurationMs": 10,
        },
        error={
            "message": 'handler charge: 402 "payment required" \\ </script>',
            "type": "TaskFailed",
            "elementKey": "charge",
            "attempts": 3,
            "ratio": 0.1 + 0.2,
            "huge": 2**70,
            "small": 1e-300,
            "big": 1.5e300,
            "nested": [{"a": [1, 2.5, None, True, False, ""]}, [], {}],
        },
        blockedOn=[],
    ),
    "failed, an error nested deeper than shown": _doc(
        status="failed", isActive=False, error={"cause": _DEEP}, blockedOn=[]
    ),
    "completed": _doc(
        status="completed",
        isActive=False,
        progress={"totalNodes": 9, "completedNodes": 9, "failedNodes": 0, "percentage": 100.0},
        timing={
            "startedAt": "2026-12-07T12:00:00.000Z",
            "stoppedAt": "2026-12-07T12:00:09.000Z",
            "pausedAt": None,
            "pausedDurationMs": 0,
        },
        blockedOn=[],
    ),
    "cancelled while paused": _doc(
        status="cancelled",
        isActive=False,
        timing={
            "startedAt": "2026-12-07T12:00:00.000Z",
            "stoppedAt": "2026-12-07T12:00:04.000Z",
            "pausedAt": "2026-12-07T12:00:02.000Z",
            "pausedDurationMs": 5,
        },
        blockedOn=[],
    ),
    "fan-out: many threads, children, a parent, every kind of wait": _doc(
        progress={"totalNodes": 40_000, "completedNodes": 12_345, "failedNodes": 17, "percentage": 30.86},
        threads=_threads(25),
        parentExecutionID=7,
        children=[42, 43, 44, 9_007_199_254_740_993],
        blockedOn=[
            {
                "lane": f"main/each[{i}]",
                "elementKey": kind,
                "kind": kind,
                "since": None if i % 2 else "2026-12-07T12:00:01.000Z",
                "until": "2026-12-07T12:01:00.000Z" if i % 2 else None,
                "detail": detail,
            }
            for i, (kind, detail) in enumerate(
                [
                    ("signal", {"signal": "go", "buffered": 2, "timeoutAt": "2026-12-07T12:01:00.000Z"}),
                    ("delay", {"dueAt": "2026-12-07T12:01:00.000Z"}),
                    ("backoff", {"attempt": 2, "retryAt": None, "lastError": "boom", "lastErrorType": "E"}),
                    ("task", {"attempt": 1, "node": "node-a", "handler": "charge", "timeoutAt": None}),
                    ("child", {"childExecutionID": 42, "childStatus": "running"}),
                    ("held-failed", {"error": "x", "type": None, "attempts": 3}),
                    (
                        "owner-dead",
                        {"owner": "node-b", "lastCheckpointAt": None, "waiting": {"kind": "signal", "signal": "go"}},
                    ),
                ]
            )
        ],
    ),
    "no threads, nothing blocked, written before blockedOn and children existed": {
        key: value
        for key, value in _doc(threads=[], progress={**_doc()["progress"], "totalNodes": 0, "percentage": 0.0}).items()
        if key not in ("blockedOn", "children", "parentExecutionID", "error")
    },
}


@pytest.mark.parametrize("name", list(STATUSES))
def test_the_rendering_is_the_models_byte_for_byte(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = STATUSES[name]
    before = copy.deepcopy(doc)
    expected = {now: _model_bytes(doc, now) for now in (NOW, NOW + 61_000)}
    # and without the model: what the engine writes is rendered directly (the point of it)
    monkeypatch.setattr(rendered_module, "ExecutionStatusView", None)
    rendered = RenderedStatus.of(doc)
    for now, answer in expected.items():
        assert rendered.json(now) == answer
    assert doc == before, "rendering must not change the document it is given"


@pytest.mark.parametrize(
    "change",
    [
        {"executionID": "41"},  # a number as a string: the model coerced it
        {"isActive": 1},
        {"progress": {"totalNodes": 9, "completedNodes": 3, "failedNodes": 0, "percentage": 50}},  # an int: 50.0
        {"threads": [{**_threads(1)[0], "completedNodes": "3"}]},
        {"children": [True]},
    ],
)
def test_a_document_of_other_types_is_coerced_by_the_model_as_before(change: dict[str, Any]) -> None:
    doc = _doc(**change)
    assert RenderedStatus.of(doc).json(NOW) == _model_bytes(doc, NOW)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "sleeping"},
        {"error": ["not", "a", "map"]},
        {"blockedOn": [{**_doc()["blockedOn"][0], "kind": "napping"}]},
        {"processKey": 5},
    ],
)
def test_a_document_the_model_refuses_is_still_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RenderedStatus.of(_doc(**change))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


@pytest.mark.fuzz
@settings(
    max_examples=500 if os.environ.get("FUZZ_LONG") == "1" else 60,
    deadline=None,
    database=None,
    derandomize=os.environ.get("FUZZ_LONG") != "1",
)
@given(
    error=st.none() | st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5),
    detail=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5),
    key=st.text(max_size=16),
    lane=st.text(max_size=16),
)
def test_any_stored_values_render_as_the_model_renders_them(
    error: dict[str, Any] | None, detail: dict[str, Any], key: str, lane: str
) -> None:
    entry = {**_doc()["blockedOn"][0], "lane": lane, "detail": detail}
    doc = _doc(processKey=key, error=error, blockedOn=[entry])
    try:
        expected = _model_bytes(doc, NOW)
    except (ValidationError, ValueError) as exc:  # what the model cannot render (a lone surrogate, say)
        with pytest.raises(type(exc)):
            RenderedStatus.of(doc).json(NOW)
        return
    assert RenderedStatus.of(doc).json(NOW) == expected
