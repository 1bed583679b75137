"""Headers and query values a client can fill with any bytes (issue 17, item 6): each answers its 4xx, never a 500.

aiohttp hands a header's non-UTF-8 bytes over as surrogates; an `.encode()` of them raised, and the client got a
500 (the Authorization header did). The requests go out on a raw socket: an HTTP client refuses to send such bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.api import BASE

Client = TestClient[Any, Any]
TOKEN = "tok-a"


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    settings = settings.model_copy(update={"api_tokens": {TOKEN: "tenant-a"}})
    async with (
        Node(redis, settings, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, settings))) as client,
    ):
        yield client


async def send(client: Client, request_line: bytes, *headers: bytes, body: bytes = b"") -> tuple[int, Any]:
    """`request_line` with `headers` (raw bytes) and `body`, on a fresh connection: (status, the JSON answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        head = [request_line, b"Host: x", b"Connection: close", f"Content-Length: {len(body)}".encode(), *headers]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload) if payload else None


AUTH = b"Authorization: Bearer " + TOKEN.encode()


async def test_a_non_utf8_byte_in_the_bearer_token_is_401_not_500(client: Client) -> None:
    # before: 500 INTERNAL (UnicodeEncodeError in the token comparison)
    status, body = await send(client, f"GET {BASE}/processes HTTP/1.1".encode(), b"Authorization: Bearer \xff\xfe")

    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")


async def test_a_token_with_a_valid_token_s_prefix_and_a_stray_byte_is_still_refused(client: Client) -> None:
    status, _ = await send(client, f"GET {BASE}/processes HTTP/1.1".encode(), AUTH + b"\xff")

    assert status == 401


async def test_the_good_token_on_a_raw_socket_is_accepted(client: Client) -> None:
    # the harness itself: without this, every 4xx above could be the socket's fault
    status, body = await send(client, f"GET {BASE}/processes HTTP/1.1".encode(), AUTH)

    assert (status, body["success"]) == (200, True)


async def test_a_non_utf8_idempotency_key_is_422(client: Client) -> None:
    line = f"POST {BASE}/executions/processes/1/signals/go HTTP/1.1".encode()
    status, body = await send(
        client, line, AUTH, b"Idempotency-Key: \xff", b"Content-Type: application/json", body=b"{}"
    )

    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")


async def test_a_non_utf8_last_event_id_is_422(client: Client) -> None:
    line = f"GET {BASE}/executions/processes/1/events HTTP/1.1".encode()
    status, body = await send(client, line, AUTH, b"Last-Event-ID: \xff\xfe")

    assert (status, body["error"]["code"]) in {(422, "VALIDATION_ERROR"), (404, "NOT_FOUND")}


async def test_a_non_utf8_content_type_is_read_as_json(client: Client) -> None:
    line = f"POST {BASE}/processes HTTP/1.1".encode()
    status, body = await send(client, line, AUTH, b"Content-Type: application/\xff; charset=\xfe", body=b"{}")

    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")


async def test_a_non_utf8_request_id_is_replaced_by_one_of_ours(client: Client) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-ID: \xff\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 200")
    assert b"X-Request-ID: \xff" not in answer


@pytest.mark.parametrize("query", ["status=%FF", "cursor=%C3", "processID=%FF%FE", "limit=%ED%A0%80"])
async def test_percent_encoded_bytes_that_are_not_utf8_in_the_query_are_422(client: Client, query: str) -> None:
    status, body = await send(client, f"GET {BASE}/executions/processes?{query} HTTP/1.1".encode(), AUTH)

    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")


async def test_a_signal_name_of_bytes_that_are_not_utf8_is_422(client: Client) -> None:
    line = f"POST {BASE}/executions/processes/1/signals/%FF%FE HTTP/1.1".encode()
    status, _ = await send(client, line, AUTH, b"Content-Type: application/json", body=b"{}")

    assert status == 422


async def test_a_yaml_body_that_is_not_utf8_is_400(client: Client) -> None:
    line = f"POST {BASE}/processes HTTP/1.1".encode()
    status, body = await send(client, line, AUTH, b"Content-Type: application/yaml", body=b"\xff\xfe\xfd")

    assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")
