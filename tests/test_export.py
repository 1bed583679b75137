"""`procengine export --finished-before T`: one JSON line per finished execution stopped before T, with its
variables, elements and whole log; running, paused and later ones left out; nothing changed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.cli.main import main
from procengine.node.node import Node
from procengine.runtime.clock import iso
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.nodes import CALLER, start, wait_element, wait_status
from tests.support.processes import definition

QUICK = definition({"key": "a", "type": "set-variable", "set": {"x": "n * 2"}}, key="quick")
WAITING = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="waiting")


async def test_export_writes_the_finished_executions_before_a_time(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    assert settings.redis_url is not None
    async with Node(redis, settings, builtin_handlers()) as engine:
        done = await start(engine, QUICK, {"n": 21})
        cancelled = await start(engine, WAITING)
        paused = await start(engine, WAITING)
        await wait_element(engine, paused, "w")
        await engine.pause(CALLER, paused, ControlRequest())
        await engine.cancel(CALLER, cancelled, ControlRequest(reason="gone"))
        assert await wait_status(engine, done, "completed") == "completed"
        out = tmp_path / "archive.jsonl"

        code = await asyncio.to_thread(
            main,
            ["export", "--finished-before", iso(engine.clock.now_ms() + 1000), "--out", str(out),
             "--redis-url", settings.redis_url, "--prefix", settings.prefix],
        )  # fmt: skip
        early = await asyncio.to_thread(
            main,
            ["export", "--finished-before", "1d", "--out", str(tmp_path / "none.jsonl"),
             "--redis-url", settings.redis_url, "--prefix", settings.prefix],
        )  # fmt: skip

    assert (code, early) == (0, 0)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["executionID"], line["status"]) for line in lines] == [(cancelled, "cancelled"), (done, "completed")]
    completed = lines[1]
    assert completed["variables"] == {"n": 21, "x": 42} and completed["processKey"] == "quick"
    assert [e["key"] for e in completed["elements"]] == ["a"]
    assert [entry["event"] for entry in completed["log"]] == ["started", "element-completed", "completed"]
    assert (tmp_path / "none.jsonl").read_text() == ""  # nothing stopped a day ago
    assert await redis.hget(f"{settings.prefix}:exec:{{{done}}}", "status") == b"completed"  # left as it was


def test_a_bad_time_is_a_usage_error() -> None:
    assert main(["export", "--finished-before", "last tuesday"]) == 2
