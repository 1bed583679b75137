"""`procengine schedule …` against a real server (issue 24, point 3): create (what it prints), list, show, trigger and
the outcome it shows, pause, resume, update, delete, `--json`, a refusal (422, exit code and every problem), and
misuse (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll_sync

QUICK = {"key": "sched-cli", "threads": [{"key": "main", "elements": [{"key": "done", "type": "end"}]}]}


def _outcomes(server_url: str, schedule_id: int) -> int:
    with Client(server_url, "tok-a") as client:
        return len(client.schedule(schedule_id).lastOutcomes)


def test_schedule_commands(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "quick.json"
    definition.write_text(json.dumps(QUICK))
    assert run("register", definition).code == 0

    created = run("schedule", "create", "--process-key", "sched-cli", "--cron", "30 2 * * *", "--timezone",
                  "Europe/Berlin", "--var", "n=1", "--overlap", "allow", "--reason", "nightly")  # fmt: skip
    assert created.code == 0, created.err
    first = created.out.splitlines()[0]
    assert first.endswith("sched-cli, cron '30 2 * * *' Europe/Berlin, active"), created.out
    schedule_id = int(first.split()[1].rstrip(":"))
    assert "overlap allow, catchup none (window 1h)" in created.out

    shown = run("schedule", "show", str(schedule_id), "--json")
    assert shown.code == 0 and shown.json()["variables"] == {"n": 1} and len(shown.json()["nextFireTimes"]) == 5
    listed = run("schedule", "list")
    assert listed.code == 0 and listed.out.startswith(f"{schedule_id}  sched-cli  cron '30 2 * * *'")

    triggered = run("schedule", "trigger", str(schedule_id))
    assert triggered.code == 0 and "fired by hand" in triggered.out
    poll_sync(lambda: _outcomes(server_url, schedule_id), lambda n: n == 1, within=10)
    assert " started execution " in run("schedule", "show", str(schedule_id)).out

    assert "paused" in run("schedule", "pause", str(schedule_id), "--reason", "holidays").out
    assert ", active" in run("schedule", "resume", str(schedule_id)).out
    updated = run("schedule", "update", str(schedule_id), "--every", "5m")
    assert updated.code == 0 and "every 5m" in updated.out
    assert run("schedule", "delete", str(schedule_id)).out.strip() == f"schedule {schedule_id} deleted"
    assert run("schedule", "show", str(schedule_id)).code != 0


def test_schedule_refusals(server_url: str, run: Run) -> None:
    refused = run("schedule", "create", "--process-key", "nothing", "--cron", "every day", "--timezone", "Moon/Base")
    assert refused.code != 0
    assert "cron:" in refused.err and "timezone:" in refused.err and "processKey:" in refused.err, refused.err
    assert run("schedule", "pause").code == 2  # which schedule?
    assert run("schedule", "create", "--every", "5m").code == 2  # which process?
    assert run("schedule", "fly", "1").code == 2
