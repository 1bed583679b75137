"""`procengine start --batch FILE`: a start a line, through the batch route; an outcome a line and the exit code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from procengine.client import Client
from tests.support.cli import Run
from tests.support.processes import WAIT_PROCESS


@pytest.fixture
def registered(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        client.register(WAIT_PROCESS)


def _lines(tmp_path: Path, *starts: object) -> Path:
    path = tmp_path / "starts.jsonl"
    path.write_text("\n".join(json.dumps(start) for start in starts) + "\n\n")
    return path


def test_each_line_starts_one_with_the_command_s_defaults(
    server_url: str, registered: None, run: Run, tmp_path: Path
) -> None:
    batch = _lines(tmp_path, {"variables": {"amount": 1}}, {}, {"variables": {"note": "mine"}, "idempotencyKey": "x"})

    ran = run("start", "approval", "--batch", batch, "--var", "amount=7", "--idempotency-key", "load", "--json")
    again = run("start", "approval", "--batch", batch, "--idempotency-key", "load")

    assert ran.code == 0, ran.err
    answer = ran.json()
    assert [item["outcome"] for item in answer["items"]] == ["started"] * 3
    assert again.code == 0
    assert again.out.splitlines() == [
        *(f"line {n}: existing execution {item['executionID']}" for n, item in enumerate(answer["items"], start=1)),
        "0 started, 3 existing, 0 failed",
    ]
    with Client(server_url, "tok-a") as client:
        memories = [client.state(item["executionID"]).memory["variables"] for item in answer["items"]]
    assert [(m["amount"], m.get("note")) for m in memories] == [(1, None), (7, None), (7, "mine")]


def test_a_failed_start_is_its_line_and_exit_1(registered: None, run: Run, tmp_path: Path) -> None:
    batch = _lines(tmp_path, {}, {"processKey": "nope"})

    ran = run("start", "approval", "--batch", batch)

    assert ran.code == 1
    lines = ran.out.splitlines()
    assert lines[0].startswith("line 1: started execution ")
    assert lines[1].startswith("line 2: failed NOT_FOUND (404): ")
    assert lines[-1] == "1 started, 0 existing, 1 failed"


def test_lines_are_read_from_stdin_and_may_name_their_process(
    registered: None, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"processKey": "approval"}\n'))

    ran = run("start", "--batch", "-", "--json")

    assert ran.code == 0, ran.err
    assert ran.json()["started"] == 1


def test_a_line_that_is_not_a_start_is_a_usage_error(registered: None, run: Run, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"variables": {}}\n{"vars": 1}\n')

    ran = run("start", "approval", "--batch", path)

    assert ran.code == 2
    assert "line 2: unknown fields ['vars']" in ran.err
