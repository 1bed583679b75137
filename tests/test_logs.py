"""Structured logs: a JSON object a line, with the executionID and element key of the code that logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.node.node import Node
from procengine.runtime.logs import JsonFormatter, TextFormatter
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.nodes import start, wait_status
from tests.support.processes import definition


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_lines_inside_an_execution_carry_its_id_and_element(
    redis: Redis, settings: Settings, json_lines: io.StringIO
) -> None:
    handlers = builtin_handlers()

    async def charge(task_input: dict[str, Any]) -> str:
        logging.getLogger("user.payments").info("charging %s", task_input["amount"])
        return "ok"

    handlers.register("charge", charge)
    async with Node(redis, settings, handlers) as engine:
        execution_id = await start(
            engine, definition({"key": "pay", "type": "task", "handler": "charge", "input": {"amount": "12"}})
        )
        await wait_status(engine, execution_id, "completed")

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    charging = next(line for line in lines if line["message"] == "charging 12")
    assert (charging["executionID"], charging["elementKey"], charging["logger"]) == (
        execution_id,
        "pay",
        "user.payments",
    )
    assert charging["level"] == "INFO" and charging["ts"].endswith("Z")
    done = next(line for line in lines if line["message"] == f"execution {execution_id}: completed")
    assert done["executionID"] == execution_id
    started = next(line for line in lines if "engine started" in line["message"])
    assert "executionID" not in started


def test_text_format_is_for_people() -> None:
    record = logging.LogRecord("procengine.x", logging.WARNING, __file__, 1, "slow %s", ("step",), None)
    record.executionID = 7
    text = TextFormatter().format(record)
    assert "WARNING procengine.x [executionID=7]: slow step" in text
