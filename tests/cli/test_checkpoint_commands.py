"""`procengine checkpoints` against a real server (issue 22, point 1): the list, one checkpoint, a diff of two, and
the exit codes (3 for a checkpoint not kept, 2 for --diff without a SEQ)."""

from __future__ import annotations

import json
from pathlib import Path

from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll_sync

TWO_SETS = {
    "key": "two-sets",
    "threads": [{"key": "main", "elements": [
        {"key": "first", "type": "set-variable", "set": {"total": "1"}, "next": "wait"},
        {"key": "wait", "type": "wait-signal", "signal": "go", "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


def _waiting(server_url: str, execution_id: int) -> bool:
    with Client(server_url, "tok-a") as client:
        return any(e.key == "wait" and e.status == "running" for e in client.elements(execution_id).items)


def test_list_show_and_diff(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "two.json"
    definition.write_text(json.dumps(TWO_SETS))
    assert run("register", definition).code == 0
    execution_id = run("start", "two-sets", "--json").json()["executionID"]
    poll_sync(lambda: _waiting(server_url, execution_id), bool, within=10)

    listed = run("checkpoints", str(execution_id))
    assert listed.code == 0, listed.err
    assert listed.out.startswith("SEQ  SAVED AT")
    kept = run("checkpoints", str(execution_id), "--json").json()["items"]
    newest, oldest = kept[0]["seq"], kept[-1]["seq"]
    assert newest > oldest and kept[0]["elementKey"] == "wait"

    shown = run("checkpoints", str(execution_id), str(newest))
    assert shown.code == 0 and f"checkpoint {newest} of execution {execution_id}" in shown.out
    assert '"total": 1' in shown.out

    diff = run("checkpoints", str(execution_id), str(oldest), "--diff", str(newest))
    assert diff.code == 0, diff.err
    assert "+ variable total = 1" in diff.out
    assert "+ pending wait in main" in diff.out

    missing = run("checkpoints", str(execution_id), "9999")
    assert missing.code == 3 and "not kept" in missing.err
    usage = run("checkpoints", str(execution_id), "--diff", "2")
    assert usage.code == 2 and "--diff OTHER goes with a SEQ" in usage.err


def test_help_lists_the_checkpoints_command(run: Run) -> None:
    assert "go back in an execution:\n  checkpoints" in run("--help").out


def test_rewind_a_cancelled_execution(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "two.json"
    definition.write_text(json.dumps(TWO_SETS))
    run("register", definition)
    execution_id = run("start", "two-sets", "--json").json()["executionID"]
    poll_sync(lambda: _waiting(server_url, execution_id), bool, within=10)
    first = run("checkpoints", str(execution_id), "--json").json()["items"][-1]["seq"]
    assert run("cancel", str(execution_id)).code == 0

    rewound = run("rewind", str(execution_id), str(first), "--var", "total=5", "--reason", "cancelled by mistake")

    assert rewound.code == 0, rewound.err
    assert rewound.out.startswith(f"rewound execution {execution_id} (cancelled) to checkpoint {first} at ")
    assert rewound.out.rstrip().endswith("pending: paused")
    assert run("status", str(execution_id), "--json").json()["status"] == "paused"
    again = run("rewind", str(execution_id), "9999")
    assert again.code == 3 and "not kept" in again.err


def test_break_sets_and_clears_breakpoints(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "two.json"
    definition.write_text(json.dumps(TWO_SETS))
    run("register", definition)
    execution_id = str(run("start", "two-sets", "--json").json()["executionID"])
    poll_sync(lambda: _waiting(server_url, int(execution_id)), bool, within=10)

    set_ = run("break", execution_id, "done", "--when", "first=total > 0")
    assert set_.code == 0, set_.err
    assert set_.out.startswith(f"execution {execution_id} pauses before: done, first when total > 0")
    assert "already begun (will not stop): first in main" in set_.out
    assert run("signal", execution_id, "go").code == 0
    poll_sync(lambda: run("status", execution_id, "--json").json()["status"], lambda s: s == "paused", within=10)
    events = [item["event"] for item in run("log", execution_id, "--json").json()["items"]]
    assert "breakpoint" in events
    cleared = run("break", execution_id)
    assert cleared.code == 0 and "has no breakpoints" in cleared.out
    bad = run("break", execution_id, "nope")
    assert bad.code != 0 and "'nope'" in bad.err


def test_step_a_paused_execution(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "two.json"
    definition.write_text(json.dumps(TWO_SETS))
    run("register", definition)
    execution_id = str(run("start", "two-sets", "--json").json()["executionID"])
    poll_sync(lambda: _waiting(server_url, int(execution_id)), bool, within=10)
    assert run("pause", execution_id).code == 0
    assert run("signal", execution_id, "go").code == 0

    stepped = run("step", execution_id)

    assert stepped.code == 0, stepped.err
    assert stepped.out.rstrip() == f"execution {execution_id} ran wait in main (completed); now paused"
    last = run("step", execution_id, "--json")
    assert last.json()["status"] == "completed" and last.json()["ran"][0]["elementKey"] == "done"
    refused = run("step", execution_id)
    assert refused.code == 4


def test_fork_from_a_checkpoint(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "two.json"
    definition.write_text(json.dumps(TWO_SETS))
    run("register", definition)
    execution_id = str(run("start", "two-sets", "--json").json()["executionID"])
    poll_sync(lambda: _waiting(server_url, int(execution_id)), bool, within=10)

    forked = run("fork", execution_id, "--paused", "--var", "total=7", "--reason", "what if")

    assert forked.code == 0, forked.err
    assert forked.out.startswith(f"forked execution {execution_id} as execution ")
    assert forked.out.rstrip().endswith(": paused")
    missing = run("fork", execution_id, "--checkpoint", "9999")
    assert missing.code == 3 and "not kept" in missing.err
