"""`procengine list` shows every id and every status whole (issue 19, item 4): on a terminal of any usual width the
id, status and parent columns are never cut, and piped it is plain text, complete whatever COLUMNS says."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from procengine.api.views import ExecutionList
from procengine.cli import render
from tests.support.cli import Run
from tests.support.processes import WAIT_PROCESS

ROWS = [(12345, "cancelled", None), (12344, "completed", 7), (12343, "running", None)]
PAGE = ExecutionList.model_validate(
    {
        "items": [
            {
                "executionID": execution_id,
                "processID": 1,
                "processKey": "order-fulfilment",
                "processVersion": 12,
                "status": status,
                "startedAt": "2026-11-29T04:27:31.401Z",
                "stoppedAt": None if status == "running" else "2026-11-29T04:27:33.717Z",
                "parentExecutionID": parent,
            }
            for execution_id, status, parent in ROWS
        ],
        "nextCursor": "12343",
    }
)
ANSI = re.compile(r"\x1b\[")


def _on_terminal(width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, highlight=False, markup=False, soft_wrap=True)
    console.print(render.executions(PAGE))
    return re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())


@pytest.mark.parametrize("width", [160, 80, 60])
def test_on_a_terminal_the_id_status_and_parent_are_never_cut(width: int) -> None:
    text = _on_terminal(width)

    assert "…" not in text
    assert re.search(r"^12345 +\S.* cancelled ", text, re.M), text
    assert re.search(r"^12344 +\S.* completed .* 7 *$", text, re.M), text
    assert re.search(r"^12343 +\S.* running ", text, re.M), text
    assert all(len(line) <= width for line in text.splitlines())


def test_on_a_wide_terminal_each_execution_is_one_line_with_its_times() -> None:
    rows = [line for line in _on_terminal(160).splitlines() if line[:1].isdigit()]

    assert len(rows) == 3 and "2026-11-29 04:27:31.401Z  2026-11-29 04:27:33.717Z" in rows[0]


def test_piped_the_list_is_plain_and_complete_whatever_the_width(
    server_url: str, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "approval.json"
    path.write_text(json.dumps(WAIT_PROCESS))
    run("register", path)
    ids = [run("start", "approval", "--var", "amount=1", "--json").json()["executionID"] for _ in range(2)]
    assert run("cancel", str(ids[0])).code == 0
    monkeypatch.setenv("COLUMNS", "40")  # what a narrow terminal's shell passes on to a pipe

    listed = run("list")
    lines = listed.out.splitlines()

    assert listed.code == 0 and not ANSI.search(listed.out) and "…" not in listed.out
    assert lines[0].split() == ["ID", "PROCESS", "STATUS", "STARTED", "STOPPED", "PARENT"]
    fields = [line.split() for line in lines[1:]]
    assert [(int(f[0]), f[1], f[2], f[3]) for f in fields] == [
        (ids[1], "approval", "v1", "running"),
        (ids[0], "approval", "v1", "cancelled"),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", f[4]) for f in fields), lines
    assert all(line == line.rstrip() for line in lines)
