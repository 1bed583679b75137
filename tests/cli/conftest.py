"""Fixtures of the CLI's tests: a real server in a thread, found through PROCENGINE_URL and PROCENGINE_TOKEN,
and `run`, which runs `procengine ...` in this process and gives its exit code and output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from procengine.cli import main
from procengine.settings import Settings
from tests.support.cli import Ran, Run
from tests.support.live_server import live_server, tenant_settings
from tests.support.processes import SHORT_PROCESS_YAML


@pytest.fixture
def server_url(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real server with two tenants' tokens; the commands find it (as tenant-a) in the environment."""
    with live_server(tenant_settings(settings)) as url:
        monkeypatch.setenv("PROCENGINE_URL", url)
        monkeypatch.setenv("PROCENGINE_TOKEN", "tok-a")
        monkeypatch.setenv("COLUMNS", "160")  # rich's width when stdout is not a terminal
        yield url


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: str | Path) -> Ran:
        capsys.readouterr()
        code = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@pytest.fixture
def short_file(tmp_path: Path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT_PROCESS_YAML)
    return path
