"""`make bench ARGS=--peers` is optional: without the peers' environment its entry point skips every peer cleanly,
and neither `make test` nor `make bench` needs any peer installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.peers.__main__ import PEERS, main
from tests.support.paths import REPO


def test_without_the_peers_environment_every_peer_is_skipped_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"

    assert main(["--venv", str(tmp_path / "absent"), "--out", str(out)]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        *(f"skip {name}: no peers' environment at {tmp_path / 'absent'} (`make bench ARGS=--peers` creates it)"
          for name in PEERS),
        "peers: nothing to compare",
    ]  # fmt: skip
    assert not out.exists()


def test_the_entry_point_imports_no_peer_and_no_procengine() -> None:
    probe = (
        "import sys, bench.peers.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('procengine', 'restate', 'temporalio', 'dbos', 'SpiffWorkflow')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"


def test_make_bench_without_peers_runs_the_suite_and_with_peers_the_comparison() -> None:
    def dry_run(args: str) -> str:
        return subprocess.run(
            ["make", "-n", "bench", f"ARGS={args}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout

    assert "-m bench --quick" in dry_run("--quick") and "peers" not in dry_run("--quick")
    with_peers = dry_run("--peers --quick")
    assert "peers-env" in with_peers and "-m bench.peers --quick" in with_peers
