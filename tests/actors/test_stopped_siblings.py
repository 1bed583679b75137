"""A branch or iteration that fails stops its siblings: whatever element each sibling was on (a delay, a wait for a
signal, a call-process waiting for its child, a nested for-each and its own iterations, a task) ends with it, and
its record says so (`interrupted`, with `stoppedAt`), whether the failure fails the execution or a catch on the
fan-out takes it and the execution completes: a final execution has no `running` record (docs/api.md)."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.node.node import Node
from tests.support.nodes import CALLER, Gate, start, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

WAITING_KYC = definition({"key": "approve", "type": "wait-signal", "signal": "approved"}, key="kyc")

SIBLINGS = {
    "nap": ("a", [{"key": "nap", "type": "delay", "durationMs": 600_000}]),
    "wait": ("b", [{"key": "wait", "type": "wait-signal", "signal": "never"}]),
    "call": ("c", [{"key": "call", "type": "call-process", "process": "kyc"}]),
    "inner": (
        "d",
        [
            {
                "key": "inner",
                "type": "for-each",
                "items": "[1, 2]",
                "body": {"elements": [{"key": "inner_nap", "type": "delay", "durationMs": 600_000}]},
            }
        ],
    ),
}
"""element key -> (branch, elements): one sibling branch per kind of element that waits."""


async def _records(engine: Node, execution_id: int) -> list[Any]:
    return (await engine.elements(CALLER, execution_id)).items


async def _until_running(engine: Node, execution_id: int, keys: set[str]) -> None:
    async def running() -> set[str]:
        return {r.key for r in await _records(engine, execution_id) if r.status == "running"}

    await poll(running, lambda found: keys <= found)


def _assert_stopped(records: list[Any], keys: set[str]) -> None:
    assert not [(r.key, r.path) for r in records if r.status == "running"], "a final execution has no running record"
    for record in records:
        if record.key in keys:
            assert record.status == "interrupted", record
            assert record.stoppedAt is not None, record


@pytest.mark.parametrize("caught", [False, True], ids=["failed", "caught"])
async def test_a_failing_branch_leaves_every_sibling_element_interrupted(
    engine: Node, gate: Gate, caught: bool
) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    branches = [{"key": branch, "elements": elements} for branch, elements in SIBLINGS.values()]
    branches.append(
        {
            "key": "e",
            "elements": [
                {"key": "hold", "type": "task", "handler": "gate", "next": "boom"},
                {"key": "boom", "type": "fail", "message": "'no'"},
            ],
        }
    )
    catch = {"catch": [{"errors": ["Fail"], "next": "after"}]} if caught else {}
    process = definition(
        {"key": "all", "type": "parallel", "branches": branches, "next": "after", **catch},
        {"key": "after", "type": "set-variable", "set": {"done": "true"}},
        key="siblings",
    )
    execution_id = await start(engine, process)
    await _until_running(engine, execution_id, {*SIBLINGS, "inner_nap", "hold"})
    await poll(lambda: engine.status(CALLER, execution_id), lambda status: status.children)  # the child started

    gate.release.set()  # `hold` ends, `boom` fails branch e

    expected = "completed" if caught else "failed"
    assert await wait_status(engine, execution_id, expected) == expected
    _assert_stopped(await _records(engine, execution_id), {*SIBLINGS, "inner_nap"})


@pytest.mark.parametrize("caught", [False, True], ids=["failed", "caught"])
async def test_a_failing_iteration_leaves_every_sibling_element_interrupted(
    engine: Node, gate: Gate, caught: bool
) -> None:
    await engine.register_process(CALLER, WAITING_KYC)
    body = [
        {
            "key": "route",
            "type": "switch",
            "cases": [
                {"when": "line == 0", "next": "hold"},
                {"when": "line == 1", "next": "nap"},
                {"when": "line == 2", "next": "wait"},
                {"when": "line == 3", "next": "call"},
            ],
            "default": "inner",
        },
        {"key": "hold", "type": "task", "handler": "gate", "next": "boom"},
        {"key": "boom", "type": "fail", "message": "'no'"},
        *(elements[0] for _, elements in SIBLINGS.values()),
    ]
    catch = {"catch": [{"errors": ["Fail"], "next": "after"}]} if caught else {}
    each = {"key": "each", "type": "for-each", "items": "[0, 1, 2, 3, 4]", "as": "line", "maxConcurrency": 5}
    process = definition(
        {**each, "body": {"elements": body}, "next": "after", **catch},
        {"key": "after", "type": "set-variable", "set": {"done": "true"}},
        key="iterations",
    )
    execution_id = await start(engine, process)
    await _until_running(engine, execution_id, {*SIBLINGS, "inner_nap", "hold"})
    await poll(lambda: engine.status(CALLER, execution_id), lambda status: status.children)

    gate.release.set()

    expected = "completed" if caught else "failed"
    assert await wait_status(engine, execution_id, expected) == expected
    _assert_stopped(await _records(engine, execution_id), {*SIBLINGS, "inner_nap"})
