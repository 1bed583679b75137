"""Every failure is the error envelope with the contract's code; nothing a client sends yields a traceback."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoPermissionError, OutOfMemoryError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from procengine.errors import Fenced, StateCorrupted
from procengine.http.watch import STORE_CHECK_S
from procengine.store.failures import store_failure
from tests.support.api import BASE
from tests.support.fake_engine import FakeEngine
from tests.support.front_door import EXECUTIONS, Client, ClientFactory, error_of, started
from tests.support.processes import ORDER_DEFINITION

YAML = {"Content-Type": "application/yaml"}


# --- 400 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ['{"key": "x",', "{'key': 'x'}", "[1, 2", '{"a": NaN}', '{"a": 1e999}', "\xff\xfe\x00garbage"]
)
async def test_malformed_json_is_400(client: Client, body: str) -> None:
    response = await client.post(f"{BASE}/processes", data=body.encode("latin-1"))

    error = await error_of(response, 400, "BAD_REQUEST")
    assert error["message"].startswith("malformed JSON")
    assert "details" not in error


async def test_json_nested_too_deeply_is_422_naming_the_limit_not_500(client: Client) -> None:
    # deeper than the interpreter's stack: json.loads cannot tell; the answer names the nesting limit (issue 17)
    response = await client.post(f"{BASE}/processes", data="[" * 100_000)

    await error_of(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body",
    [
        "key: [unclosed",
        "key: x\n  bad: indentation: here",
        "threads: !!python/object/apply:os.system ['true']",
    ],
)
async def test_malformed_yaml_is_400(client: Client, body: str) -> None:
    response = await client.post(f"{BASE}/processes", data=body, headers=YAML)

    error = await error_of(response, 400, "BAD_REQUEST")
    assert error["message"].startswith("malformed YAML")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("key: x\nwhen: 2024-01-01\n", "date"),
        ("key: x\nflags: !!set {a, b}\n", "set"),
        ("key: x\n1: one\n", "not a string"),
        ("key: x\nratio: .nan\n", "not a JSON number"),
        ("&a [*a]", "contains itself"),
    ],
)
async def test_yaml_that_json_could_not_say_is_400(client: Client, body: str, words: str) -> None:
    response = await client.post(f"{BASE}/processes", data=body, headers=YAML)

    error = await error_of(response, 400, "BAD_REQUEST")
    assert words in error["message"]


async def test_yaml_billion_laughs_is_refused_quickly(client: Client, engine: FakeEngine) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    response = await client.post(f"{BASE}/processes", data="\n".join(lines), headers=YAML)

    error = await error_of(response, 400, "BAD_REQUEST")
    assert "aliases" in error["message"]
    assert not engine.calls


async def test_start_without_a_body_is_400(client: Client) -> None:
    response = await client.post(EXECUTIONS)

    await error_of(response, 400, "BAD_REQUEST")


# --- 422 -------------------------------------------------------------------------------------------


async def test_an_invalid_definition_is_422_with_every_problem_listed(client: Client, engine: FakeEngine) -> None:
    body = {
        "key": "broken",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "a", "type": "task", "handler": "echo", "retry": {"maxAttempts": 0}},
                    {"key": "b", "type": "teleport"},
                    {"key": "c", "type": "delay"},
                ],
            }
        ],
        "colour": "blue",
    }
    response = await client.post(f"{BASE}/processes", json=body)

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"] == [
        "colour: Extra inputs are not permitted",
        "threads.0.elements.0.retry.maxAttempts: Input should be greater than 0",
        "threads.0.elements.1.type: 'teleport' is not one of 'task', 'if-condition', 'switch', 'set-variable', "
        "'delay', 'wait-signal', 'parallel', 'for-each', 'call-process', 'fail', 'end'",
        "threads.0.elements.2: a delay takes durationMs or until (one of them)",
        # and the graph is checked too, invalid elements and all: `a` has no `next`
        "threads.0 (main): element 'b' is unreachable from 'a'",
        "threads.0 (main): element 'c' is unreachable from 'a'",
    ]
    assert not engine.processes


async def test_an_invalid_yaml_definition_is_422_too(client: Client) -> None:
    body = "key: broken\nthreads:\n  - key: main\n    elements:\n      - {key: a, type: task}\n"
    response = await client.post(f"{BASE}/processes", data=body, headers=YAML)

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"] == ["threads.0.elements.0.handler: Field required"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2], "Input should be a valid dictionary or instance of StartRequest"),
        ({"processID": 0}, "processID: Input should be greater than or equal to 1"),
        ({"processID": 1, "bogus": True}, "bogus: Extra inputs are not permitted"),
        ({"processID": 1, "variables": [1]}, "variables: Input should be a valid dictionary"),
        # numbers strictly: no bool, string or float read as an id
        ({"processID": True}, "processID: Input should be a valid integer"),
        ({"processID": "1"}, "processID: Input should be a valid integer"),
        ({"processID": 1.0}, "processID: Input should be a valid integer"),
        ({"processKey": 5}, "processKey: Input should be a valid string"),
        ({"processID": 1, "idempotencyKey": 7}, "idempotencyKey: Input should be a valid string"),
    ],
)
async def test_an_invalid_start_is_422(client: Client, body: Any, problem: str) -> None:
    response = await client.post(EXECUTIONS, json=body)

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert problem in error["details"]


async def test_an_invalid_control_body_is_422(client: Client) -> None:
    execution_id = await started(client)

    response = await client.post(f"{EXECUTIONS}/{execution_id}/pause", json={"reason": 7, "force": True})

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"] == ["reason: Input should be a valid string", "force: Extra inputs are not permitted"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("status=sleeping", "status: Input should be 'running', 'paused', 'completed', 'failed' or 'cancelled'"),
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=501", "limit: Input should be less than or equal to 500"),
        ("limit=ten", "limit: Input should be an integer in plain digits, got 'ten'"),
        ("processID=abc", "processID: Input should be an integer in plain digits, got 'abc'"),
        ("processID=-1", "processID: Input should be greater than or equal to 1"),
        ("limit=5&limit=6", "limit: given 2 times; give it once"),
        # numbers strictly: what lax parsing would have read as 5, 50 or 1
        ("limit=5.0", "limit: Input should be an integer in plain digits, got '5.0'"),
        ("limit=5e1", "limit: Input should be an integer in plain digits, got '5e1'"),
        ("limit=%2B5", "limit: Input should be an integer in plain digits, got '+5'"),
        ("limit=%205", "limit: Input should be an integer in plain digits, got ' 5'"),
        ("limit=05", "limit: Input should be an integer in plain digits, got '05'"),
        ("limit=1_0", "limit: Input should be an integer in plain digits, got '1_0'"),
        ("processID=true", "processID: Input should be an integer in plain digits, got 'true'"),
        (
            "processID=99999999999999999999",
            "processID: Input should be an integer in plain digits, got '99999999999999999999'",
        ),
        # an empty value is refused, not read as "any"
        ("status=", "status: empty value; leave the parameter out to mean any"),
        ("limit=", "limit: empty value; leave the parameter out to mean any"),
        ("cursor=", "cursor: empty value; leave the parameter out to mean any"),
    ],
)
async def test_a_bad_query_is_422(client: Client, engine: FakeEngine, query: str, problem: str) -> None:
    response = await client.get(f"{EXECUTIONS}?{query}")

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"] == [problem]
    assert not engine.calls


@pytest.mark.parametrize("key", ["", "has space", "é", "x" * 201])
async def test_a_bad_idempotency_key_on_a_signal_is_422(client: Client, engine: FakeEngine, key: str) -> None:
    execution_id = await started(client)

    response = await client.post(
        f"{EXECUTIONS}/{execution_id}/signals/approval", json=1, headers={"Idempotency-Key": key}
    )

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"] == ["Idempotency-Key: give it once, 1 to 200 visible ASCII characters"]
    assert engine.last_call().method != "signal"


async def test_a_signal_name_no_element_could_wait_for_is_422(client: Client) -> None:
    execution_id = await started(client)

    response = await client.post(f"{EXECUTIONS}/{execution_id}/signals/9lives", json=1)

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"][0].startswith("name: String should match pattern")


# --- 404 and 405 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", f"{BASE}/nope", f"{BASE}/executions/processes/1/explode", "/api/v2"])
async def test_an_unknown_route_is_404(client: Client, path: str) -> None:
    response = await client.get(path)

    error = await error_of(response, 404, "NOT_FOUND")
    assert path in error["message"]


async def test_a_wrong_method_is_405_with_allow(client: Client) -> None:
    response = await client.delete(f"{BASE}/processes")

    await error_of(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "GET, POST"


async def test_an_unknown_id_is_404(client: Client) -> None:
    for path in (f"{BASE}/processes/99", f"{EXECUTIONS}/99/status", f"{EXECUTIONS}/99/log"):
        await error_of(await client.get(path), 404, "NOT_FOUND")
    await error_of(await client.post(f"{EXECUTIONS}/99/pause"), 404, "NOT_FOUND")
    await error_of(await client.post(f"{EXECUTIONS}/99/signals/approval", json={}), 404, "NOT_FOUND")


async def test_starting_an_unknown_process_is_404(client: Client) -> None:
    response = await client.post(EXECUTIONS, json={"processKey": "nothing-here"})

    await error_of(response, 404, "NOT_FOUND")


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "007", "1.0", "+1", "%C2%B2", "99999999999999999999", "1e3"])
async def test_an_id_that_is_not_a_positive_integer_is_404(client: Client, engine: FakeEngine, raw: str) -> None:
    await started(client)  # execution 1 exists: "007", "1.0" or "+1" must not reach it
    engine.calls.clear()

    for path in (f"{EXECUTIONS}/{raw}/status", f"{BASE}/processes/{raw}"):
        await error_of(await client.get(path), 404, "NOT_FOUND")
    # the id is judged before the body is read
    await error_of(await client.post(f"{EXECUTIONS}/{raw}/pause", data="{broken"), 404, "NOT_FOUND")
    assert not engine.calls


# --- 409 passes through ----------------------------------------------------------------------------


async def test_an_invalid_transition_is_409_with_the_current_status(client: Client) -> None:
    execution_id = await started(client)

    response = await client.post(f"{EXECUTIONS}/{execution_id}/resume")

    error = await error_of(response, 409, "INVALID_TRANSITION")
    assert error["details"] == {"status": "running"}


async def test_a_corrupted_state_is_409(client: Client, engine: FakeEngine) -> None:
    execution_id = await started(client)
    engine.raise_next = StateCorrupted("stack is not valid msgpack")

    response = await client.post(f"{EXECUTIONS}/{execution_id}/resume")

    error = await error_of(response, 409, "STATE_CORRUPTED")
    assert error["message"] == "stack is not valid msgpack"
    assert "details" not in error


# --- 413 -------------------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413(make_client: ClientFactory, engine: FakeEngine) -> None:
    client = await make_client(max_body_bytes=1_000)
    body = {**ORDER_DEFINITION, "name": "x" * 2_000}

    response = await client.post(f"{BASE}/processes", json=body)

    error = await error_of(response, 413, "PAYLOAD_TOO_LARGE")
    assert "1000 bytes" in error["message"]
    assert not engine.calls


async def test_a_body_at_the_limit_is_read(make_client: ClientFactory) -> None:
    client = await make_client(max_body_bytes=1_000)
    body = b'{"reason": "' + b"x" * 900 + b'"}'
    await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)
    await client.post(EXECUTIONS, json={"processID": 1})

    response = await client.post(f"{EXECUTIONS}/1/pause", data=body)

    assert response.status == 200


# --- 503 and 500 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc", [RedisConnectionError("Error 111 connecting to localhost:6379"), RedisTimeoutError("Timeout reading")]
)
async def test_redis_unreachable_is_503(client: Client, engine: FakeEngine, exc: RedisError) -> None:
    engine.raise_next = store_failure(exc)  # what the store raises for it (store/failures.py)

    response = await client.get(f"{BASE}/processes")

    error = await error_of(response, 503, "UNAVAILABLE")
    assert "6379" not in error["message"]
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (
            OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
            "the store refused a command (OutOfMemoryError): command not allowed when used memory > 'maxmemory'.",
        ),
        (
            ReadOnlyError("You can't write against a read only replica."),
            "the store refused a command (ReadOnlyError): You can't write against a read only replica.",
        ),
        (
            NoPermissionError("this user has no permissions to run the 'xadd' command"),
            "the store refused a command (NoPermissionError): this user has no permissions to run the 'xadd' command",
        ),
        (
            ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            "the store refused a command: WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            ResponseError("Command # 2 (INCRBY p:seq:thread 1) of pipeline caused error: ('ERR boom',)"),
            "the store refused a command: ERR boom",
        ),
        (
            DataError("Invalid input of type: 'NoneType'"),
            "the store failed: DataError: Invalid input of type: 'NoneType'",
        ),
    ],
)
async def test_any_redis_error_is_503_with_the_stores_reason(
    client: Client, engine: FakeEngine, exc: RedisError, message: str
) -> None:
    engine.raise_next = store_failure(exc)

    response = await client.get(f"{BASE}/processes")

    error = await error_of(response, 503, "UNAVAILABLE")
    assert error["message"] == message
    assert response.headers["Retry-After"] == "5"


async def test_a_request_that_waits_on_a_silent_store_is_503_within_a_second(
    client: Client, engine: FakeEngine
) -> None:
    """A hung Redis answers nothing: redis-py would wait for its socket timeout on every retry (20 s by default).
    The front door asks whether the store answers once a request has taken STORE_CHECK_S, and gives up."""
    engine.list_takes_s, engine.is_ready = 30.0, False
    began = time.monotonic()

    response = await client.get(f"{BASE}/processes")

    await error_of(response, 503, "UNAVAILABLE")
    assert time.monotonic() - began < 1.0
    began = time.monotonic()  # the store is known silent now: the next request is checked at once
    await error_of(await client.get(f"{BASE}/processes"), 503, "UNAVAILABLE")
    assert time.monotonic() - began < STORE_CHECK_S


async def test_a_slow_request_to_a_store_that_answers_is_not_cut_short(client: Client, engine: FakeEngine) -> None:
    engine.list_takes_s = STORE_CHECK_S * 2.5

    response = await client.get(f"{BASE}/processes")

    assert response.status == 200


async def test_a_fenced_write_is_503(client: Client, engine: FakeEngine) -> None:
    engine.raise_next = Fenced("node lost the lease")

    response = await client.get(f"{BASE}/processes")

    await error_of(response, 503, "UNAVAILABLE")


async def test_an_unexpected_exception_is_500_without_a_traceback(
    client: Client, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine.raise_next = KeyError("secret-internal-detail")

    with caplog.at_level(logging.ERROR, logger="procengine.http.middleware"):
        response = await client.get(f"{BASE}/processes", headers={"X-Request-ID": "req-500"})

    error = await error_of(response, 500, "INTERNAL")
    assert error == {"code": "INTERNAL", "message": "internal error (request id req-500)"}
    text = await response.text()
    assert "Traceback" not in text
    assert "secret-internal-detail" not in text
    # the server log has the traceback and the request id
    [record] = [r for r in caplog.records if r.name == "procengine.http.middleware"]
    assert record.exc_info is not None
    assert "req-500" in record.getMessage()


KNOWN = "status, processID, processKey, startedAfter, startedBefore, errorType, limit, cursor, attr.*"


@pytest.mark.parametrize(
    ("query", "problems"),
    [
        ("order_id=42", [f"order_id: unknown query parameter; known: {KNOWN}"]),
        (
            "startedafter=2026-01-01T00:00:00Z&status=running",
            [f"startedafter: unknown query parameter; known: {KNOWN}"],
        ),
        # a misspelt filter: read as "no filter", it answered every execution
        ("Status=failed", [f"Status: unknown query parameter; known: {KNOWN}"]),
        ("processId=1&processId=2", [f"processId: unknown query parameter; known: {KNOWN}"]),
    ],
)
async def test_an_unknown_query_parameter_is_400_naming_the_known_ones(
    client: Client, engine: FakeEngine, query: str, problems: list[str]
) -> None:
    """Issue 19 point 7: unknown list parameters were ignored, and the answer was every execution."""
    response = await client.get(f"{EXECUTIONS}?{query}")

    error = await error_of(response, 400, "BAD_REQUEST")
    assert error["details"] == problems
    assert not engine.calls
