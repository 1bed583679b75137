"""Search attributes end to end on a real Redis: a start sets them (checked against the declared types), status and
list show them, `set-variable` changes them and moves the index entries in the same write, the list filters on
them (and on the start time, the error type, the process key) alone and together, page by page, never across
tenants, and the sweeper takes the entries out once an execution's retention is over."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.bulk_views import BulkDryRun, BulkRequest
from procengine.api.filters import AttributeFilter, ExecutionFilter
from procengine.api.service import Caller
from procengine.api.views import BatchStartRequest, ControlRequest, StartRequest
from procengine.errors import ValidationFailed
from procengine.node.node import Node
from procengine.node.search import Search
from procengine.runtime.clock import iso
from tests.support.nodes import CALLER, EngineFactory, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

ATTRIBUTES = {"customer": "keyword", "note": "text", "amount": "number", "vip": "bool", "due": "time"}
WAITING = {
    **definition(
        {"key": "w", "type": "wait-signal", "signal": "s", "next": "bump"},
        {"key": "bump", "type": "set-variable", "attributes": {"amount": "amount_now + 1"}, "next": "w2"},
        {"key": "w2", "type": "wait-signal", "signal": "s"},
        key="orders",
    ),
    "attributes": ATTRIBUTES,
}
FAILING = {
    **definition({"key": "f", "type": "task", "handler": "fail", "input": {"message": '"no"'}}, key="failing"),
    "attributes": {"customer": "keyword"},
}
OTHER = Caller(tenant="other", by="other", request_id="req-other")


async def _start(engine: Node, caller: Caller = CALLER, process: str = "orders", **attributes: Any) -> int:
    variables = {"amount_now": attributes.get("amount", 0)}
    request = StartRequest(processKey=process, attributes=attributes, variables=variables)
    result, _ = await engine.start_execution(caller, request)
    return result.executionID


async def _ids(
    engine: Node, caller: Caller = CALLER, *, limit: int = 100, status: str | None = None, **f: Any
) -> list[int]:
    """Every id the list shows for a filter, paging with `limit`."""
    filters = ExecutionFilter(**f)
    found: list[int] = []
    cursor = None
    while True:
        page = await engine.list_executions(
            caller, status=status, process_id=None, limit=limit, cursor=cursor, filters=filters
        )
        assert len(page.items) <= limit
        found += [item.executionID for item in page.items]
        if page.nextCursor is None:
            return found
        cursor = page.nextCursor


def _attr(name: str, value: str, op: str = "eq") -> AttributeFilter:
    return AttributeFilter(name, op, value)  # type: ignore[arg-type]


@pytest.fixture
async def registered(engine: Node) -> Node:
    await engine.register_process(CALLER, WAITING)
    await engine.register_process(CALLER, FAILING)
    return engine


async def test_a_start_sets_attributes_and_status_and_list_show_them(registered: Node) -> None:
    engine = registered
    execution_id = await _start(
        engine, customer="acme", note="Rush order", amount=12.5, vip=True, due="2026-12-24T10:00:00Z"
    )
    shown = {"customer": "acme", "note": "Rush order", "amount": 12.5, "vip": True, "due": "2026-12-24T10:00:00.000Z"}
    assert (await engine.status(CALLER, execution_id)).attributes == shown
    page = await engine.list_executions(CALLER, status=None, process_id=None, limit=10, cursor=None)
    assert page.items[0].attributes == shown


async def test_a_start_with_bad_attributes_is_refused_listing_each_problem(registered: Node) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await _start(registered, customer=5, amount="ten", ghost="x", due="someday")
    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("attributes.ghost: not declared") for p in problems)
    batch = await registered.start_many(
        CALLER,
        BatchStartRequest(
            items=[
                StartRequest(processKey="orders", attributes={"vip": "yes"}),
                StartRequest(processKey="orders", attributes={"vip": True}),
            ]
        ),
    )
    first, second = batch.items
    assert first.error is not None and first.error.code == "VALIDATION_ERROR"
    assert second.executionID is not None


@pytest.mark.parametrize("in_script", [True, False], ids=["in-the-write", "beside-it (Redis Cluster)"])
async def test_set_variable_moves_the_attribute_in_the_index(
    make_engine: EngineFactory, redis: Redis, in_script: bool
) -> None:
    engine = await make_engine()
    engine.store.indexes_in_script = in_script
    await engine.register_process(CALLER, WAITING)
    execution_id = await _start(engine, amount=5)
    key = engine.keys.attribute_range("default", "amount")
    assert await redis.zscore(key, str(execution_id)) == 5
    await wait_element(engine, execution_id, "w")
    await engine.signal(CALLER, execution_id, "s", None)
    await wait_element(engine, execution_id, "w2")
    assert await redis.zscore(key, str(execution_id)) == 6
    assert (await engine.status(CALLER, execution_id)).attributes == {"amount": 6}
    assert await _ids(engine, attributes=(_attr("amount", "6"),)) == [execution_id]
    assert await _ids(engine, attributes=(_attr("amount", "5"),)) == []


async def test_each_filter_alone_and_together_page_by_page(registered: Node, redis: Redis) -> None:
    engine = registered
    acme = [
        await _start(engine, customer="acme", amount=n, note=f"order {n} rush" if n % 2 else "calm") for n in range(12)
    ]
    other = [await _start(engine, customer="globex", amount=n, vip=n % 3 == 0) for n in range(6)]
    failed = await _start(engine, process="failing", customer="acme")
    assert await wait_status(engine, failed, "failed") == "failed"
    for execution_id in acme[:3]:
        await wait_element(engine, execution_id, "w")
        await engine.pause(CALLER, execution_id, ControlRequest())
    newest_first = sorted([*acme, *other, failed], reverse=True)

    assert await _ids(engine, limit=4, attributes=(_attr("customer", "acme"),)) == sorted([*acme, failed], reverse=True)
    assert await _ids(engine, limit=4, attributes=(_attr("customer", "acme"),), process_key="orders") == acme[::-1]
    assert await _ids(engine, limit=3, attributes=(_attr("amount", "3", "gte"), _attr("amount", "8", "lt"))) == [
        i for i in newest_first if i in acme[3:8] or i in other[3:]
    ]
    assert await _ids(engine, limit=2, attributes=(_attr("note", "RUSH"),)) == [
        i for i in acme[::-1] if acme.index(i) % 2
    ]
    assert await _ids(engine, limit=2, attributes=(_attr("note", "rush order"), _attr("amount", "5", "gt"))) == [
        acme[11],
        acme[9],
        acme[7],
    ]
    assert await _ids(engine, attributes=(_attr("vip", "true"),)) == [other[3], other[0]]
    assert await _ids(engine, limit=1, status="paused", attributes=(_attr("customer", "acme"),)) == acme[2::-1]
    error = (await engine.status(CALLER, failed)).error
    assert error is not None
    assert await _ids(engine, error_type=error["type"], attributes=(_attr("customer", "acme"),)) == [failed]
    # the start time: everything started so far is before now and after a minute ago; nothing after now
    now = engine.clock.now_ms()
    assert await _ids(engine, limit=5, started_after=iso(now - 60_000), started_before=iso(now + 1)) == newest_first
    assert await _ids(engine, started_after=iso(now + 1)) == []
    later = await _start(engine, customer="acme")
    assert await _ids(engine, started_after=iso(now + 1), attributes=(_attr("customer", "acme"),)) in ([later], [])


async def test_the_error_type_filter_finds_failed_executions(registered: Node) -> None:
    failed = await _start(registered, process="failing", customer="acme")
    assert await wait_status(registered, failed, "failed") == "failed"
    error = (await registered.status(CALLER, failed)).error
    assert error is not None
    assert await _ids(registered, error_type=error["type"]) == [failed]
    assert await _ids(registered, error_type="Timeout") == []


async def test_a_filter_never_shows_another_tenants_executions(registered: Node) -> None:
    engine = registered
    await engine.register_process(OTHER, WAITING)
    mine = await _start(engine, customer="acme", amount=1)
    theirs = await _start(engine, OTHER, customer="acme", amount=1)
    acme = (_attr("customer", "acme"),)
    assert await _ids(engine, attributes=acme) == [mine]
    assert await _ids(engine, OTHER, attributes=acme) == [theirs]
    assert await _ids(engine, OTHER, attributes=(_attr("amount", "0", "gte"),)) == [theirs]
    search: Search = engine.search
    pages = [page async for page in search.matching_ids("other", ExecutionFilter(attributes=acme))]
    assert pages == [[theirs]]


async def test_matching_ids_gives_every_match_page_by_page(registered: Node) -> None:
    ids = [await _start(registered, customer="acme" if n % 2 else "globex") for n in range(9)]
    wanted = ExecutionFilter(attributes=(_attr("customer", "acme"),))
    pages = [page async for page in registered.search.matching_ids("default", wanted, page=2)]
    assert [i for page in pages for i in page] == [i for i in ids[::-1] if ids.index(i) % 2]
    assert all(1 <= len(page) <= 2 for page in pages)


async def test_bad_filters_are_refused_naming_each(registered: Node) -> None:
    wanted = ExecutionFilter(
        started_after="yesterday",
        attributes=(
            _attr("ghost", "1"),
            _attr("amount", "abc", "gte"),
            _attr("customer", "a", "gt"),
            _attr("vip", "1"),
        ),
    )
    with pytest.raises(ValidationFailed) as caught:
        await registered.list_executions(CALLER, status=None, process_id=None, limit=5, cursor=None, filters=wanted)
    problems = caught.value.problems
    assert problems[0] == "startedAfter: 'yesterday' is not an ISO-8601 time"
    assert any(p.startswith("attr.ghost: no definition of the tenant declares 'ghost'") for p in problems)
    assert "attr.amount.gte: 'abc' is not a number" in problems
    assert any(p.startswith("attr.customer.gt: gt compares numbers and times") for p in problems)
    assert "attr.vip: '1' is not true or false" in problems
    # another tenant declares nothing: its filter on `customer` names an attribute it does not have
    with pytest.raises(ValidationFailed):
        await _ids(registered, OTHER, attributes=(_attr("customer", "acme"),))


async def test_the_sweeper_takes_the_search_entries_out(make_engine: EngineFactory, redis: Redis, prefix: str) -> None:
    engine = await make_engine(retention="300ms", sweep_interval_ms=100)
    await engine.register_process(CALLER, FAILING)
    failed = await _start(engine, process="failing", customer="acme")
    assert await wait_status(engine, failed, "failed") == "failed"
    member = str(failed)
    error_type = (await engine.status(CALLER, failed)).error["type"]  # type: ignore[index]
    keys = [
        engine.keys.started("default"),
        engine.keys.attribute_value("default", "customer", "acme"),
        engine.keys.error_index("default", error_type),
    ]
    for key in keys:
        assert await redis.zscore(key, member) is not None
    assert await redis.hexists(engine.keys.search("default"), member)

    async def held() -> list[Any]:
        return [await redis.zscore(key, member) for key in keys] + [
            await redis.hget(engine.keys.search("default"), member)
        ]

    await poll(held, lambda found: not any(found), every=0.05)
    assert not [key async for key in redis.scan_iter(match=f"{prefix}:tenant:*:attr:*")]


async def test_a_page_looks_at_a_bounded_number_of_ids(registered: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter that matches little of its driver answers a short page with a cursor; paging on finds every match."""
    engine = registered
    old = await _start(engine, customer="acme", vip=True)
    # each filter alone holds 16, both together only the oldest
    newer = [await _start(engine, customer="acme" if n % 2 else "globex", vip=not n % 2) for n in range(30)]
    monkeypatch.setattr("procengine.node.search.MIN_BUDGET", 10)
    monkeypatch.setattr("procengine.node.search.BUDGET_PAGES", 1)
    monkeypatch.setattr("procengine.node.search.BATCH_MIN", 5)
    wanted = ExecutionFilter(attributes=(_attr("customer", "acme"), _attr("vip", "true")))
    first = await engine.list_executions(CALLER, status=None, process_id=None, limit=2, cursor=None, filters=wanted)
    assert first.items == [] and first.nextCursor is not None  # the budget ran out among the newer ones
    assert int(first.nextCursor) < newer[-1]
    assert await _ids(engine, limit=2, attributes=wanted.attributes) == [old]


