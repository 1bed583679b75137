"""`procengine skip|complete|fail ID KEY` and `procengine retry ID --element KEY` against a real server (issue 20,
point 3): what they print, `--json`, the exit codes (4 where the execution is not paused or failed, 2 for misuse)."""

from __future__ import annotations

import json
from pathlib import Path

from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll_sync

STEPS = {
    "key": "steps",
    "threads": [{"key": "main", "elements": [
        {"key": "price", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "approve"},
        {"key": "approve", "type": "wait-signal", "signal": "ok", "into": "approval", "next": "done",
         "catch": [{"errors": ["Rejected"], "next": "rejected"}]},
        {"key": "done", "type": "end"},
        {"key": "rejected", "type": "end"},
    ]}],
}  # fmt: skip


def _status(server_url: str, execution_id: int) -> str:
    with Client(server_url, "tok-a") as client:
        return client.status(execution_id).status


def test_step_commands(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "steps.json"
    definition.write_text(json.dumps(STEPS))
    assert run("register", definition).code == 0
    execution_id = run("start", "steps", "--json").json()["executionID"]
    poll_sync(lambda: _status(server_url, execution_id), lambda status: status == "failed", within=10)
    ident = str(execution_id)

    retried = run("retry", ident, "--element", "price", "--reason", "look")
    assert retried.code == 0, retried.err
    assert retried.out.startswith(f"retried element price (main) of execution {ident}; pending: price (main); now")
    assert "paused" in retried.out
    skipped = run("skip", ident, "price", "--output", '{"total": 0}', "--reason", "no price")
    assert skipped.code == 0, skipped.err
    assert "skipped element price (main)" in skipped.out and "pending: approve (main)" in skipped.out
    not_a_task = run("complete", ident, "approve", "--output", "1")
    assert not_a_task.code != 0 and "not a task" in not_a_task.err
    failed = run("fail", ident, "approve", "--error", "no", "--type", "Rejected", "--json")
    assert failed.code == 0, failed.err
    assert failed.json()["caught"] == "rejected" and failed.json()["status"] == "paused"
    assert run("skip", ident, "nope").code != 0
    misuse = run("retry", ident, "--element", "rejected", "--var", "x=1")
    assert misuse.code == 2 and "--element" in misuse.err
    moved = run("move", ident, "main", "done", "--reason", "approved after all")
    assert moved.code == 0, moved.err
    assert moved.out.startswith(f"moved a lane to element done (main) of execution {ident}; pending: done (main)")
    assert run("resume", ident).code == 0
    poll_sync(lambda: _status(server_url, execution_id), lambda status: status == "completed", within=10)
    assert run("run-now", ident, "done").code == 4
    policy = run("policy", ident, "done", "--timeout-ms", "5")
    assert policy.code == 4 and "cannot change the policy of element 'done'" in policy.err
    assert run("policy", ident, "done").code == 2  # nothing to change
    final = run("skip", ident, "done")
    assert final.code == 4 and "completed" in final.err
    log = run("log", ident, "--json").json()["items"]
    [entry] = [item for item in log if item["event"] == "element-skipped"]
    assert entry["detail"]["reason"] == "no price" and entry["detail"]["output"] == {"total": 0}
