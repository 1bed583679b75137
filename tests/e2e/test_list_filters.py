"""The execution list's filters over HTTP: `attr.*`, `startedAfter`/`startedBefore`, `errorType` and `processKey`
beside `status` and `processID`; an unknown parameter is a 400, an undeclared attribute or a bad value a 422 naming
it; a start's bad attributes a 422 listing each; tenants apart."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api

PROCESS: dict[str, Any] = {
    "key": "orders",
    "attributes": {"customer": "keyword", "amount": "number", "placed": "time"},
    "threads": [{"key": "main", "elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}],
}


async def _start(api: Api, **attributes: Any) -> int:
    run = await api.ok(
        "POST", "/executions/processes", json={"processKey": "orders", "attributes": attributes}, expect=201
    )
    execution_id: int = run["executionID"]
    return execution_id


async def _listed(api: Api, query: str) -> list[int]:
    found: list[int] = []
    cursor = ""
    while True:
        page = await api.ok("GET", f"/executions/processes?{query}&limit=2{cursor}")
        found += [item["executionID"] for item in page["items"]]
        if page["nextCursor"] is None:
            return found
        cursor = f"&cursor={page['nextCursor']}"


async def test_filters_over_http(api_a: Api, api_b: Api) -> None:
    await api_a.ok("POST", "/processes", json=PROCESS, expect=201)
    await api_b.ok("POST", "/processes", json=PROCESS, expect=201)
    small = await _start(api_a, customer="acme", amount=5, placed="2026-01-01T00:00:00Z")
    big = await _start(api_a, customer="acme", amount=500, placed="2026-06-01T00:00:00Z")
    other = await _start(api_a, customer="globex", amount=50)
    theirs = await _start(api_b, customer="acme", amount=500)

    assert await _listed(api_a, "attr.customer=acme") == [big, small]
    assert await _listed(api_a, "attr.amount.gte=50&processKey=orders&status=running") == [other, big]
    assert await _listed(api_a, "attr.placed.lt=2026-03-01T00:00:00Z") == [small]
    assert await _listed(api_a, "attr.customer=acme&attr.amount.gt=100") == [big]
    assert await _listed(api_b, "attr.customer=acme") == [theirs]
    assert await _listed(api_a, "startedAfter=2000-01-01T00:00:00Z&startedBefore=2999-01-01T00:00:00Z") == [
        other,
        big,
        small,
    ]
    assert await _listed(api_a, "errorType=Timeout") == []
    listed = await api_a.ok("GET", "/executions/processes?attr.customer=globex")
    assert listed["items"][0]["attributes"] == {"customer": "globex", "amount": 50}
    status = await api_a.ok("GET", f"/executions/processes/{small}/status")
    assert status["attributes"] == {"customer": "acme", "amount": 5, "placed": "2026-01-01T00:00:00.000Z"}


async def test_bad_filters_are_refused_naming_them(api_a: Api) -> None:
    await api_a.ok("POST", "/processes", json=PROCESS, expect=201)
    status, body = await api_a.call("GET", "/executions/processes?order_id=42")
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST"
    assert "order_id: unknown query parameter" in str(body["error"])
    status, body = await api_a.call("GET", "/executions/processes?attr.amount.between=1")
    assert status == 400 and "attr.amount.between" in str(body["error"])

    status, body = await api_a.call(
        "GET", "/executions/processes?attr.amount.gte=abc&attr.ghost=1&startedAfter=soon&attr.customer.lt=b"
    )
    assert status == 422 and body["error"]["code"] == "VALIDATION_ERROR"
    text = str(body["error"])
    for named in ("attr.amount.gte: 'abc' is not a number", "attr.ghost:", "startedAfter:", "attr.customer.lt:"):
        assert named in text, text
    status, body = await api_a.call("GET", "/executions/processes?attr.customer=a&attr.customer=b")
    assert status == 422 and "given 2 times" in str(body["error"])


async def test_a_start_with_bad_attributes_is_a_422_listing_each(api_a: Api) -> None:
    await api_a.ok("POST", "/processes", json=PROCESS, expect=201)
    status, body = await api_a.call(
        "POST",
        "/executions/processes",
        json={"processKey": "orders", "attributes": {"customer": 1, "amount": "x", "ghost": True, "placed": "never"}},
    )
    assert status == 422 and body["error"]["code"] == "VALIDATION_ERROR"
    text = str(body["error"])
    for name in ("attributes.customer", "attributes.amount", "attributes.ghost", "attributes.placed"):
        assert name in text, text


async def test_a_type_another_definition_gave_the_name_is_refused(api_a: Api) -> None:
    await api_a.ok("POST", "/processes", json=PROCESS, expect=201)
    clash = {**PROCESS, "key": "refunds", "attributes": {"amount": "keyword"}}
    status, body = await api_a.call("POST", "/processes", json=clash)
    assert status == 422
    assert "attributes.amount: declared keyword, but process 'orders' version 1 declares it number" in str(body)
