"""The API commands against a real server: each command, `--json` output, and the exit codes scripts rely on
(0 ok, 1 error, 2 usage, 3 not found, 4 conflict)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from procengine.client import Client
from tests.support.cli import Run
from tests.support.processes import FAILING_PROCESS, WAIT_PROCESS


@pytest.fixture
def approval_file(tmp_path: Path) -> Path:
    path = tmp_path / "approval.json"
    path.write_text(json.dumps(WAIT_PROCESS))
    return path


def test_help_lists_every_command_in_groups(run: Run) -> None:
    ran = run("--help")
    assert ran.code == 0
    titles = ["run and inspect a server", "drive executions over the REST API", "definitions"]
    positions = [ran.out.index(title) for title in titles]
    assert positions == sorted(positions)
    for command in ("serve", "inspect", "start", "status", "list", "log", "watch", "pause", "resume", "cancel",
                    "signal", "register", "validate"):  # fmt: skip
        assert f"\n  {command} " in ran.out


def test_register_json_and_yaml(server_url: str, run: Run, approval_file: Path, short_file: Path) -> None:
    registered = run("register", approval_file, "--json")
    text = run("register", short_file)
    again = run("register", short_file)

    assert registered.code == 0 and registered.json()["key"] == "approval"
    assert (text.code, text.out.strip()) == (0, "registered 'short' version 1 (processID 2)")
    assert again.out == text.out  # identical: the version it already is


def test_a_lifecycle_with_its_exit_codes(server_url: str, run: Run, approval_file: Path, tmp_path: Path) -> None:
    assert run("register", approval_file).code == 0
    variables = tmp_path / "vars.yaml"
    variables.write_text("amount: 1\nnote: from the file\n")

    started = run("start", "approval", "--vars-file", variables, "--var", "amount=20", "--json")
    assert started.code == 0
    execution_id = str(started.json()["executionID"])

    paused = run("pause", execution_id, "--reason", "a look")
    assert (paused.code, paused.out.startswith(f"paused execution {execution_id} at ")) == (0, True)
    again = run("pause", execution_id)
    assert again.code == 4
    assert "cannot pause an execution that is paused (INVALID_TRANSITION)" in again.err
    assert "current status: paused" in again.err
    as_json = run("pause", execution_id, "--json")
    assert (as_json.code, as_json.out) == (4, "")
    assert json.loads(as_json.err)["error"]["currentStatus"] == "paused"

    status = run("status", execution_id, "--json")
    assert status.code == 0 and status.json()["status"] == "paused"
    assert "paused since" in run("status", execution_id).out

    assert run("resume", execution_id).code == 0
    signalled = run("signal", execution_id, "approve", '{"by": "dana"}', "--idempotency-key", "s-1", "--json")
    assert signalled.code == 0 and signalled.json() == {"executionID": int(execution_id), "signal": "approve",
                                                        "accepted": True}  # fmt: skip

    followed = run("log", execution_id, "--follow", "--json")  # to the end: then the command ends
    events = [json.loads(line)["event"] for line in followed.out.splitlines()]
    assert followed.code == 0 and events[0] == "started" and events[-1] == "completed"
    log = run("log", execution_id, "--json")
    assert [entry["event"] for entry in log.json()["items"]] == events
    assert "signal-received" in run("log", execution_id).out

    with Client(server_url, "tok-a") as client:  # the variables, as --vars-file and --var gave them
        variables_now = (client.state(int(execution_id)).memory or {})["variables"]
    assert (variables_now["amount"], variables_now["note"], variables_now["total"]) == (20, "from the file", 40)

    finished = run("cancel", execution_id, "--reason", "too late")
    assert finished.code == 4 and "current status: completed" in finished.err


def test_start_by_version_or_process_id_and_once_per_idempotency_key(
    server_url: str, run: Run, approval_file: Path
) -> None:
    process_id = run("register", approval_file, "--json").json()["processID"]

    by_version = run("start", "approval", "--version", "1", "--var", "amount=1", "--json")
    by_id = run("start", "--process-id", str(process_id), "--var", "amount=1", "--idempotency-key", "k", "--json")
    repeat = run("start", "--process-id", str(process_id), "--var", "amount=1", "--idempotency-key", "k", "--json")
    text = run("start", "approval", "--var", "amount=1")

    assert by_version.code == 0 and by_version.json()["processID"] == process_id
    assert by_id.json()["executionID"] == repeat.json()["executionID"]
    assert text.code == 0 and text.out.startswith("started execution ") and text.out.strip().endswith("running")
    unknown_version = run("start", "approval", "--version", "9")
    assert (unknown_version.code, unknown_version.err.strip()) == (
        3,
        "procengine: error: process 'approval' has no version 9 (NOT_FOUND)",
    )
    assert run("start", "nobody").code == 3


def test_list_filters_and_pages(server_url: str, run: Run, approval_file: Path) -> None:
    run("register", approval_file)
    first = run("start", "approval", "--var", "amount=1", "--json").json()["executionID"]
    second = run("start", "approval", "--var", "amount=1", "--json").json()["executionID"]
    assert run("cancel", str(first)).code == 0

    page = run("list", "--limit", "1", "--json").json()
    rest = run("list", "--limit", "1", "--cursor", page["nextCursor"], "--json").json()
    cancelled = run("list", "--status", "cancelled", "--process-id", "1", "--json").json()
    text = run("list", "--limit", "1")

    assert [item["executionID"] for item in page["items"] + rest["items"]] == [second, first]
    assert [item["executionID"] for item in cancelled["items"]] == [first]
    assert text.code == 0 and "approval v1" in text.out and f"more: --cursor {page['nextCursor']}" in text.out


def test_list_filters_on_attributes_time_and_error_type(server_url: str, run: Run, tmp_path: Path) -> None:
    process = tmp_path / "orders.json"
    process.write_text(
        '{"key": "orders", "attributes": {"customer": "keyword", "amount": "number"}, "threads": [{"key": "main", '
        '"elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}]}'
    )
    run("register", process)
    small = run("start", "orders", "--attr", 'customer="acme"', "--attr", "amount=5", "--json").json()["executionID"]
    big = run("start", "orders", "--attr", 'customer="acme"', "--attr", "amount=500", "--json").json()["executionID"]

    acme = run("list", "--attr", "customer=acme", "--json").json()
    ranged = run("list", "--attr", "customer=acme", "--attr", "amount.gte=100", "--process-key", "orders", "--json")
    timed = run("list", "--started-after", "2000-01-01T00:00:00Z", "--started-before", "2999-01-01T00:00:00Z", "--json")
    failed = run("list", "--error-type", "Timeout", "--json").json()
    text = run("list", "--attr", "customer=acme")

    assert [item["executionID"] for item in acme["items"]] == [big, small]
    assert [item["executionID"] for item in ranged.json()["items"]] == [big]
    assert [item["executionID"] for item in timed.json()["items"]] == [big, small]
    assert failed["items"] == []
    assert text.code == 0 and "ATTRIBUTES" in text.out and "amount=500, customer=acme" in text.out
    bad = run("list", "--attr", "amount.between=1")
    assert bad.code != 0 and "--attr 'amount.between=1'" in bad.err
    ghost = run("list", "--attr", "ghost=1")
    assert ghost.code != 0 and "attr.ghost" in ghost.err


def test_watch_shows_a_bar_per_thread_and_ends_with_the_execution(server_url: str, run: Run, short_file: Path) -> None:
    run("register", short_file)
    execution_id = run("start", "short", "--json").json()["executionID"]

    watched = run("watch", str(execution_id))  # the process naps 300 ms, then completes

    assert watched.code == 0, watched.err
    lines = watched.out.splitlines()
    assert lines[0] == f"execution {execution_id}: short v1"
    assert any(line.startswith("main ") and line.rstrip().endswith("3/3 completed") for line in lines)
    assert any(line.startswith("side ") and line.rstrip().endswith("2/2 completed") for line in lines)
    assert any(line.startswith(f"execution {execution_id}") and "completed" in line for line in lines[1:])
    final = run("watch", str(execution_id), "--json")  # of an execution that has ended: its status at once
    assert final.code == 0 and final.json()["status"] == "completed"


def test_watch_of_a_failed_or_cancelled_execution_exits_1(server_url: str, run: Run, tmp_path: Path) -> None:
    failing = tmp_path / "failing.json"
    failing.write_text(json.dumps(FAILING_PROCESS))
    run("register", failing)
    execution_id = run("start", "failing", "--json").json()["executionID"]

    watched = run("watch", str(execution_id))

    assert watched.code == 1
    assert "failed" in watched.out and "boom: TaskFailed: no luck" in watched.out


def test_usage_errors_exit_2(server_url: str, run: Run, tmp_path: Path) -> None:
    cases = [
        (["status"], "the following arguments are required: ID"),
        (["status", "abc"], "not a whole number"),
        (["list", "--status", "done"], "invalid choice"),
        (["start"], "give a PROCESS_KEY or --process-id N"),
        (["start", "approval", "--var", "who=dana"], "--var who: not JSON"),
        (["start", "approval", "--var", "novalue"], "must look like NAME=JSON"),
        (["start", "approval", "--vars-file", tmp_path / "missing.yaml"], "No such file"),
        (["signal", "1", "go", "{oops"], "PAYLOAD: not JSON"),
        (["register", tmp_path / "missing.yaml"], "No such file"),
    ]
    for argv, message in cases:
        ran = run(*argv)
        assert (ran.code, message in ran.err) == (2, True), (argv, ran.err)


def test_errors_exit_1_not_found_3(server_url: str, run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("key: broken\nthreads:\n  - key: main\n    elements:\n      - {key: a, type: frobnicate}\n")

    refused = run("register", broken)
    unknown = run("status", "999")
    not_theirs = run("log", "1", "--token", "tok-b")
    no_token = run("list", "--token", "nope")
    nobody = run("list", "--url", "http://127.0.0.1:9")  # the discard port: nothing listens

    assert refused.code == 1 and "(VALIDATION_ERROR)" in refused.err and "frobnicate" in refused.err
    assert (unknown.code, unknown.err.strip()) == (3, "procengine: error: execution 999 not found (NOT_FOUND)")
    assert not_theirs.code == 3
    assert no_token.code == 1 and "unknown bearer token (UNAUTHORIZED)" in no_token.err
    assert nobody.code == 1 and "cannot reach the server at http://127.0.0.1:9" in nobody.err


def test_url_and_token_flags_win_over_the_environment(
    server_url: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCENGINE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PROCENGINE_TOKEN", "nope")
    assert run("list", "--json", "--url", server_url, "--token", "tok-b").json() == {"items": [], "nextCursor": None}


def test_the_command_s_exit_code_reaches_the_shell(server_url: str) -> None:
    env = {**os.environ, "PROCENGINE_URL": server_url, "PROCENGINE_TOKEN": "tok-a"}
    done = subprocess.run(
        [sys.executable, "-m", "procengine", "status", "12345"], env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 3 and b"execution 12345 not found" in done.stderr
