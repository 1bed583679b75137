"""Every code block of README.md, examples/README.md and docs/*.md is run or checked, as a new user would copy it
(issue 19, items 1 and 2).

- `sh` and `python` blocks of the two READMEs run as written, from the repository root, in a shell whose PATH has
  no virtual environment on it (a fresh terminal): `procengine` is `.venv/bin/procengine` there. What differs from
  a user's terminal is only where the server is: a free port instead of 8080 (rewritten in the text, and
  PROCENGINE_PORT / PROCENGINE_URL for the commands that do not name it) and a data directory of the test's own
  (PROCENGINE_DATA_DIR). Blocks that need `make run` get a server started with the Makefile's own `run` command.
- `python` blocks of docs/ (walk-throughs) run the same way, against the `make run` server.
- `yaml` blocks: whole definitions pass `procengine validate`; element excerpts are elements (a key and a type).
- `json` blocks parse, excerpts (lines of a list, a member of an object) included.
- A `sh` block of docs/ whose first line is RUN_IN_DOCS's comment runs as the READMEs' do (the bulk operations
  walk-through of docs/operations.md).
- Blocks shown as transcripts or output (`text`, no language, and the `sh` transcripts of docs/, which mix
  commands and the answers they gave) are not run: `CHECKED_ELSEWHERE` says so for each, by file.

Each run has a deadline: a snippet that hangs fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from procengine.cli import main
from procengine.testing.topologies import pick_ports
from tests.support.paths import REPO

DOCUMENTS = [REPO / "README.md", REPO / "examples" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_AS_WRITTEN = {"README.md", "examples/README.md"}
VENV_BIN = ".venv/bin/"
DEADLINE_S = 120.0
FENCE = re.compile(r"^( *)```(\w*)[ \t]*$")

NOT_RUN = {
    ("README.md", "sh", "make run"): "the quick start: `make test` is this suite, `make run` is the `make_run` fixture",
}
"""Blocks of the READMEs that are not run, found by their language and first words, and why."""

CHECKED_ELSEWHERE = {
    "sh": "a transcript (commands with the answers they gave, from a particular history of ids)",
    "text": "output, a diagram or a synopsis",
    "": "output, a diagram or a synopsis",
}
"""Why a block of docs/ in this language is not run."""


@dataclass(frozen=True)
class Snippet:
    document: str
    line: int
    language: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}:{self.language or 'plain'}"


def _snippets() -> Iterator[Snippet]:
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            fence = FENCE.match(lines[index])
            if fence is None:
                index += 1
                continue
            end = index + 1
            while not re.fullmatch(rf"{fence.group(1)}```[ \t]*", lines[end]):
                end += 1
            text = textwrap.dedent("\n".join(lines[index + 1 : end])) + "\n"
            yield Snippet(path.relative_to(REPO).as_posix(), index + 1, fence.group(2), text)
            index = end + 1


SNIPPETS = list(_snippets())
RUN_IN_DOCS = "# run as written by tests/test_docs_snippets.py"
"""A block of docs/ whose first line is this comment runs as a README's do (a walk-through, not a transcript)."""


def _runs(snippet: Snippet) -> bool:
    return snippet.document in RUN_AS_WRITTEN or snippet.text.startswith(RUN_IN_DOCS)


def _of(*languages: str, run: bool) -> list[Snippet]:
    return [s for s in SNIPPETS if s.language in languages and _runs(s) == run]


# -- running them as written -------------------------------------------------------------------------------------


def _free_port() -> int:
    """A free port below the ephemeral range: one the kernel handed out (bind to 0) could be taken by another test's
    outgoing connection before the snippet's server listens on it ("address already in use")."""
    [port] = pick_ports(1)
    return port


def _venv_bin() -> str:
    """The `.venv/bin/` of the snippets: this interpreter's (make test-latest runs the suite in .venv-latest)."""
    return str(Path(sys.executable).parent) + "/"


def _fresh_shell_env(port: int, data_dir: Path) -> dict[str, str]:
    """A new terminal's environment: no virtual environment on PATH or in the environment, and where the server is."""
    venv = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p and p != venv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCENGINE_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        PATH=path,
        PROCENGINE_PORT=str(port),
        PROCENGINE_URL=f"http://127.0.0.1:{port}",
        PROCENGINE_DATA_DIR=str(data_dir),
        PROCENGINE_LOG_LEVEL="WARNING",
        COLUMNS="120",
    )
    assert shutil.which("procengine", path=path) is None, "procengine is on the PATH of a fresh shell here"
    return env


def _as_written(text: str, port: int) -> str:
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace(VENV_BIN, _venv_bin())


def _run(argv: list[str], env: dict[str, str], timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """Run a snippet in its own process group, killed whole (with any server it started) at the end."""
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"{argv[-1][:200]!r} did not end within {timeout:g} s:\n{out}")
    finally:
        _stop_group(process.pid)
    return subprocess.CompletedProcess(argv, process.returncode, out, None)


