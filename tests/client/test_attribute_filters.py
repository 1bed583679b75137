"""The clients' filters on the execution list: attributes (a value, or a range), the start time, the error type
and the process key, sync and async; a start with attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procengine.client import AsyncClient, Client, ValidationError
from procengine.client.async_client import attribute_params

PROCESS: dict[str, Any] = {
    "key": "orders",
    "attributes": {"customer": "keyword", "amount": "number", "placed": "time", "vip": "bool"},
    "threads": [{"key": "main", "elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}],
}


def test_attribute_params_spell_the_query() -> None:
    moment = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert attribute_params({"customer": "acme", "vip": True, "amount": {"gte": 10, "lt": 20.5}, "placed": moment}) == {
        "attr.customer": "acme",
        "attr.vip": "true",
        "attr.amount.gte": "10",
        "attr.amount.lt": "20.5",
        "attr.placed": "2026-12-08T10:00:00Z",
    }
    with pytest.raises(ValueError, match="no range operator"):
        attribute_params({"amount": {"between": 1}})


async def test_the_async_client_filters(client_a: AsyncClient) -> None:
    await client_a.register(PROCESS)
    placed = datetime(2026, 6, 1, tzinfo=UTC)
    small = await client_a.start("orders", attributes={"customer": "acme", "amount": 5, "placed": placed})
    big = await client_a.start("orders", attributes={"customer": "acme", "amount": 500, "vip": True})
    await client_a.start("orders", attributes={"customer": "globex", "amount": 50})

    acme = [e.executionID async for e in client_a.iter_executions(page_size=1, attributes={"customer": "acme"})]
    assert acme == [big.executionID, small.executionID]
    page = await client_a.executions(attributes={"customer": "acme", "amount": {"gte": 100}}, process_key="orders")
    assert [e.executionID for e in page.items] == [big.executionID]
    assert page.items[0].attributes == {"customer": "acme", "amount": 500, "vip": True}
    timed = await client_a.executions(attributes={"placed": {"lt": placed + timedelta(days=1)}})
    assert [e.executionID for e in timed.items] == [small.executionID]
    now = datetime.now(UTC)
    assert (await client_a.executions(started_after=now + timedelta(hours=1))).items == []
    assert len((await client_a.executions(started_before=now + timedelta(hours=1))).items) == 3
    assert (await client_a.executions(error_type="Timeout")).items == []
    with pytest.raises(ValidationError) as caught:
        await client_a.executions(attributes={"ghost": "1"})
    assert "attr.ghost" in str(caught.value.problems)


def test_the_sync_client_filters(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(PROCESS)
        started = client.start("orders", attributes={"customer": "acme"})
        found = [e.executionID for e in client.iter_executions(attributes={"customer": "acme"})]
        assert found == [started.executionID]
        assert client.executions(attributes={"customer": "globex"}).items == []
        assert client.status(started.executionID).attributes == {"customer": "acme"}
