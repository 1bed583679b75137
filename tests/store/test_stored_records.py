"""Element and thread records are stored with short names, times as epoch ms, and without what their hash field
says, log details with their frequent top-level names short; every reader gets the documented map back, from them
and from what versions before wrote."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import procengine
from procengine.store.codec import decode, encode
from procengine.store.stored_records import (
    DETAIL_NAMES,
    detail_doc,
    element_doc,
    stored_detail,
    stored_element,
    stored_thread,
    thread_doc,
)

COMPLETED = {
    "key": "init",
    "type": "set-variable",
    "threadKey": "main",
    "attempts": 1,
    "startedAt": "2026-12-07T18:32:05.225Z",
    "status": "completed",
    "stoppedAt": "2026-12-07T18:32:05.226Z",
}
RETRYING = {
    "key": "pack",
    "type": "task",
    "threadKey": "main",
    "path": "main/ship[3]",
    "attempts": 2,
    "startedAt": "2026-12-07T18:32:05.225Z",
    "status": "retrying",
    "error": "boom",
    "errorType": "TaskFailed",
    "retryAt": "2026-12-07T18:32:06.000Z",
    "input": {"n": 1},
    "attemptHistory": [{"attempt": 1, "status": "failed", "startedAt": "2026-12-07T18:32:05.225Z"}],
    "held": True,
}
THREAD = {
    "threadExecutionID": 20,
    "processThreadID": 1,
    "threadKey": "main",
    "totalNodes": 3,
    "completedNodes": 1,
    "failedNodes": 0,
    "status": "running",
}


def _through_redis(value: Any) -> Any:
    return decode(encode(value))


def test_an_element_record_comes_back_as_it_was_built() -> None:
    for field, record in (("init", COMPLETED), ("main/ship[3]/pack", RETRYING)):
        stored = _through_redis(stored_element(field, record))
        assert element_doc(field, stored) == record


def test_what_the_field_says_and_iso_text_are_not_stored() -> None:
    stored = stored_element("init", COMPLETED)
    assert stored == {"t": "set-variable", "h": "main", "s": 1796668325225, "st": "completed", "e": 1796668325226}
    assert len(encode(stored)) < len(encode(COMPLETED)) / 2
    # a time that is not in the engine's own format is kept as it is
    odd = {**COMPLETED, "startedAt": "yesterday"}
    assert element_doc("init", stored_element("init", odd)) == odd


def test_a_thread_record_comes_back_as_it_was_built() -> None:
    stored = _through_redis(stored_thread("main", THREAD))
    assert stored == {"i": 20, "p": 1, "n": 3, "c": 1, "st": "running"}
    assert thread_doc("main", stored) == THREAD
    failed = {**THREAD, "failedNodes": 2, "status": "failed"}
    assert thread_doc("main", stored_thread("main", failed)) == failed


def test_records_written_before_are_read_as_they_are() -> None:
    assert element_doc("init", _through_redis(COMPLETED)) == COMPLETED
    assert thread_doc("main", _through_redis(THREAD)) == THREAD
    assert element_doc("init", "garbage") == "garbage" and thread_doc("main", [1]) == [1]


def test_a_log_detail_keeps_its_names_over_the_api_and_is_stored_short() -> None:
    detail = {
        "from": "running",
        "to": "paused",
        "by": "tenant-a",
        "reason": "maintenance",
        "requestId": "fcb35565725b-29",
        "inflight": 0,
        "variables": {"f": 1, "from": 2},  # values are stored as they are, whatever their names
    }
    stored = stored_detail(detail)
    assert stored == {"f": "running", "t": "paused", "b": "tenant-a", "r": "maintenance", "q": "fcb35565725b-29",
                      "n": 0, "variables": {"f": 1, "from": 2}}  # fmt: skip
    assert detail_doc(_through_redis(stored)) == detail
    assert detail_doc(_through_redis(detail)) == detail  # written before: read as it is
    assert detail_doc("garbage") == "garbage"


def test_no_short_detail_name_is_a_name_the_engine_writes() -> None:
    assert not set(DETAIL_NAMES.values()) & set(DETAIL_NAMES)
    assert len(set(DETAIL_NAMES.values())) == len(DETAIL_NAMES)
    written = set()
    for source in Path(procengine.__file__).parent.rglob("*.py"):
        written |= set(re.findall(r'detail\["(\w+)"\]', source.read_text()))
        written |= set(re.findall(r"detail\.update\((\w+)=", source.read_text()))
    assert written and not written & set(DETAIL_NAMES.values()), written & set(DETAIL_NAMES.values())
