"""The lifecycle on a real Redis Cluster (three masters) and a real Sentinel set-up (master, replica, three
sentinels): start, pause, resume, signal and cancel through two nodes, and recovery after kill -9."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from procengine.store.connection import connect
from procengine.testing.topologies import LocalCluster, LocalSentinel
from tests.support.api import BASE
from tests.support.polling import poll
from tests.support.processes import STEPS_PROCESS, WAIT_PROCESS
from tests.support.servers import Server, ServerFactory, call, element_status, final_status, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def redis_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real topology for the module's tests, one of each kind."""
    base = tmp_path_factory.mktemp(request.param)
    topology = LocalCluster(base) if request.param == "cluster" else LocalSentinel(base)
    with topology:
        yield topology.url


@pytest.fixture
async def serve(redis_url: str, prefix: str) -> AsyncIterator[ServerFactory]:
    async with serving(redis_url, prefix) as start:
        yield start


async def _started(session: aiohttp.ClientSession, server: Server, process: dict[str, object]) -> int:
    await call(session, server, "POST", "/processes", json=process)
    started = await call(session, server, "POST", "/executions/processes", json={"processKey": process["key"]})
    return int(started["executionID"])


async def test_start_on_a_pause_resume_signal_and_cancel_on_b(
    serve: ServerFactory, redis_url: str, prefix: str
) -> None:
    a, b = await serve(), await serve()
    async with aiohttp.ClientSession() as session:
        await call(session, a, "POST", "/processes", json=WAIT_PROCESS)
        start = {"processKey": "approval", "variables": {"amount": 21}}
        first = (await call(session, a, "POST", "/executions/processes", json=start))["executionID"]
        second = (await call(session, a, "POST", "/executions/processes", json=start))["executionID"]
        await element_status(session, a, first, "wait", "running")
        base = f"/executions/processes/{first}"

        paused = await call(session, b, "POST", base + "/pause", json={"reason": "via b"})
        assert paused["status"] == "paused"
        async with session.post(b.url + BASE + base + "/pause") as refused:
            assert refused.status == 409
            assert (await refused.json())["error"]["details"] == {"status": "paused"}
        assert (await call(session, b, "POST", base + "/resume"))["status"] == "running"
        for _ in range(2):  # a retried signal with its Idempotency-Key is delivered once
            await call(session, b, "POST", base + "/signals/approve", json={"yes": 1}, headers={"Idempotency-Key": "k"})
        assert (await final_status(session, b, first))["status"] == "completed"
        state = await call(session, b, "GET", base + "/state")
        assert state["memory"]["variables"] == {"amount": 21, "total": 42, "approval": {"yes": 1}}

        # an operator's pause on the control channel (pub/sub reaches every node of a cluster)
        async with connect(redis_url, timeout_s=2.0, retries=1) as operator:
            control = json.dumps({"executionID": second, "command": "pause", "reason": "ops"})
            async with asyncio.timeout(10):
                while (await call(session, b, "GET", f"/executions/processes/{second}/status"))["status"] != "paused":
                    await operator.publish(f"{prefix}:control", control)  # again: a node may not be subscribed yet
                    await asyncio.sleep(0.1)
        cancelled = await call(session, b, "POST", f"/executions/processes/{second}/cancel", json={"reason": "no"})
        assert cancelled["status"] == "cancelled"
        listed = await call(session, b, "GET", "/executions/processes")
        assert {(e["executionID"], e["status"]) for e in listed["items"]} == {
            (first, "completed"),
            (second, "cancelled"),
        }
        for status, shown in (("completed", [first]), ("cancelled", [second]), ("running", [])):
            listed = await call(session, a, "GET", f"/executions/processes?status={status}&processID=1")
            assert [e["executionID"] for e in listed["items"]] == shown
        log = (await call(session, a, "GET", base + "/log"))["items"]
        events = [e["event"] for e in log]
        assert (events.count("paused"), events.count("resumed"), events.count("signal-received")) == (1, 1, 1)

    # what an operator reads straight from Redis
    inspect = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "procengine", "inspect", str(first),
        "--redis-url", redis_url, "--prefix", prefix, "--json",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await inspect.communicate()
    assert inspect.returncode == 0
    inspected = json.loads(out)
    assert inspected["execution"]["status"] == "completed"
    tenant = f"{prefix}:tenant:{{default}}"
    assert inspected["indexes"] == {
        f"{prefix}:active": False,
        f"{tenant}:executions": True,
        f"{tenant}:executions:status:completed": True,
        f"{tenant}:executions:process:1": True,
        f"{tenant}:executions:process:1:status:completed": True,
    }


