"""`procengine reindex`: executions from before the indexes by status and process are put where the engine puts
new ones, and an entry in a wrong status's index is taken out; a second run changes nothing."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from procengine.api.views import ControlRequest, StartRequest
from procengine.cli.main import main
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.nodes import CALLER, start, wait_element, wait_status
from tests.support.processes import definition

QUICK = definition({"key": "a", "type": "set-variable", "set": {"x": "1"}}, key="quick")
WAITING = {
    **definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="waiting"),
    "attributes": {"customer": "keyword"},
}


async def _snapshot(redis: Redis, prefix: str) -> dict[str, list[bytes]]:
    found = {}
    for pattern in ("executions*", "attr:*"):  # the status and process indexes; the search indexes (issue 23)
        async for key in redis.scan_iter(match=f"{prefix}:tenant:*:{pattern}"):
            found[key.decode()] = sorted(await redis.zrange(key, 0, -1, withscores=True))
    return found


async def test_reindex_puts_old_executions_in_the_indexes_of_their_status_and_process(
    redis: Redis, settings: Settings
) -> None:
    assert settings.redis_url is not None
    async with Node(redis, settings, builtin_handlers()) as engine:
        done = await start(engine, QUICK)
        summary, _ = await engine.register_process(CALLER, WAITING)
        request = StartRequest(processID=summary.processID, attributes={"customer": "acme"})
        paused = (await engine.start_execution(CALLER, request))[0].executionID
        await wait_element(engine, paused, "w")
        await engine.pause(CALLER, paused, ControlRequest())
        assert await wait_status(engine, done, "completed") == "completed"
        expected = await _snapshot(redis, settings.prefix)
        assert any(key.endswith(":attr:customer:eq:acme") for key in expected)
        # as a version before the indexes left them: only the all-executions index, and one stale entry
        for key in expected:
            if not key.endswith(":executions"):
                await redis.delete(key)
        await redis.zadd(engine.keys.status_index("default", "running"), {str(paused): paused})

        argv = ["reindex", "--redis-url", settings.redis_url, "--prefix", settings.prefix]
        assert await asyncio.to_thread(main, argv) == 0
        assert await _snapshot(redis, settings.prefix) == expected
        assert await asyncio.to_thread(main, argv) == 0  # again: nothing changes
        assert await _snapshot(redis, settings.prefix) == expected

        listed = await engine.list_executions(CALLER, status="paused", process_id=None, limit=10, cursor=None)
        assert [item.executionID for item in listed.items] == [paused]
