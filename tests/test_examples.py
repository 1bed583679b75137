"""The examples run end to end on real servers with the example handlers: paused, resumed and a node killed on
the way, they take the path their definition says."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from procengine.store.embedded import RedisServer
from tests.support.polling import poll
from tests.support.servers import ServerFactory, call, element_status, final_status, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EXAMPLE = ("--handlers", "examples.handlers", "--register", "examples/order-approval.yaml")


@pytest.fixture
async def serve(redis_server: RedisServer, prefix: str) -> AsyncIterator[ServerFactory]:
    async with serving(redis_server.url, prefix) as start:
        yield start


async def _log(session: aiohttp.ClientSession, server: Any, execution_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await call(session, server, "GET", f"/executions/processes/{execution_id}/log"))[
        "items"
    ]
    return items


async def test_a_big_order_escalates_when_nobody_approves_in_time_across_a_pause_and_a_killed_node(
    serve: ServerFactory,
) -> None:
    a, b = await serve(*EXAMPLE), await serve(*EXAMPLE)
    variables = {"order_id": 7, "qty": 3, "unit_price": 450, "card": "4242-4242-4242-4242", "approval_ms": 1500}
    async with aiohttp.ClientSession() as session:
        started = await call(
            session, a, "POST", "/executions/processes", json={"processKey": "order-approval", "variables": variables}
        )
        execution_id = started["executionID"]
        base = f"/executions/processes/{execution_id}"
        await element_status(session, a, execution_id, "approval", "running")

        await call(session, b, "POST", base + "/pause", json={"reason": "look at it"})
        frozen = (await call(session, a, "GET", base + "/state"))["stack"]["execution_stack"][0]
        assert frozen["element_key"] == "approval" and 0 < frozen["remaining_ms"] <= 1500
        await call(session, b, "POST", base + "/resume")
        a.kill9()  # b adopts; the timeout goes on from what was left of it

        await element_status(session, b, execution_id, "manager", "running")  # timed out, escalated
        await call(session, b, "POST", base + "/signals/approve", json={"approved": True, "by": "dana"})
        status = await final_status(session, b, execution_id)

        assert status["status"] == "completed"
        state = await call(session, b, "GET", base + "/state")
        outputs = state["memory"]["node_outputs"]
        assert outputs["approval"] == {"status": "success", "data": {"timedOut": True}}
        assert outputs["charge"]["data"]["charged"] == 1350
        log = await _log(session, b, execution_id)
        events = [e["event"] for e in log]
        assert (events.count("paused"), events.count("resumed"), events.count("adopted")) == (1, 1, 1)
        completed = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
        assert completed == {
            k: 1 for k in ("price", "route", "approval", "escalate", "manager", "decide", "charge", "ship", "done")
        }


async def test_a_declined_card_tells_the_customer_and_fails_the_order_with_the_gateway_s_words(
    serve: ServerFactory,
) -> None:
    server = await serve(*EXAMPLE)
    variables = {"order_id": 8, "qty": 1, "unit_price": 20, "card": "4000-0000-0000-0002", "approval_ms": 1000}
    async with aiohttp.ClientSession() as session:
        started = await call(
            session,
            server,
            "POST",
            "/executions/processes",
            json={"processKey": "order-approval", "variables": variables},
        )
        status = await final_status(session, server, started["executionID"])

        assert status["status"] == "failed"
        assert status["error"]["element"] == "declined" and status["error"]["type"] == "Fail"
        assert status["error"]["error"] == (
            "order 8: CardDeclined: card 4000-0000-0000-0002 declined: insufficient funds"
        )
        elements = (await call(session, server, "GET", f"/executions/processes/{started['executionID']}/elements"))[
            "items"
        ]
        charge = next(e for e in elements if e["key"] == "charge")
        assert (charge["status"], charge["attempts"], charge["caught"]) == ("failed", 2, "tell-customer")
        tell = next(e for e in elements if e["key"] == "tell-customer")
        assert tell["status"] == "completed"


PIPELINE = ("--handlers", "examples.handlers", "--register", "examples/data-pipeline.yaml")
ACCOUNTS = (
    *("--handlers", "examples.handlers"),
    *("--register", "examples/kyc-check.yaml", "--register", "examples/account-opening.yaml"),
)


async def _fan_out(session: aiohttp.ClientSession, server: Any, execution_id: int) -> dict[str, Any]:
    """The stack entry of the import's for-each (with its `branches`), and the stack."""
    state = await call(session, server, "GET", f"/executions/processes/{execution_id}/state")
    stack = state["stack"]["execution_stack"] if state["stack"] else []
    parent = next((entry for entry in stack if entry["element_key"] == "import"), None)
    return {"parent": parent, "stack": stack}


async def _children(session: aiohttp.ClientSession, server: Any, execution_id: int) -> list[int]:
    """The execution's children, once it has one."""
    status = await poll(
        lambda: call(session, server, "GET", f"/executions/processes/{execution_id}/status"),
        lambda status: bool(status["children"]),
        within=30,
        every=0.05,
    )
    children: list[int] = status["children"]
    return children


