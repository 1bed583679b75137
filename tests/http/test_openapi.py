"""The OpenAPI document describes exactly the routes the app serves, with resolvable schemas."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from procengine.http import create_app
from procengine.http.console.static_routes import CONSOLE_PATHS
from procengine.http.openapi import build_openapi
from procengine.http.routes import ROUTES
from procengine.http.spec import RouteSpec
from procengine.settings import Settings
from tests.support.api import BASE
from tests.support.fake_engine import FakeEngine
from tests.support.front_door import Client


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path is not None, info
        if path in CONSOLE_PATHS:  # the web console's page and files: served, not part of the API
            continue
        routes.add((route.method.lower(), path))
    return routes


def test_every_registered_route_is_in_the_document() -> None:
    app = create_app(FakeEngine(), Settings())
    document = build_openapi(ROUTES)

    registered = registered_routes(app)
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}

    assert registered == documented
    assert len(registered) == len(ROUTES) == 61  # 48, 5 of external tasks and 8 of schedules (issue 24)


async def test_the_served_document_covers_the_app(client: Client, document: dict[str, Any]) -> None:
    assert client.app is not None
    for method, path in registered_routes(client.app):
        assert method in document["paths"][path], (method, path)
    assert document["openapi"].startswith("3.1")


def test_the_contract_routes_are_there() -> None:
    document = build_openapi(ROUTES)
    e = f"{BASE}/executions/processes"
    expected = {
        ("post", f"{BASE}/processes"),
        ("get", f"{BASE}/processes"),
        ("get", f"{BASE}/processes/{{processID}}"),
        ("post", e),
        ("post", f"{e}/batch"),
        ("get", e),
        ("post", f"{e}/{{id}}/pause"),
        ("post", f"{e}/{{id}}/resume"),
        ("post", f"{e}/{{id}}/cancel"),
        ("get", f"{e}/{{id}}/status"),
        ("post", f"{e}/{{id}}/signals/{{name}}"),
        ("get", f"{e}/{{id}}/log"),
        ("get", f"{e}/{{id}}/elements"),
        ("get", f"{e}/{{id}}/state"),
        ("get", f"{BASE}/statuses"),
        ("get", "/health"),
        ("get", "/ready"),
    }
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert expected <= documented


def refs_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for item in value.values() for ref in refs_in(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in refs_in(item)]
    return []


def test_every_ref_resolves_to_a_component(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    refs = refs_in(document)

    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    assert {"ProcessDefinition", "StartRequest", "ErrorEnvelope", "ExecutionStatusView", "TaskElement"} <= set(schemas)


def test_operations_describe_bodies_parameters_and_envelopes(document: dict[str, Any]) -> None:
    register = document["paths"][f"{BASE}/processes"]["post"]
    start = document["paths"][f"{BASE}/executions/processes"]["post"]
    listing = document["paths"][f"{BASE}/executions/processes"]["get"]
    pause = document["paths"][f"{BASE}/executions/processes/{{id}}/pause"]["post"]
    signal = document["paths"][f"{BASE}/executions/processes/{{id}}/signals/{{name}}"]["post"]

    body = register["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "application/yaml"}
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ProcessDefinition"}
    created = register["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["properties"]["data"] == {"$ref": "#/components/schemas/ProcessSummary"}
    assert created["properties"]["success"] == {"const": True}
    assert {"200", "201", "400", "413", "422", "503", "default"} <= set(register["responses"])
    assert "401" not in register["responses"]  # this server has no tokens: nothing answers 401
    error = register["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorEnvelope"}

    assert {"200", "201", "404"} <= set(start["responses"])
    assert {p["name"]: p["in"] for p in listing["parameters"]} == {
        "status": "query",
        "processID": "query",
        "processKey": "query",
        "startedAfter": "query",
        "startedBefore": "query",
        "errorType": "query",
        "limit": "query",
        "cursor": "query",
    }
    assert "any other" in listing["description"] and "400" in listing["description"]  # unknown ones are refused
    assert "`attr.<name>.gte=`" in listing["description"]  # what OpenAPI cannot list as a parameter
    assert "400" in listing["responses"]
    assert "422" in listing["responses"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500
    assert pause["requestBody"]["required"] is False
    assert "409" in pause["responses"]
    assert [p["name"] for p in signal["parameters"]] == ["id", "name", "Idempotency-Key", "traceparent", "tracestate"]
    assert [p["name"] for p in pause["parameters"]] == ["id", "traceparent", "tracestate"]
    assert {"traceparent", "tracestate"} <= {p["name"] for p in start["parameters"]}
    assert "202" in signal["responses"]


def test_security_only_under_the_base_path_and_only_with_tokens(document: dict[str, Any]) -> None:
    secured = build_openapi(ROUTES, secured=True)
    for path, operations in secured["paths"].items():
        for operation in operations.values():
            if path.startswith(BASE):
                assert operation["security"] == [{"bearerAuth": []}]
                assert "401" in operation["responses"]
            else:
                assert operation["security"] == []
    assert secured["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # the served document of a server without tokens asks for none
    assert "securitySchemes" not in document["components"]
    assert all(op["security"] == [] for operations in document["paths"].values() for op in operations.values())


def test_a_start_needs_a_process_and_links_to_what_can_be_done_with_it(document: dict[str, Any]) -> None:
    start_request = document["components"]["schemas"]["StartRequest"]
    assert [branch["required"] for branch in start_request["anyOf"]] == [["processID"], ["processKey"]]
    links = document["paths"][f"{BASE}/executions/processes"]["post"]["responses"]["201"]["links"]
    assert links["pause"] == {
        "operationId": "pause_execution",
        "parameters": {"id": "$response.body#/data/executionID"},
        "description": "Pause it",
    }
    operation_ids = {op["operationId"] for operations in document["paths"].values() for op in operations.values()}
    assert {link["operationId"] for link in links.values()} <= operation_ids
    # every route of an execution is reachable from a start (schemathesis's stateful phase follows the links)
    execution_routes = {
        op["operationId"] for path, operations in document["paths"].items() if "{id}" in path
        for op in operations.values()
    }  # fmt: skip
    assert {link["operationId"] for link in links.values()} == execution_routes
    registered = document["paths"][f"{BASE}/processes"]["post"]["responses"]["201"]["links"]
    assert registered["read"]["parameters"] == {"processID": "$response.body#/data/processID"}


def test_the_batch_start_takes_up_to_1000_start_requests_and_lists_an_outcome_each(document: dict[str, Any]) -> None:
    batch = document["paths"][f"{BASE}/executions/processes/batch"]["post"]
    schemas = document["components"]["schemas"]

    body = batch["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BatchStartRequest"}
    items = schemas["BatchStartRequest"]["properties"]["items"]
    assert items["items"] == {"$ref": "#/components/schemas/StartRequest"}
    assert (items["minItems"], items["maxItems"]) == (1, 1000)
    answer = batch["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert answer == {"$ref": "#/components/schemas/BatchStartResult"}
    outcome = schemas["BatchStartItem"]["properties"]["outcome"]
    assert outcome["enum"] == ["started", "existing", "failed"]
    assert {"413", "422"} <= set(batch["responses"])


def test_operation_ids_are_unique() -> None:
    document = build_openapi(ROUTES)
    ids = [op["operationId"] for operations in document["paths"].values() for op in operations.values()]

    assert len(ids) == len(set(ids))


def test_a_route_twice_in_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        build_openapi([*ROUTES, ROUTES[0]])


def test_a_path_parameter_without_a_schema_is_refused() -> None:
    spec = RouteSpec("GET", f"{BASE}/things/{{thingID}}", ROUTES[0].handler, "things", None)

    with pytest.raises(ValueError, match="thingID"):
        build_openapi([spec])


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")

    validator.validate(document)
