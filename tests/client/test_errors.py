"""Error answers become the exception of their code, whatever the envelope holds (or if there is none)."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest

from procengine.client import (
    BadRequest,
    Conflict,
    InternalError,
    InvalidTransition,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProcEngineClientError,
    StateCorrupted,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from procengine.client.errors import error_from_answer, parse_retry_after


def _envelope(code: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": f"the server says {code}"}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "BAD_REQUEST", BadRequest),
        (401, "UNAUTHORIZED", Unauthorized),
        (404, "NOT_FOUND", NotFound),
        (405, "METHOD_NOT_ALLOWED", MethodNotAllowed),
        (409, "STATE_CORRUPTED", StateCorrupted),
        (413, "PAYLOAD_TOO_LARGE", PayloadTooLarge),
        (500, "INTERNAL", InternalError),
    ],
)
def test_each_code_has_its_exception(status: int, code: str, kind: type[ProcEngineClientError]) -> None:
    error = error_from_answer(status, _envelope(code), request_id="rid-1")
    assert type(error) is kind
    assert (error.status, error.code, error.request_id) == (status, code, "rid-1")
    assert error.message == f"the server says {code}"


def test_the_details_of_409_422_and_503_are_read() -> None:
    transition = error_from_answer(409, _envelope("INVALID_TRANSITION", {"status": "completed"}))
    problems = error_from_answer(422, _envelope("VALIDATION_ERROR", ["a: Field required", "b: too long"]))
    busy = error_from_answer(503, _envelope("UNAVAILABLE"), retry_after="5")
    stuck = error_from_answer(503, _envelope("UNAVAILABLE"))

    assert isinstance(transition, InvalidTransition) and isinstance(transition, Conflict)
    assert transition.current_status == "completed"
    assert isinstance(problems, ValidationError) and problems.problems == ["a: Field required", "b: too long"]
    assert isinstance(busy, Unavailable) and busy.retry_after == 5.0
    assert isinstance(stuck, Unavailable) and stuck.retry_after is None


def test_an_answer_without_the_envelope_is_judged_by_its_status() -> None:
    proxy = error_from_answer(503, "<html>bad gateway</html>", retry_after="2")
    teapot = error_from_answer(418, None)
    unknown = error_from_answer(400, _envelope("SOMETHING_NEW"))

    assert isinstance(proxy, Unavailable) and proxy.retry_after == 2.0
    assert type(teapot) is ProcEngineClientError and teapot.code == "HTTP_418"
    assert type(unknown) is ProcEngineClientError and unknown.code == "SOMETHING_NEW"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert 25 <= (parse_retry_after(later) or 0) <= 31
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
