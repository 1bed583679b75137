"""Element and thread records as stored, and as every reader sees them (issue 21: a paused execution's bytes).

A record is built and read as a map with the documented names (`actors/records.py`, `ThreadProgress.to_doc`);
what is stored names its fields in one or two letters, keeps times as epoch milliseconds rather than ISO-8601
text, and leaves out what its hash field already says:

- an element record: `key` (the field is the key, or `<lane>/<key>`), `attempts` when 1; `startedAt`,
  `stoppedAt` and `retryAt` as epoch ms;
- a thread record: `threadKey` (the field), `failedNodes` when 0.

`element_doc` and `thread_doc` give the documented map back, from this or from what versions before wrote (the
documented map itself, told apart by `status` / `threadKey`).

A log entry's `detail` is stored with its most frequent top-level names shortened (`DETAIL_NAMES`: who, why, the
request, the transition, the lane); `detail_doc` gives them back. Only top-level names are ever shortened (values,
such as a patch of variables or an element's output, are stored as they are), and no detail the engine writes has
a top-level name that is one of the short ones, so a detail written before reads as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from procengine.runtime.clock import iso

ELEMENT_NAMES = {
    "type": "t",
    "threadKey": "h",
    "path": "p",
    "attempts": "a",
    "startedAt": "s",
    "status": "st",
    "stoppedAt": "e",
    "output": "o",
    "error": "er",
    "errorType": "et",
    "retryAt": "r",
    "caught": "c",
    "held": "held",
    "input": "in",
    "attemptHistory": "ah",
}
"""An element record's field -> its stored name (`key` is not stored: see `element_doc`)."""
TIMES = ("startedAt", "stoppedAt", "retryAt")
THREAD_NAMES = {
    "threadExecutionID": "i",
    "processThreadID": "p",
    "totalNodes": "n",
    "completedNodes": "c",
    "failedNodes": "f",
    "status": "st",
}
"""A thread record's field -> its stored name (`threadKey` is not stored: the hash field is the thread's key)."""
DETAIL_NAMES = {
    "from": "f",
    "to": "t",
    "by": "b",
    "reason": "r",
    "requestId": "q",
    "thread": "h",
    "path": "p",
    "attempt": "a",
    "error": "er",
    "errorType": "et",
    "retryAt": "ra",
    "processID": "pi",
    "processVersion": "pv",
    "inflight": "n",
    "interrupted": "i",
}
"""A log entry detail's top-level name -> its stored name (the others are stored as they are)."""
_ELEMENT_FIELDS = {short: name for name, short in ELEMENT_NAMES.items()}
_DETAIL_FIELDS = {short: name for name, short in DETAIL_NAMES.items()}
_THREAD_FIELDS = {short: name for name, short in THREAD_NAMES.items()}


def stored_element(field: str, record: dict[str, Any]) -> dict[str, Any]:
    """What is stored of an element record under hash field `field`."""
    stored: dict[str, Any] = {}
    for name, value in record.items():
        if name == "key" and value == element_key_of(field):
            continue
        if name == "attempts" and value == 1:
            continue
        if name in TIMES and isinstance(value, str):
            value = _ms(value)
        stored[ELEMENT_NAMES.get(name, name)] = value
    return stored


def element_doc(field: str, stored: Any) -> Any:
    """The element record under hash field `field`, with its documented names; one written before (it has
    `status`), or what is not a map, as it is."""
    if not isinstance(stored, dict) or "status" in stored:
        return stored
    doc: dict[Any, Any] = {"key": element_key_of(field)}
    for short, value in stored.items():
        name = _ELEMENT_FIELDS.get(short, short)
        doc[name] = iso(value) if name in TIMES and isinstance(value, int) else value
    doc.setdefault("attempts", 1)
    return doc


def stored_thread(key: str, record: dict[str, Any]) -> dict[str, Any]:
    """What is stored of a thread record under hash field `key` (the thread's key)."""
    return {
        THREAD_NAMES.get(name, name): value
        for name, value in record.items()
        if not (name == "threadKey" and value == key) and not (name == "failedNodes" and value == 0)
    }


def thread_doc(key: str, stored: Any) -> Any:
    """The thread record of thread `key`, with its documented names; one written before (it has `threadKey`), or
    what is not a map, as it is."""
    if not isinstance(stored, dict) or "threadKey" in stored:
        return stored
    doc: dict[Any, Any] = {"threadKey": key}
    doc.update((_THREAD_FIELDS.get(short, short), value) for short, value in stored.items())
    doc.setdefault("failedNodes", 0)
    return doc


def stored_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What is stored of a log entry's detail."""
    return {DETAIL_NAMES.get(name, name): value for name, value in detail.items()}


def detail_doc(stored: Any) -> Any:
    """A log entry's detail with its documented names; what is not a map as it is."""
    if not isinstance(stored, dict):
        return stored
    return {_DETAIL_FIELDS.get(name, name): value for name, value in stored.items()}


def element_key_of(field: str) -> str:
    """The element key in an elements-hash field: the field, or its last part for `<lane>/<key>` (keys have no
    `/`: `Identifier` in engine/definitions.py)."""
    return field.rsplit("/", 1)[-1]


@lru_cache(maxsize=4096)
def _ms(text: str) -> int | str:
    """An ISO-8601 time as epoch ms when that gives the same text back; else the text as it is (cached: the
    elements of a pure run, written together, mostly share their times)."""
    try:
        ms = (datetime.fromisoformat(text.replace("Z", "+00:00")) - _EPOCH) // timedelta(milliseconds=1)
    except (ValueError, TypeError):  # not a time, or one without its zone
        return text
    return ms if iso(ms) == text else text


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
