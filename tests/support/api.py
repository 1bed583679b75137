"""Speaking to the API in-process: its base path (the front door's own constant), the two tenants the tests use,
and `Api`, a client of one tenant that unwraps the envelope."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from procengine.http.spec import BASE_PATH
from tests.support.polling import poll

BASE = BASE_PATH
TOKENS = {"tok-a": "tenant-a", "tok-b": "tenant-b"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """A client that speaks as one tenant and unwraps the envelope."""

    def __init__(self, client: TestClient[Any, Any], token: str | None) -> None:
        self.client = client
        self.headers = auth(token) if token else {}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.client.request(method, BASE + path, headers=headers, **kwargs)
        return response.status, await response.json()

    async def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        status, body = await self.call(method, path, **kwargs)
        assert status == expect, body
        assert body["success"] is True
        return body["data"]


async def wait_for_status(api: Api, execution_id: int, status: str) -> dict[str, Any]:
    """Poll the status endpoint (what a client does) until it shows `status`."""

    async def read() -> dict[str, Any]:
        data: dict[str, Any] = await api.ok("GET", f"/executions/processes/{execution_id}/status")
        return data

    return await poll(read, lambda data: data["status"] == status, every=0.02)