async def test_a_bulk_operation_takes_the_lists_filters(registered: Node) -> None:
    # given executions of two customers, one of them with a big amount, each waiting for its signal
    engine = registered
    acme_big = await _start(engine, customer="acme", amount=500, vip=True)
    acme_small = await _start(engine, customer="acme", amount=5)
    other = await _start(engine, customer="globex", amount=900)
    for execution_id in (acme_big, acme_small, other):
        await wait_element(engine, execution_id, "w")

    async def matched(**wanted: Any) -> list[int]:
        answer = await engine.bulk(CALLER, BulkRequest(action="pause", filter=wanted, dryRun=True))
        assert isinstance(answer, BulkDryRun)
        return sorted(answer.sample)

    # when a bulk operation's filter names attributes (numbers and booleans as JSON gives them), a status, a time
    # then it matches what the list would
    assert await matched(**{"attr.customer": "acme"}) == [acme_big, acme_small]
    assert await matched(**{"attr.customer": "acme", "attr.amount.gte": 100}) == [acme_big]
    assert await matched(**{"attr.vip": True, "status": "running"}) == [acme_big]
    assert await matched(startedAfter=iso(0), processKey="orders") == [acme_big, acme_small, other]
    # and a filter the list refuses is refused, every problem named
    with pytest.raises(ValidationFailed) as refused:
        await engine.bulk(
            CALLER, BulkRequest(action="pause", filter={"attr.ghost": "x", "attr.amount.most": 1}, dryRun=True)
        )
    assert refused.value.problems == ["filter.attr.amount.most: not attr.<name> or attr.<name>.<gte|lte|gt|lt>"]
    with pytest.raises(ValidationFailed) as undeclared:
        await engine.bulk(CALLER, BulkRequest(action="pause", filter={"attr.ghost": "x"}, dryRun=True))
    assert any("ghost" in problem for problem in undeclared.value.problems), undeclared.value.problems
