"""`procengine status` and `procengine watch` say per lane why it does not move (the status's `blockedOn`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from procengine.api.views import BlockedOn
from procengine.cli.render import blocked_line
from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS, definition

T = "2026-05-01T10:00:00.000Z"
U = "2026-05-01T10:05:00.000Z"


def _line(kind: str, detail: dict[str, Any], until: str | None = None) -> str:
    entry = BlockedOn(lane="main", elementKey="e", kind=kind, since=T, until=until, detail=detail)  # type: ignore[arg-type]
    return blocked_line(entry)


def test_each_kind_reads_as_a_sentence() -> None:
    waiting = {"kind": "signal", "signal": "go", "buffered": 1, "timeoutAt": None}
    assert _line("signal", {"signal": "go", "buffered": 2, "timeoutAt": U}, U) == (
        f"main: e waits for signal 'go' (2 buffered, times out at {U}) since {T}"
    )
    assert _line("delay", {"dueAt": U}, U) == f"main: e is delayed until {U}"
    backoff = {"attempt": 2, "retryAt": U, "lastError": "TaskFailed: no", "lastErrorType": "TaskFailed"}
    assert _line("backoff", backoff, U) == f"main: e retries (attempt 2) at {U}; last error: TaskFailed: no"
    task = {"attempt": 3, "node": "n1", "handler": "h", "timeoutAt": None}
    assert _line("task", task) == f"main: e runs attempt 3 on node n1 since {T}"
    child = {"childExecutionID": 7, "childStatus": "paused"}
    assert _line("child", child) == f"main: e waits for child execution 7 (paused) since {T}"
    paused = {"by": "tenant-a", "reason": "fraud check", "waiting": {**waiting, "remainingMs": None}}
    assert _line("paused", paused) == (
        f"main: e is paused by tenant-a since {T}: fraud check; then it waits for signal 'go' (1 buffered)"
    )
    dead = {"owner": "abc", "lastCheckpointAt": T, "waiting": None}
    assert _line("owner-dead", dead) == (
        f"main: e does not move: its node abc is gone and no node has adopted it yet (last checkpoint {T})"
    )


def test_status_prints_a_blocked_line_per_lane(server_url: str, run: Run, tmp_path: Path) -> None:
    approval = tmp_path / "approval.json"
    approval.write_text(json.dumps(WAIT_PROCESS))
    run("register", approval)
    execution_id = str(run("start", "approval", "--var", "amount=2", "--json").json()["executionID"])
    with Client(server_url, "tok-a") as client:
        poll_sync(lambda: client.status(int(execution_id)).blockedOn)

    [line] = _blocked(run("status", execution_id).out)
    assert line.startswith("main: wait waits for signal 'approve' (0 buffered) since ")
    run("pause", execution_id, "--reason", "a look")
    [line] = _blocked(run("status", execution_id).out)
    assert line.startswith("main: wait is paused by tenant-a since ")
    assert line.endswith(": a look; then it waits for signal 'approve' (0 buffered)")
    as_json = run("status", execution_id, "--json").json()
    assert [entry["kind"] for entry in as_json["blockedOn"]] == ["paused"]


def test_watch_prints_the_blocked_lines_as_they_change(server_url: str, run: Run, tmp_path: Path) -> None:
    napping = tmp_path / "napping.json"
    napping.write_text(json.dumps(definition({"key": "nap", "type": "delay", "durationMs": 1500}, key="napping")))
    run("register", napping)
    execution_id = run("start", "napping", "--json").json()["executionID"]
    with Client(server_url, "tok-a") as client:
        poll_sync(lambda: client.status(execution_id).blockedOn)

    watched = run("watch", str(execution_id))  # the nap ends by itself 1.5 s after it began

    assert watched.code == 0, watched.err
    assert any(line.startswith("blocked  main: nap is delayed until ") for line in watched.out.splitlines())


def _blocked(out: str) -> list[str]:
    """The status's `blocked` lines, without their heading."""
    return [line.split(None, 1)[1].rstrip() for line in out.splitlines() if line.startswith("blocked ")]


def poll_sync(read: Any, within: float = 5.0) -> Any:
    """`read()` until it gives something truthy (a sync client's poll, with a deadline)."""
    import asyncio

    async def once() -> Any:
        return read()

    return asyncio.run(poll(once, bool, within=within))
