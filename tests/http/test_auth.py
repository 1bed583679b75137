"""Tokens decide the tenant; another tenant's data does not exist; probes and the document need no token;
every answer carries the request id."""

from __future__ import annotations

import re

import pytest

from procengine.api.service import Caller
from tests.support.api import BASE, auth
from tests.support.fake_engine import FakeEngine
from tests.support.front_door import EXECUTIONS, Client, error_of
from tests.support.processes import ORDER_DEFINITION


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dG9rLWE6"},
        {"Authorization": "tok-a"},
        {"Authorization": "Bearer tok-c"},
        {"Authorization": "Bearer tok-a-but-longer"},
    ],
)
async def test_a_missing_or_unknown_token_is_401(
    tenants_client: Client, engine: FakeEngine, headers: dict[str, str]
) -> None:
    for path in (f"{BASE}/processes", f"{BASE}/statuses", f"{BASE}/no-such-route"):
        response = await tenants_client.get(path, headers=headers)

        await error_of(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not engine.calls


async def test_the_scheme_is_case_insensitive(tenants_client: Client) -> None:
    response = await tenants_client.get(f"{BASE}/statuses", headers={"Authorization": "bearer tok-a"})

    assert response.status == 200


async def test_the_token_decides_the_tenant(tenants_client: Client, engine: FakeEngine) -> None:
    response = await tenants_client.post(
        f"{BASE}/processes", json=ORDER_DEFINITION, headers={**auth("tok-b"), "X-Request-ID": "req-1"}
    )

    assert response.status == 201
    assert engine.last_call().caller == Caller(tenant="tenant-b", by="tenant-b", request_id="req-1")


async def test_without_tokens_everyone_is_tenant_default(client: Client, engine: FakeEngine) -> None:
    response = await client.get(f"{BASE}/processes", headers=auth("anything"))

    assert response.status == 200
    caller = engine.last_call().caller
    assert caller is not None
    assert (caller.tenant, caller.by) == ("default", "default")


async def test_another_tenants_resources_are_404_for_every_verb(tenants_client: Client, engine: FakeEngine) -> None:
    await tenants_client.post(f"{BASE}/processes", json=ORDER_DEFINITION, headers=auth("tok-a"))
    started = await tenants_client.post(EXECUTIONS, json={"processID": 1}, headers=auth("tok-a"))
    execution_id = (await started.json())["data"]["executionID"]
    b = auth("tok-b")

    await error_of(await tenants_client.get(f"{BASE}/processes/1", headers=b), 404, "NOT_FOUND")
    await error_of(await tenants_client.post(EXECUTIONS, json={"processID": 1}, headers=b), 404, "NOT_FOUND")
    for verb in ("status", "log", "elements", "state"):
        await error_of(await tenants_client.get(f"{EXECUTIONS}/{execution_id}/{verb}", headers=b), 404, "NOT_FOUND")
    for verb in ("pause", "resume", "cancel", "signals/approval"):
        await error_of(await tenants_client.post(f"{EXECUTIONS}/{execution_id}/{verb}", headers=b), 404, "NOT_FOUND")
    listed = await (await tenants_client.get(EXECUTIONS, headers=b)).json()
    assert listed["data"]["items"] == []
    assert engine.executions[execution_id].status == "running"


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json"])
async def test_probes_and_the_document_need_no_token(tenants_client: Client, path: str) -> None:
    response = await tenants_client.get(path)

    assert response.status == 200


async def test_health_and_ready_answer_the_envelope(client: Client) -> None:
    assert await (await client.get("/health")).json() == {"success": True, "data": {"status": "ok"}}
    assert await (await client.get("/ready")).json() == {"success": True, "data": {"status": "ready"}}


async def test_not_ready_is_503(client: Client, engine: FakeEngine) -> None:
    engine.is_ready = False

    health = await client.get("/health")
    ready = await client.get("/ready")

    assert health.status == 200
    await error_of(ready, 503, "UNAVAILABLE")


async def test_the_request_id_is_echoed(client: Client, engine: FakeEngine) -> None:
    ok = await client.get(f"{BASE}/processes", headers={"X-Request-ID": "abc-123"})
    failed = await client.get("/nope", headers={"X-Request-ID": "abc-456"})

    assert ok.headers["X-Request-ID"] == "abc-123"
    assert failed.headers["X-Request-ID"] == "abc-456"
    caller = engine.last_call().caller
    assert caller is not None
    assert caller.request_id == "abc-123"


async def test_a_request_id_is_made_when_none_or_an_unusable_one_is_given(client: Client, engine: FakeEngine) -> None:
    made = set()
    for headers in ({}, {"X-Request-ID": "x" * 500}, {"X-Request-ID": "has spaces"}):
        response = await client.get(f"{BASE}/processes", headers=headers)

        rid = response.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", rid)  # a random prefix per process, then a counter
        caller = engine.last_call().caller
        assert caller is not None
        assert caller.request_id == rid
        made.add(rid)
    assert len(made) == 3


async def test_401_carries_the_request_id(tenants_client: Client) -> None:
    response = await tenants_client.get(f"{BASE}/processes", headers={"X-Request-ID": "who-is-this"})

    assert response.status == 401
    assert response.headers["X-Request-ID"] == "who-is-this"
