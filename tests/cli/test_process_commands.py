"""`procengine processes` against a real server (issue 23, point 4): the list (key, version, id, latest and
deprecated, counts by status), `deprecate`, `undeprecate` and `delete ID` with their exit codes (4 for a version in
use or deprecated, 3 for one that is not there, 2 for misuse)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Run

V1 = {
    "key": "cli-proc",
    "threads": [{"key": "main", "elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}],
}
V2 = {
    "key": "cli-proc",
    "threads": [{"key": "main", "elements": [{"key": "w2", "type": "wait-signal", "signal": "go"}]}],
}


def _register(run: Run, tmp_path: Path, document: dict[str, object], name: str) -> int:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    registered = run("register", path, "--json")
    assert registered.code == 0, registered.err
    return int(registered.json()["processID"])


def test_list_deprecate_and_delete(server_url: str, run: Run, tmp_path: Path) -> None:
    v1 = _register(run, tmp_path, V1, "v1")
    v2 = _register(run, tmp_path, V2, "v2")
    assert run("start", "--process-id", str(v1)).code == 0

    listed = run("processes")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split() == [
        "KEY",
        "VERSION",
        "ID",
        "STATE",
        "RUNNING",
        "PAUSED",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert lines[1].split() == ["cli-proc", "1", str(v1), "-", "1", "0", "0", "0", "0"]
    assert lines[2].split() == ["cli-proc", "2", str(v2), "latest", "0", "0", "0", "0", "0"]

    deprecated = run("processes", "deprecate", str(v2), "--reason", "bad build")
    assert deprecated.code == 0, deprecated.err
    assert "deprecated: it takes no new start" in deprecated.out
    assert run("processes").out.splitlines()[2].split()[3:5] == ["latest,", "deprecated"]
    refused = run("start", "cli-proc")
    assert refused.code == 4 and "deprecated" in refused.err
    assert run("processes", "undeprecate", str(v2)).code == 0
    assert run("processes", "--json").json()["items"][1]["deprecated"] is False

    in_use = run("processes", "delete", str(v1))
    assert in_use.code == 4 and "1 stored execution" in in_use.err
    deleted = run("processes", "delete", str(v2), "--json")
    assert deleted.code == 0, deleted.err
    assert deleted.json()["latestProcessID"] == v1
    assert run("processes", "delete", str(v2)).code == 3
    assert run("processes", "delete").code == 2
    assert run("processes", "list", str(v1)).code == 2
