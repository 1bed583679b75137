"""What schemathesis found (tests/http/test_schemathesis.py), each pinned against the front door over a real
engine and Redis: the document must say what the server does, and the server what the document says."""

from __future__ import annotations

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
from tests.support.processes import WAIT_PROCESS

Client = TestClient[Any, Any]
EXECUTIONS = f"{BASE}/executions/processes"


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    async with (
        Node(redis, settings, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, settings))) as client,
    ):
        yield client


async def answer(client: Client, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = await client.request(method, path, **kwargs)
    return response.status, await response.json()


async def started(client: Client) -> int:
    """An execution of `approval`, which waits for a signal: its stream does not end by itself."""
    assert (await client.post(f"{BASE}/processes", json=WAIT_PROCESS)).status == 201
    status, body = await answer(client, "POST", EXECUTIONS, json={"processKey": "approval", "variables": {"amount": 1}})
    assert status == 201, body
    return int(body["data"]["executionID"])


async def document(client: Client) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get("/openapi.json")).json()
    return body


async def test_the_list_s_processID_is_at_least_1_in_the_document_as_on_the_server(client: Client) -> None:
    # schemathesis sent ?processID=0, which the document allowed: pydantic had written `ge: 1`, not `minimum`
    listing = (await document(client))["paths"][EXECUTIONS]["get"]
    schemas = {p["name"]: p["schema"] for p in listing["parameters"]}

    assert schemas["processID"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    status, body = await answer(client, "GET", EXECUTIONS, params={"processID": "0"})
    assert (status, body["error"]["details"]) == (422, ["processID: Input should be greater than or equal to 1"])


async def test_query_parameters_are_not_nullable_a_query_cannot_say_null(client: Client) -> None:
    for path, operations in (await document(client))["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert "anyOf" not in parameter["schema"], (path, parameter)
                    assert parameter["schema"].get("default", "none given") is not None, (path, parameter)


async def test_a_start_names_its_process_with_a_value_not_null(client: Client) -> None:
    # schemathesis sent {"processKey": null}: the document's anyOf only asked for the key to be there
    start = (await document(client))["components"]["schemas"]["StartRequest"]

    assert start["anyOf"] == [
        {"required": ["processID"], "properties": {"processID": {"type": "integer"}}},
        {"required": ["processKey"], "properties": {"processKey": {"type": "string"}}},
    ]
    status, body = await answer(client, "POST", EXECUTIONS, json={"processKey": None})
    assert (status, body["error"]["details"]) == (422, ["give processID or processKey"])


async def test_a_processID_and_a_processKey_of_two_processes_name_no_process_404(client: Client) -> None:
    # both are valid on their own, so the document cannot refuse the pair: it names nothing, like an unknown id
    await started(client)

    status, body = await answer(client, "POST", EXECUTIONS, json={"processID": 1, "processKey": "other"})

    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    assert body["error"]["message"] == "process 'other' has no processID 1 (processID 1 is 'approval')"
    status, _ = await answer(client, "POST", EXECUTIONS, json={"processID": 1, "processKey": "approval"})
    assert status == 201


@pytest.mark.parametrize(
    ("headers", "query", "problem"),
    [
        ({"Last-Event-ID": ""}, {}, "Last-Event-ID: '' is not an event id this API gave"),
        # 20 digits: past the 64 bits Redis reads, which refused it once the stream had begun (a broken stream)
        ({"Last-Event-ID": "1-99999999999999999999"}, {}, "Last-Event-ID: '1-99999999999999999999' is not an event id"),
        ({}, {"after": ""}, "after: empty value; leave the parameter out to mean any"),
        ({}, {"after": "1-2\n"}, "after: String should match pattern"),
    ],
    ids=["empty-header", "over-64-bits", "empty-after", "after-with-a-newline"],
)
async def test_an_event_id_that_is_empty_or_not_one_redis_reads_is_422(
    client: Client, headers: dict[str, str], query: dict[str, str], problem: str
) -> None:
    execution_id = await started(client)
    for path in (f"{EXECUTIONS}/{execution_id}/events", f"{BASE}/executions/events"):
        status, body = await answer(client, "GET", path, headers=headers, params=query)

        assert status == 422, body
        assert body["error"]["details"][0].startswith(problem), body


async def test_a_repeated_last_event_id_is_422(client: Client) -> None:
    execution_id = await started(client)
    headers = [("Last-Event-ID", "1-0"), ("Last-Event-ID", "2-0")]

    status, body = await answer(client, "GET", f"{EXECUTIONS}/{execution_id}/events", headers=headers)

    assert (status, body["error"]["details"]) == (422, ["Last-Event-ID: given 2 times; give it once"])


@pytest.mark.parametrize("where", ["header", "query"])
async def test_an_event_id_of_its_time_alone_is_taken_as_redis_takes_it(client: Client, where: str) -> None:
    # `0`, what schemathesis sends for a valid id, now is one: XREAD reads `<ms>` as `<ms>-0`
    execution_id = await started(client)
    kwargs: dict[str, Any] = {"headers": {"Last-Event-ID": "0"}} if where == "header" else {"params": {"after": "0"}}

    async with client.get(f"{EXECUTIONS}/{execution_id}/events", **kwargs) as response:
        assert response.status == 200
        first = await response.content.readline()

    assert first.startswith(b"id: ")


async def test_each_event_of_a_stream_is_documented_with_the_json_its_data_holds(client: Client) -> None:
    paths = (await document(client))["paths"]
    streams = {
        f"{EXECUTIONS}/{{id}}/events": "#/components/schemas/LogEntry",
        f"{BASE}/executions/events": "#/components/schemas/StatusEvent",
    }
    for path, data in streams.items():
        operation = paths[path]["get"]
        event = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]

        assert event["required"] == ["id", "event", "data"]
        assert event["properties"]["data"]["contentSchema"] == {"$ref": data}
        assert {p["name"] for p in operation["parameters"]} >= {"Last-Event-ID", "after"}
        assert "422" in operation["responses"]


async def test_an_unknown_query_parameter_of_an_event_stream_is_400(client: Client) -> None:
    """Issue 19 point 7: `?since=` was ignored, and the stream began from the first event."""
    execution_id = await started(client)
    for path in (f"{EXECUTIONS}/{execution_id}/events", f"{BASE}/executions/events"):
        status, body = await answer(client, "GET", path, params={"since": "0"})

        assert (status, body["error"]["details"]) == (400, ["since: unknown query parameter; known: after"]), body