async def test_a_list_filters_on_attributes_in_the_tenants_slot(serve: ServerFactory) -> None:
    """search.lua reads the tenant's indexes in one call (one slot), and a set-variable's new value is in them."""
    a, b = await serve(), await serve()
    process = {
        "key": "orders",
        "attributes": {"customer": "keyword", "amount": "number"},
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "w", "type": "wait-signal", "signal": "go", "next": "bump"},
                    {"key": "bump", "type": "set-variable", "attributes": {"amount": "100"}, "next": "w2"},
                    {"key": "w2", "type": "wait-signal", "signal": "go"},
                ],
            }
        ],
    }
    async with aiohttp.ClientSession() as session:
        await call(session, a, "POST", "/processes", json=process)
        ids = []
        for customer in ("acme", "globex", "acme"):
            body = {"processKey": "orders", "attributes": {"customer": customer, "amount": 1}}
            ids.append((await call(session, a, "POST", "/executions/processes", json=body))["executionID"])
        query = "attr.customer=acme&status=running&startedAfter=2000-01-01T00:00:00Z&limit=1"
        first = await call(session, b, "GET", f"/executions/processes?{query}")
        rest = await call(session, b, "GET", f"/executions/processes?{query}&cursor={first['nextCursor']}")
        assert [e["executionID"] for e in first["items"] + rest["items"]] == [ids[2], ids[0]]
        await element_status(session, a, ids[1], "w", "running")
        await call(session, b, "POST", f"/executions/processes/{ids[1]}/signals/go", json={})
        await element_status(session, a, ids[1], "w2", "running")
        moved = await call(session, b, "GET", "/executions/processes?attr.amount.gte=50")
        assert [e["executionID"] for e in moved["items"]] == [ids[1]]


async def test_every_node_is_ready(serve: ServerFactory) -> None:
    """Ready means this node hears the control channel (issue 19 point 11), also on a Cluster, whose PUBLISH counts
    only the receivers on the node that took it: the readiness probe must come back to each node, whichever master
    its subscription and its probe channel's slot are on (three nodes: their ids hash to different slots)."""
    servers = [await serve() for _ in range(3)]
    async with aiohttp.ClientSession() as session:

        async def ready(server: Server) -> int:
            async with session.get(server.url + "/ready") as answer:
                return answer.status

        for server in servers:
            assert await poll(functools.partial(ready, server), lambda status: status == 200, within=10) == 200


async def test_sigterm_on_a_and_b_adopts_at_once(serve: ServerFactory) -> None:
    slow = ("--node-ttl-ms", "60000")  # only the drain's word on the nodes channel explains a quick adoption
    a, b = await serve(*slow), await serve(*slow)
    async with aiohttp.ClientSession() as session:
        execution_id = await _started(session, a, STEPS_PROCESS)
        await element_status(session, a, execution_id, "nap", "running")
        a.terminate()
        async with asyncio.timeout(15):
            assert await a.process.wait() == 0
        status = await final_status(session, b, execution_id)
        assert status["status"] == "completed"


async def test_kill_9_twice_and_the_survivor_then_a_new_node_finish_each_element_once(serve: ServerFactory) -> None:
    a, b = await serve(), await serve()
    async with aiohttp.ClientSession() as session:
        execution_id = await _started(session, a, STEPS_PROCESS)
        await element_status(session, a, execution_id, "nap", "running")
        a.kill9()
        await element_status(session, b, execution_id, "work", "running")  # b adopted it
        b.kill9()

        c = await serve()  # a restart: the only node left
        status = await final_status(session, c, execution_id)
        assert status["status"] == "completed" and status["progress"]["completedNodes"] == 5
        log = (await call(session, c, "GET", f"/executions/processes/{execution_id}/log"))["items"]
        completed = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
        assert completed == {"before": 1, "nap": 1, "work": 1, "after": 1, "end": 1}
        assert [e["event"] for e in log].count("adopted") == 2
        state = await call(session, c, "GET", f"/executions/processes/{execution_id}/state")
        assert state["memory"]["variables"] == {"a": 1, "b": 2}