def _stop_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return


@dataclass(frozen=True)
class MakeRun:
    port: int
    data_dir: Path


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    """What `make run` starts: the Makefile's own `run` command line, on a free port and a data directory of its own."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n(?:\t.*\n)*?\t\$\(BIN\)/(procengine serve [^\n$]*)", makefile, re.M)
    assert recipe, "the Makefile's run target no longer runs $(BIN)/procengine serve"
    port, data_dir = _free_port(), tmp_path_factory.mktemp("make-run")
    env = _fresh_shell_env(port, data_dir)
    server = subprocess.Popen(
        [_venv_bin() + "procengine", *recipe.group(1).split()[1:]],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    assert server.stdout is not None
    first = server.stdout.readline()
    assert "serving on" in first, first + server.stdout.read()
    try:
        yield MakeRun(port, data_dir)
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _needs_own_server(snippet: Snippet) -> bool:
    return "procengine serve" in snippet.text


RUNNABLE = [
    s for s in _of("sh", "python", run=True)
    if not any((s.document, s.language) == (d, lang) and s.text.startswith(first) for d, lang, first in NOT_RUN)
] + _of("python", run=False)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 60)
@pytest.mark.parametrize("snippet", RUNNABLE, ids=lambda s: s.id)
def test_a_readme_snippet_runs_as_written_in_a_fresh_shell(snippet: Snippet, make_run: MakeRun, tmp_path: Path) -> None:
    if _needs_own_server(snippet):  # it starts its own server: a port and a data directory of its own
        port, data_dir = _free_port(), tmp_path / "data"
    else:
        port, data_dir = make_run.port, make_run.data_dir
    env = _fresh_shell_env(port, data_dir)
    text = _as_written(snippet.text, port)
    if snippet.language == "python":
        script = tmp_path / "first.py"  # saved, and run from the repository root (README, "Python client")
        script.write_text(text)
        ran = _run([_venv_bin() + "python", str(script)], env)
    else:
        ran = _run(["bash", "-e", "-c", text], env)

    assert ran.returncode == 0, f"{snippet.id} failed ({ran.returncode}):\n{ran.stdout}"
    for refusal in ('"success":false', "procengine: error", "command not found", "Traceback"):
        assert refusal not in ran.stdout, f"{snippet.id}:\n{ran.stdout}"


def test_every_readme_snippet_is_run_or_says_why_not() -> None:
    readme = [s for s in SNIPPETS if s.document in RUN_AS_WRITTEN]
    not_run = [s for s in readme if s.language in ("sh", "python") and s not in RUNNABLE]
    bare = [
        f"{s.id}: {line.strip()}"
        for s in readme
        if s.language == "sh"
        for line in s.text.splitlines()
        if re.match(r"\s*(ID=\$\()?procengine ", line)
    ]

    assert {s.language for s in readme} <= {"sh", "python", "yaml", "text", ""}
    assert [(s.document, s.text.split()[0:2]) for s in not_run] == [("README.md", ["make", "run"])]
    assert not bare, "a bare `procengine` is not found in a fresh shell: write .venv/bin/procengine"


# -- checking the rest -------------------------------------------------------------------------------------------


def _elements(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("snippet", _of("yaml", run=True) + _of("yaml", run=False), ids=lambda s: s.id)
def test_a_yaml_block_is_a_valid_definition_or_elements(
    snippet: Snippet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = [yaml.safe_load(snippet.text)] if not snippet.text.lstrip().startswith("{") else [
        yaml.safe_load(line) for line in snippet.text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]  # fmt: skip
    for document in documents:
        if isinstance(document, dict) and "threads" in document:
            path = tmp_path / "definition.yaml"
            path.write_text(yaml.safe_dump(document))
            code = main(["validate", str(path)])
            assert code == 0, capsys.readouterr()
        else:
            for element in _elements(document):
                assert isinstance(element, dict) and {"key", "type"} <= element.keys(), element


def _json_excerpt(text: str) -> list[object]:
    """A JSON document, or an excerpt of one: lines of a list (with their commas), or members of an object."""
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    try:
        return [json.loads("{" + text.strip().rstrip(",") + "}")]
    except ValueError:
        pass
    return [json.loads(line.strip().rstrip(",")) for line in text.splitlines() if line.strip()]


ELLIPSIS = re.compile(r",? ?\.\.\.(?=[}\]])")


@pytest.mark.parametrize("snippet", _of("json", run=True) + _of("json", run=False), ids=lambda s: s.id)
def test_a_json_block_parses(snippet: Snippet) -> None:
    assert _json_excerpt(ELLIPSIS.sub("", snippet.text))


def test_every_docs_block_is_checked_or_says_why_not() -> None:
    unchecked = {s.language for s in SNIPPETS if s.document not in RUN_AS_WRITTEN} - {"yaml", "json", "python"}

    assert unchecked <= CHECKED_ELSEWHERE.keys(), f"blocks of docs/ that nothing runs or checks: {unchecked}"