async def _adopted(session: aiohttp.ClientSession, server: Any, execution_id: int) -> None:
    await poll(
        lambda: _log(session, server, execution_id),
        lambda log: any(entry["event"] == "adopted" for entry in log),
        within=30,
        every=0.05,
    )


async def _until_ended(session: aiohttp.ClientSession, server: Any, execution_id: int, ended: int) -> None:
    def has_ended(parent: dict[str, Any] | None) -> bool:
        return parent is not None and "branches" in parent and parent["branches"]["ended"] >= ended

    await poll(
        lambda: _fan_out(session, server, execution_id), lambda found: has_ended(found["parent"]), within=30, every=0.05
    )


async def test_the_import_fans_out_four_at_a_time_across_a_pause_and_a_killed_node(serve: ServerFactory) -> None:
    a, b = await serve(*PIPELINE), await serve(*PIPELINE)
    async with aiohttp.ClientSession() as session:
        started = await call(
            session,
            a,
            "POST",
            "/executions/processes",
            json={"processKey": "data-pipeline", "variables": {"day": "2026-12-01", "batches": 12}},
        )
        execution_id = started["executionID"]
        base = f"/executions/processes/{execution_id}"
        await _until_ended(session, a, execution_id, 2)

        await call(session, b, "POST", base + "/pause", json={"reason": "check the first batches"})
        frozen = await _fan_out(session, b, execution_id)
        branches = frozen["parent"]["branches"]
        assert branches["total"] == 12 and 2 <= branches["ended"] < 12
        lanes = [entry["path"] for entry in frozen["stack"] if entry["path"] != "main"]
        assert 1 <= len(lanes) <= 4 and all(lane.startswith("main/import[") for lane in lanes)
        assert len(lanes) == branches["started"] - branches["ended"]
        progress = (await call(session, b, "GET", base + "/status"))["progress"]["percentage"]
        assert 0 < progress < 100
        await call(session, b, "POST", base + "/resume")

        await _until_ended(session, b, execution_id, 6)
        a.kill9()  # b adopts; the iterations in flight run again there, the ended ones do not
        status = await final_status(session, b, execution_id)

        assert status["status"] == "completed" and status["progress"]["percentage"] == 100
        variables = (await call(session, b, "GET", base + "/state"))["memory"]["variables"]
        ids = [f"2026-12-01-{n:03d}" for n in range(12)]
        assert [item["batch"] for item in variables["imported"]] == ids  # in the order of the items
        assert variables["report"] == {
            "day": "2026-12-01",
            "batches": 12,
            "rows": sum(100 + n for n in range(12) if n != 7),
            "set_aside": ["2026-12-01-007"],
        }
        assert variables["refreshed"] == {"refresh": "sales_daily", "day": "2026-12-01"}
        log = await _log(session, b, execution_id)
        loads = Counter(
            e["detail"].get("path") for e in log if e["event"] == "element-completed" and e["elementKey"] == "load"
        )
        assert loads == {f"main/import[{n}]": 1 for n in range(12) if n != 7}  # each batch loaded once
        events = [e["event"] for e in log]
        assert (events.count("paused"), events.count("resumed"), events.count("adopted")) == (1, 1, 1)


async def test_an_account_opening_runs_the_shared_kyc_check_as_a_child_across_a_pause_and_a_killed_node(
    serve: ServerFactory,
) -> None:
    a, b = await serve(*ACCOUNTS), await serve(*ACCOUNTS)
    async with aiohttp.ClientSession() as session:
        variables = {"applicant": {"name": "Ada Lovelace"}, "product": "savings"}
        started = await call(
            session, a, "POST", "/executions/processes", json={"processKey": "account-opening", "variables": variables}
        )
        parent_id = started["executionID"]
        base = f"/executions/processes/{parent_id}"
        [child_id] = await _children(session, a, parent_id)
        child = f"/executions/processes/{child_id}"
        assert (await call(session, b, "GET", child + "/status"))["parentExecutionID"] == parent_id
        await element_status(session, a, child_id, "documents", "running")

        await call(session, b, "POST", base + "/pause", json={"reason": "call the customer"})
        assert (await call(session, b, "GET", child + "/status"))["status"] == "paused"
        stack = (await call(session, b, "GET", base + "/state"))["stack"]["execution_stack"]
        assert [(e["element_key"], e["child_execution_id"]) for e in stack] == [("kyc", child_id)]
        await call(session, b, "POST", base + "/resume")
        assert (await call(session, b, "GET", child + "/status"))["status"] == "running"

        a.kill9()  # b adopts both; the parent waits for the same child
        await _adopted(session, b, child_id)
        await call(session, b, "POST", child + "/signals/documents", json={"passport": "P1234567"})
        status = await final_status(session, b, parent_id)

        assert status["status"] == "completed" and status["children"] == [child_id]
        memory = (await call(session, b, "GET", base + "/state"))["memory"]
        assert memory["variables"]["kyc"] == "pass"
        assert memory["variables"]["account"] == {"open_account_for": "Ada Lovelace", "product": "savings"}
        assert (await call(session, b, "GET", child + "/status"))["status"] == "completed"
