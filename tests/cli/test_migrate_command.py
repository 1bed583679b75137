"""`procengine migrate` against a real server (issue 23, point 3): a dry run prints the plan and its problems (exit 1
with problems, 0 without), --map renames, the migration is applied; a refused plan lists every problem."""

from __future__ import annotations

import json
from pathlib import Path

from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll_sync


def _order(wait: str) -> dict[str, object]:
    return {
        "key": "cli-migrating",
        "threads": [{"key": "main", "elements": [
            {"key": "first", "type": "set-variable", "set": {"n": "1"}, "next": wait},
            {"key": wait, "type": "wait-signal", "signal": "go", "next": "done"},
            {"key": "done", "type": "end"},
        ]}],
    }  # fmt: skip


def _waiting(server_url: str, execution_id: int) -> bool:
    with Client(server_url, "tok-a") as client:
        return any(e.key == "approve" and e.status == "running" for e in client.elements(execution_id).items)


def test_dry_run_map_and_apply(server_url: str, run: Run, tmp_path: Path) -> None:
    for version, wait in ((1, "approve"), (2, "approval")):
        (tmp_path / f"v{version}.json").write_text(json.dumps(_order(wait)))
    assert run("register", tmp_path / "v1.json").code == 0
    execution_id = run("start", "cli-migrating", "--json").json()["executionID"]
    poll_sync(lambda: _waiting(server_url, execution_id), bool, within=10)
    assert run("pause", str(execution_id)).code == 0
    assert run("register", tmp_path / "v2.json").code == 0

    planned = run("migrate", str(execution_id), "--to-version", "2", "--dry-run")
    assert planned.code == 1
    assert f"plan to migrate execution {execution_id} (paused) from version 1 to 2" in planned.out
    assert "1 problem(s):" in planned.out and "has no element 'approve'" in planned.out
    refused = run("migrate", str(execution_id), "--to-version", "2")
    assert refused.code == 1 and "has no element 'approve'" in refused.err

    mapped = run("migrate", str(execution_id), "--to-version", "2", "--map", "approve=approval", "--dry-run")
    assert mapped.code == 0 and "main: approve -> approval (wait-signal)" in mapped.out
    applied = run("migrate", str(execution_id), "--to-version", "2", "--map", "approve=approval", "--json")
    assert applied.code == 0 and applied.json()["applied"] is True
    assert run("status", str(execution_id), "--json").json()["processVersion"] == 2

    usage = run("migrate", str(execution_id), "--to-version", "2", "--map", "approve")
    assert usage.code != 0 and "--map takes OLD=NEW" in usage.err


def test_help_lists_the_migrate_command(run: Run) -> None:
    assert "migrate" in run("--help").out
