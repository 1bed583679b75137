"""Chaos: an element that kills whatever node runs it (kill -9 of the `procengine serve` process, from inside its
task) takes down node_crash_limit nodes, not the cluster: the execution ends failed with NodeCrashed and the
node left keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from procengine.store.embedded import RedisServer
from tests.support.api import BASE
from tests.support.polling import until
from tests.support.servers import ServerFactory, call, final_status, serving

DEADLY = {
    "key": "deadly",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "before", "type": "set-variable", "set": {"a": "1"}, "next": "boom"},
                {"key": "boom", "type": "task", "handler": "die", "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}
FINE = {"key": "fine", "threads": [{"key": "main", "elements": [{"key": "end", "type": "end"}]}]}


@pytest.fixture
async def serve(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ServerFactory]:
    monkeypatch.setenv("PROCENGINE_NODE_CRASH_LIMIT", "2")
    async with serving(redis_server.url, prefix) as start:
        yield start


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_an_element_that_kills_every_node_is_quarantined_and_the_last_node_survives(
    serve: ServerFactory,
) -> None:
    # given three nodes on one Redis, each with the handler that kills its node
    nodes = await asyncio.gather(*(serve("--handlers", "tests.support.crash_handlers") for _ in range(3)))
    async with aiohttp.ClientSession() as session:
        await call(session, nodes[0], "POST", "/processes", json=DEADLY)
        await call(session, nodes[0], "POST", "/processes", json=FINE)

        # when an execution of the deadly element starts (its node dies at once, and so does the next that adopts it)
        async with session.post(
            nodes[0].url + BASE + "/executions/processes", json={"processKey": "deadly"}
        ) as response:
            execution_id = (await response.json())["data"]["executionID"]
        await until(lambda: sum(node.process.returncode is not None for node in nodes) == 2, within=60, every=0.05)
        dead = [node for node in nodes if node.process.returncode is not None]
        (survivor,) = [node for node in nodes if node.process.returncode is None]

        # then the third node fails it instead of running it, and keeps serving
        status = await final_status(session, survivor, execution_id)
        assert status["status"] == "failed"
        assert status["error"]["type"] == "NodeCrashed" and status["error"]["element"] == "boom"
        assert "2 nodes in a row stopped while it ran" in status["error"]["error"]
        assert all(node.process.returncode == -9 for node in dead)
        log = (await call(session, survivor, "GET", f"/executions/processes/{execution_id}/log"))["items"]
        events = [entry["event"] for entry in log]
        assert events.count("adopted") == 2 and events[-1] == "failed"
        fine = await call(session, survivor, "POST", "/executions/processes", json={"processKey": "fine"})
        assert (await final_status(session, survivor, fine["executionID"]))["status"] == "completed"
        assert survivor.process.returncode is None
