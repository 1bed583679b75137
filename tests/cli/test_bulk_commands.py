"""`procengine bulk …` against a real server (issue 23, point 2): a dry run, an action followed to its end (the
summary it prints, its exit code), `show`, `list`, `undo` of a bulk pause, `--json`, and misuse (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from procengine.client import Client
from tests.support.cli import Run
from tests.support.polling import poll_sync

WAITS = {
    "key": "bulk-cli",
    "threads": [{"key": "main", "elements": [
        {"key": "approve", "type": "wait-signal", "signal": "go", "next": "done"},
        {"key": "done", "type": "end"},
    ]}],
}  # fmt: skip


def _statuses(server_url: str, ids: list[int]) -> list[str]:
    with Client(server_url, "tok-a") as client:
        return [client.status(i).status for i in ids]


def _waiting(server_url: str, ids: list[int]) -> bool:
    with Client(server_url, "tok-a") as client:
        return all({e.key: e.status for e in client.elements(i).items}.get("approve") == "running" for i in ids)


def test_bulk_commands(server_url: str, run: Run, tmp_path: Path) -> None:
    definition = tmp_path / "waits.json"
    definition.write_text(json.dumps(WAITS))
    assert run("register", definition).code == 0
    ids = [run("start", "bulk-cli", "--json").json()["executionID"] for _ in range(3)]
    poll_sync(lambda: _waiting(server_url, ids), lambda ok: ok, within=10)

    dry = run("bulk", "pause", "--status", "running", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.startswith("dry run: pause would act on 3 executions (first: ")
    assert _statuses(server_url, ids) == ["running"] * 3

    paused = run("bulk", "pause", "--status", "running", "--reason", "window")
    assert paused.code == 0, paused.err
    assert paused.out.strip().endswith("pause completed: 3 done, 0 refused, 0 failed of 3")
    assert _statuses(server_url, ids) == ["paused"] * 3
    job_id = paused.out.split()[1].rstrip(":")

    refused = run("bulk", "pause", "--ids", ",".join(map(str, ids[:2])), "--json")
    assert refused.code == 0  # completed: a refusal is an answer, not a failure (failed items: exit 1)
    assert refused.json()["refused"] == {"execution is paused": 2}

    shown = run("bulk", "show", job_id, "--json")
    assert (shown.code, shown.json()["action"], shown.json()["done"]) == (0, "pause", 3)
    listed = run("bulk", "list")
    assert listed.code == 0 and f"job {job_id}: pause completed" in listed.out

    undone = run("bulk", "undo", job_id)
    assert undone.code == 0, undone.err
    assert "resume completed: 3 done" in undone.out
    assert _statuses(server_url, ids) == ["running"] * 3


def test_bulk_migrate(server_url: str, run: Run, tmp_path: Path) -> None:
    # given two paused executions of version 1 and a version 2 that renames the wait
    definition = tmp_path / "waits.json"
    definition.write_text(json.dumps(WAITS))
    first = run("register", definition, "--json").json()["processID"]
    ids = [run("start", "bulk-cli", "--json").json()["executionID"] for _ in range(2)]
    poll_sync(lambda: _waiting(server_url, ids), lambda ok: ok, within=10)
    assert run("bulk", "pause", "--ids", ",".join(map(str, ids))).code == 0
    renamed = json.loads(json.dumps(WAITS).replace('"approve"', '"approval"'))
    definition.write_text(json.dumps(renamed))
    assert run("register", definition).code == 0
    # when a bulk migrate moves version 1's executions, the wait renamed
    moved = run("bulk", "migrate", "--process-id", str(first), "--to-version", "2", "--map", "approve=approval")
    # then each is of version 2
    assert moved.code == 0, moved.err
    assert moved.out.strip().endswith("migrate completed: 2 done, 0 refused, 0 failed of 2")
    with Client(server_url, "tok-a") as client:
        assert [client.status(i).processVersion for i in ids] == [2, 2]
    assert run("bulk", "migrate", "--ids", "1", "--map", "approve").code == 2  # OLD=NEW


def test_bulk_takes_the_lists_filters(server_url: str, run: Run, tmp_path: Path) -> None:
    # given two executions of a definition with a search attribute, one of each customer
    definition = tmp_path / "customers.json"
    definition.write_text(json.dumps({**WAITS, "key": "bulk-attrs", "attributes": {"customer": "keyword"}}))
    assert run("register", definition).code == 0
    for customer in ("acme", "globex"):
        assert run("start", "bulk-attrs", "--attr", f'customer="{customer}"').code == 0
    # when a dry run names an attribute, the process key and a start time
    dry = run("bulk", "cancel", "--attr", "customer=acme", "--process-key", "bulk-attrs", "--started-after",
              "2000-01-01T00:00:00Z", "--dry-run")  # fmt: skip
    # then it counts the one execution of that customer
    assert dry.code == 0, dry.err
    assert dry.out.startswith("dry run: cancel would act on 1 executions")
    assert run("bulk", "cancel", "--attr", "customer", "--dry-run").code == 2  # NAME=VALUE


def test_bulk_misuse_is_exit_2(server_url: str, run: Run) -> None:
    assert run("bulk", "pause").code == 2  # which executions?
    assert run("bulk", "show").code == 2  # which job?
    assert run("bulk", "pause", "--ids", "1,x").code == 2
    assert run("bulk", "show", "999", "--json").code == 3  # no such job
