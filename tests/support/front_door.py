"""The front door over the fake engine (tests/http/): its client types, a started execution, an error answer
checked against the contract."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.api import BASE
from tests.support.processes import ORDER_DEFINITION

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]

EXECUTIONS = f"{BASE}/executions/processes"


async def started(client: Client, **start: Any) -> int:
    """Register the order definition and start it; the new execution's id."""
    await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)
    response = await client.post(EXECUTIONS, json={"processKey": "order-fulfilment", **start})
    assert response.status == 201
    body = await response.json()
    return int(body["data"]["executionID"])


async def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """Given an answer, then it is the error envelope with `status` and `code`; returns its `error`."""
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["success"] is False
    assert set(body) == {"success", "error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])
