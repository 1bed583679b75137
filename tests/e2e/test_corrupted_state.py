"""An execution's keys edited by hand or its blobs corrupted while its node was down: when another node takes over,
that execution ends with a clear error (failed with type `StateCorrupted`, or 409 `STATE_CORRUPTED` where nothing
can be written to it), no read of it answers 500, its actor does not crash-loop, and the others run on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.api import Api
from tests.support.loss_process import loss_definition

ROUNDS = 10
FINAL = ("completed", "failed", "cancelled")
READS = ("status", "log", "elements", "state")


async def _corrupt_stack(redis: Redis, key: str) -> None:
    await redis.hset(f"{key}:state", "stack", b"\xc1")  # a byte msgpack never uses


async def _corrupt_memory(redis: Redis, key: str) -> None:
    memory = await redis.hget(f"{key}:state", "memory")
    assert memory is not None
    await redis.hset(f"{key}:state", "memory", memory[: len(memory) // 2])  # cut short


async def _garbage_status(redis: Redis, key: str) -> None:
    await redis.hset(key, "status", "runing")


async def _epoch_not_a_number(redis: Redis, key: str) -> None:
    await redis.hset(key, "epoch", "two")


async def _process_id_deleted(redis: Redis, key: str) -> None:
    await redis.hdel(key, "processID")


async def _thread_record_corrupted(redis: Redis, key: str) -> None:
    await redis.hset(f"{key}:threads", "main", b"\xc1")


CORRUPTIONS = {
    "stack blob": _corrupt_stack,
    "memory blob": _corrupt_memory,
    "status": _garbage_status,
    "epoch": _epoch_not_a_number,
    "processID deleted": _process_id_deleted,
    "thread record": _thread_record_corrupted,
}


@asynccontextmanager
async def _node(redis: Redis, settings: Settings) -> AsyncIterator[Api]:
    async with (
        Node(redis, settings, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, settings))) as client,
    ):
        yield Api(client, None)


async def _start(api: Api) -> int:
    body = {"processKey": "chaos", "variables": {"n": 0}}
    started = await api.ok("POST", "/executions/processes", expect=201, json=body)
    execution_id: int = started["executionID"]
    await api.ok("POST", f"/executions/processes/{execution_id}/signals/go", expect=202, json={})
    return execution_id


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_corrupted_executions_end_with_a_clear_error_and_the_others_run_on(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with _node(redis, settings) as first:
        await first.ok("POST", "/processes", expect=201, json=loss_definition(ROUNDS))
        corrupted = {name: await _start(first) for name in CORRUPTIONS}
        healthy = [await _start(first) for _ in range(3)]
        await asyncio.sleep(0.3)
    # the node is gone (its actors stopped without writing); an operator edits keys by hand
    for name, execution_id in corrupted.items():
        await CORRUPTIONS[name](redis, f"{settings.prefix}:exec:{{{execution_id}}}")

    async with _node(redis, settings) as second:  # adopts every running execution it can
        healthy.append(await _start(second))
        answers: dict[str, dict[str, tuple[int, Any]]] = {}
        async with asyncio.timeout(30):
            while True:
                statuses = [(await second.ok("GET", f"/executions/processes/{i}/status"))["status"] for i in healthy]
                if all(s in FINAL for s in statuses):
                    break
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # a few more reconcile passes
        for name, execution_id in corrupted.items():
            answers[name] = {}
            for read in READS:
                status, body = await second.call("GET", f"/executions/processes/{execution_id}/{read}")
                answers[name][read] = (status, body["data"] if status == 200 else body["error"])
            status, body = await second.call("POST", f"/executions/processes/{execution_id}/pause", json={})
            answers[name]["pause"] = (status, body["data"] if status == 200 else body["error"])
        listed = await second.call("GET", "/executions/processes?limit=100")

    assert listed[0] == 200, listed  # the unreadable ones are left out of it, logged
    assert statuses == ["completed"] * len(healthy), "the other executions ran on"
    for name, found in answers.items():
        assert all(status != 500 for status, _ in found.values()), (name, found)
        assert all(found[read][0] == 200 for read in ("log", "elements", "state")), (name, found)
        status, body = found["status"]
        if status == 200:  # a blob: the hash is fine and says what happened
            assert (body["status"], body["error"]["type"]) == ("failed", "StateCorrupted"), (name, body)
        else:  # the hash itself: every read of it that needs it says which field
            assert (status, body["code"]) == (409, "STATE_CORRUPTED"), (name, body)
    for name, execution_id in corrupted.items():
        key = f"{settings.prefix}:exec:{{{execution_id}}}"
        if name == "status":  # nobody knows what it was: refused (409), left for an operator to repair
            assert answers[name]["pause"][1]["code"] == "STATE_CORRUPTED"
            continue
        assert await redis.hget(key, "status") == b"failed", name  # not left "running" with nobody driving it
        events = [entry[b"event"] for _, entry in await redis.xrange(f"{key}:log")]
        assert events.count(b"failed") == 1 and events[-1] == b"refused", (name, events)  # then our pause
    marked = [r.getMessage() for r in caplog.records if "marking it failed" in r.getMessage()]
    assert len(marked) == len(corrupted) - 1, marked  # once each: no crash loop
    assert not [r for r in caplog.records if "not activated" in r.getMessage()]
