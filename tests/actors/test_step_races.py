"""Step controls raced against a node kill (issue 20, "Done means"): a skip whose owner dies before, during or
after its write is applied exactly once or not at all; another node adopts the execution, which goes on from
where the skip left it (or from where it was) and stays consistent. Against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest, SkipRequest
from procengine.errors import NotFound
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, Gate, crash, start, wait_status
from tests.support.processes import definition

GATED = definition(
    {"key": "hold", "type": "task", "handler": "gate", "output": "held", "next": "after"},
    {"key": "after", "type": "set-variable", "set": {"after": "true"}, "next": "done"},
    {"key": "done", "type": "end"},
    key="gated-race",
)
"""`hold` waits for the gate (never opened here: it is cut short by the pause, then skipped)."""


async def kill(engine: Node, redis: Redis) -> None:
    """Stop a node as kill -9 would, and let its heartbeat lapse at once (the other node takes over now)."""
    await crash(engine)
    await redis.delete(engine.keys.node(engine.node_id))


async def events(engine: Node, execution_id: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(e.event, e.elementKey, e.detail) for e in (await engine.log(CALLER, execution_id)).items]


@pytest.mark.parametrize("answered", [False, True], ids=["no answer", "answered"])
@pytest.mark.parametrize("yields", [0, 1, 3, 8, 20, 60, 200])
async def test_a_skip_whose_owner_is_killed_applies_once_or_not_at_all(
    make_engine: EngineFactory, redis: Redis, gate: Gate, yields: int, answered: bool
) -> None:
    # given a paused execution owned by `first`, its task cut short by the pause
    first = await make_engine()
    execution_id = await start(first, GATED)
    await asyncio.wait_for(gate.entered.wait(), 10)
    await first.pause(CALLER, execution_id, ControlRequest(reason="look"))
    assert await wait_status(first, execution_id, "paused") == "paused"
    second = await make_engine()

    # when a skip is asked of the owner, which is killed `yields` turns of the loop later (before the skip's write,
    # during it, or after it): with no answer (the request dies with the process, as under kill -9), or answered
    # by what the node had done by then
    request = SkipRequest(output={"by": "hand"}, reason="race")
    skip = asyncio.create_task(first.skip_element(CALLER, execution_id, "hold", request))
    for _ in range(yields):
        await asyncio.sleep(0)
    if not answered:
        skip.cancel()
    await kill(first, redis)
    [answer] = await asyncio.gather(skip, return_exceptions=True)

    # then the other node shows it paused with the skip applied once, or not at all (never half: the status, the
    # stack and the log are one write)
    assert (await second.status(CALLER, execution_id)).status == "paused"
    skips = [e for e in await events(second, execution_id) if e[0] == "element-skipped"]
    if not isinstance(answer, BaseException):
        assert len(skips) == 1, (answer, skips)
    elif isinstance(answer, NotFound):  # applied, its answer lost as the actor stopped; asked again: not pending
        assert len(skips) == 1 and skips[0][2]["reason"] == "race", (answer, skips)
    assert len(skips) <= 1, skips
    stack = (await second.state(CALLER, execution_id)).stack
    assert stack is not None
    pending = [entry["element_key"] for entry in stack["execution_stack"]]
    assert pending == (["after"] if skips else ["hold"]), (pending, skips)

    # and the skip asked again through the other node (which adopts the execution) is refused if it was applied,
    # applied if it was not: exactly once in all
    refused: NotFound | None = None
    try:
        await second.skip_element(CALLER, execution_id, "hold", request)
    except NotFound as not_pending:
        refused = not_pending
    assert (refused is not None) == bool(skips), (refused, skips)
    await second.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(second, execution_id, "completed") == "completed"
    log = await events(second, execution_id)
    assert [e[1] for e in log if e[0] == "element-skipped"] == ["hold"]
    completed = [e[1] for e in log if e[0] == "element-completed"]
    assert completed == ["after", "done"], log  # `hold` never completed, the rest once
    state = await second.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["variables"]["held"] == {"by": "hand"}
    assert gate.finished == 0
