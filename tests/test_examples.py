"""The examples run end to end on real servers with the example handlers: paused, resumed and a node killed on
the way, they take the path their definition says."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from procengine.redis_server import RedisServer
from tests.servers import ServerFactory, call, element_status, final_status, serving

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
