"""`procengine retry` and `procengine edit` against a real server (issue 20): what they print, `--json`, and the
exit codes (4 when the execution is not in the state the repair needs)."""

from __future__ import annotations

import json
from pathlib import Path

from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll_sync
from tests.support.processes import WAIT_PROCESS

NEEDS_AMOUNT = {
    "key": "needs-amount",
    "name": "Fails until amount is set",
    "threads": [{"key": "main", "elements": [
        {"key": "double", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


def _status(server_url: str, execution_id: int) -> str:
    with Client(server_url, "tok-a") as client:
        return client.status(execution_id).status


def test_retry_a_failed_execution_with_a_variable(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "needs.json"
    definition.write_text(json.dumps(NEEDS_AMOUNT))
    assert run("register", definition).code == 0
    execution_id = run("start", "needs-amount", "--json").json()["executionID"]
    poll_sync(lambda: _status(server_url, execution_id), lambda status: status == "failed", within=10)

    retried = run("retry", str(execution_id), "--var", "amount=21", "--reason", "amount was missing")

    assert retried.code == 0, retried.err
    assert retried.out.startswith(f"retried execution {execution_id} at ")
    assert "from double; 1 pending: running" in retried.out
    poll_sync(lambda: _status(server_url, execution_id), lambda status: status == "completed", within=10)
    again = run("retry", str(execution_id), "--json")
    assert again.code == 4 and json.loads(again.err)["error"]["currentStatus"] == "completed"
    log = run("log", str(execution_id), "--json").json()["items"]
    [entry] = [item for item in log if item["event"] == "retried"]
    assert entry["detail"]["reason"] == "amount was missing"
    assert entry["detail"]["variables"] == {"before": {}, "after": {"amount": 21}}


def test_edit_a_paused_execution(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "approval.json"
    definition.write_text(json.dumps(WAIT_PROCESS))
    run("register", definition)
    execution_id = str(
        run("start", "approval", "--var", "amount=2", "--var", 'note="x"', "--json").json()["executionID"]
    )

    running = run("edit", execution_id, "--var", "amount=3")
    assert running.code == 4 and "cannot edit an execution that is running" in running.err
    assert run("pause", execution_id).code == 0
    edited = run("edit", execution_id, "--var", "amount=3", "--var", "note=null", "--reason", "typo")
    as_json = run("edit", execution_id, "--var", "extra=[1]", "--json")

    assert edited.code == 0, edited.err
    assert edited.out.strip() == f"execution {execution_id} (paused): variables changed: amount, note"
    assert as_json.code == 0 and as_json.json()["variables"] == {"amount": 3, "total": 4, "extra": [1]}
    nothing = run("edit", execution_id)
    assert nothing.code == 2 and "give at least one --var" in nothing.err


def test_help_lists_the_repair_commands(run: Run) -> None:
    ran = run("--help")
    assert "repair an execution, same id" in ran.out
    for command in ("retry", "edit"):
        assert f"\n  {command} " in ran.out
