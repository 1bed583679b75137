"""`procengine validate FILE`: a definition checked offline, every problem listed; no server involved."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Run

SEVERAL_PROBLEMS = """\
key: broken
threads:
  - key: main
    elements:
      - {key: a, type: frobnicate, next: b}
      - {key: b, type: task, next: nowhere}
      - {key: c, type: delay, durationMs: "soon", next: done}
      - {key: done, type: end}
"""


def test_a_valid_definition_exits_0(run: Run, short_file: Path) -> None:
    ran = run("validate", short_file)
    assert ran.code == 0
    assert ran.out.startswith(f"{short_file}: valid: process 'short', 2 threads, 5 elements")


def test_every_problem_is_listed_and_exits_1(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(SEVERAL_PROBLEMS)

    ran = run("validate", path)
    as_json = run("validate", path, "--json")

    assert ran.code == 1 and as_json.code == 1
    problems = as_json.json()["problems"]
    assert as_json.json()["valid"] is False and as_json.json()["key"] == "broken"
    assert len(problems) >= 3
    assert any(p.startswith("threads.0.elements.0.type:") and "frobnicate" in p for p in problems)
    assert any(p.startswith("threads.0.elements.1.handler:") for p in problems)
    assert any(p.startswith("threads.0.elements.2.durationMs:") for p in problems)
    assert ran.out.splitlines()[0] == f"{path}: not valid, {len(problems)} problems:"
    assert [line.removeprefix("  - ") for line in ran.out.splitlines()[1:]] == problems


def test_a_file_that_does_not_parse_is_invalid(run: Run, tmp_path: Path) -> None:
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("key: [unclosed\n")
    json_file = tmp_path / "bad.json"
    json_file.write_text(json.dumps({"key": "k"})[:-1])

    assert run("validate", yaml_file).code == 1
    ran = run("validate", json_file, "--json")
    assert ran.code == 1 and ran.json()["problems"][0].startswith(f"{json_file}: malformed JSON")
    assert run("validate", tmp_path / "missing.yaml").code == 2
