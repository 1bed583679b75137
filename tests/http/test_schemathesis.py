"""Schemathesis against a real server: every operation of the OpenAPI document the server serves, every check,
and the stateful phase that follows the document's links from a start to the control routes.

Run once without tokens (tenant `default`, no security in the document) and once with tokens (the document
has the bearer scheme and the 401s; schemathesis sends a tenant's token and checks that a request without
one is refused). Bounded in `make test`; `make fuzz` (FUZZ_LONG=1) runs ten times as many examples with a
fresh seed. Each run prints a line with its counts (cases generated, failures by check, errors, failures the
hooks dropped): see it with `pytest -s` or `-rA`; with FUZZ_REPORT_DIR set, the JSON report and the output of
each run are kept there too.

Schemathesis runs as its own process (its CLI, with a JSON report), so the server under test in this one and
the generator in that one use both cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Final

import pytest

from procengine.settings import Settings
from tests.support.api import BASE, TOKENS
from tests.support.live_server import live_server
from tests.support.processes import SHORT_PROCESS_YAML, WAIT_PROCESS

pytestmark = pytest.mark.fuzz

LONG: Final = os.environ.get("FUZZ_LONG") == "1"
MAX_EXAMPLES: Final = 100 if LONG else 10
TIMEOUT_S: Final = 3600 if LONG else 120
SEED: Final = None if LONG else 20261201
"""A fixed seed in `make test`, so that a red run can be replayed; a fresh one in `make fuzz`."""
TOKEN: Final = "tok-a"
HOOKS: Final = Path(__file__).with_name("schemathesis_hooks.py")
"""The one failure this API refuses on purpose, dropped narrowly (see the module)."""

# Operation-level settings. Each exclusion names one check (or phase) for one operation and says why.
CONFIG: Final = """
# Hypothesis's own health check that generating data is slow (a definition takes a second or two, see BOUNDED):
# a warning about the generator, not a check of the API.
suppress-health-check = ["too_slow"]

# The event streams are long-lived: schemathesis reads one until its first event or its request timeout, and
# judges what came. A retry covers a slow first byte on a loaded machine.
[[operations]]
include-operation-id = ["execution_events", "status_events"]
request-timeout = 0.5
max-stream-events = 1
request-retries = 2

# A definition is checked beyond what a JSON schema can say: its graph (a `next` to a missing element, an
# unreachable element, a cycle with no way out), its CEL expressions and its handler names (docs/api.md,
# "Process definitions"). So a definition the schema allows may still be refused with 422, which lists those
# problems: for this one operation, 422 is an answer positive_data_acceptance accepts.
[[operations]]
include-operation-id = "register_process"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 422, 429, "5xx"]

# A bulk operation's body is checked beyond its schema too: exactly one of `filter` and `ids`, the fields each
# action takes (`signal` for a signal, `variables` for edit-variables), the filter's own names and values
# (docs/api.md, "Bulk operations"), all listed in one 422.
[[operations]]
include-operation-id = "create_bulk_operation"
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 404, 409, 422, 429]

# A task fetch is a long poll: on an empty queue it answers after `waitMs` (up to 60 s).
[[operations]]
include-operation-id = "fetch_tasks"
request-timeout = 65
# A schedule is checked beyond its schema too: its cron expression, its time zone, exactly one of `cron` and
# `every`, its durations and times, the process it names (docs/schedules.md), all listed in one 422.
[[operations]]
include-operation-id = ["create_schedule", "update_schedule"]
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 404, 409, 422, 429]
"""

BOUNDED: Final = """
# The definition schema is big and recursive (eleven element types, for-each bodies of elements): its coverage
# phase is about 13,500 registrations and a generated definition takes hypothesis a second or two. `make fuzz`
# runs all of it; `make test` a few fuzzed definitions.
[[operations]]
include-operation-id = "register_process"
phases.coverage.enabled = false
phases.stateful.enabled = false
generation.max-examples = 3

# A generated fetch waits up to its waitMs (60 s) on the empty queue: `make fuzz` runs it, `make test` does not
# (tests/http/test_task_routes.py and tests/actors/test_external_tasks.py hold it).
[[operations]]
include-operation-id = "fetch_tasks"
enabled = false
"""


def _register(url: str, token: str | None) -> None:
    """The processes the generated starts can name: `approval` waits for a signal, `short` ends by itself."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for body, content_type in (
        (json.dumps(WAIT_PROCESS).encode(), "application/json"),
        (SHORT_PROCESS_YAML.encode(), "application/yaml"),
    ):
        request = urllib.request.Request(
            f"{url}{BASE}/processes", data=body, method="POST", headers={"Content-Type": content_type, **headers}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201)


def _run_schemathesis(url: str, token: str | None, work: Path) -> dict[str, Any]:
    config = f"hooks = {json.dumps(str(HOOKS))}\n" + CONFIG + ("" if LONG else BOUNDED)
    if token:
        config += f'\n[auth.openapi.bearerAuth]\nbearer = "{token}"\n'
    (work / "schemathesis.toml").write_text(config)
    report = work / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--no-color",
        "--config-file", str(work / "schemathesis.toml"),
        "run", f"{url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    if SEED is not None:
        command += ["--seed", str(SEED)]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=TIMEOUT_S - 10)
    (work / "output.txt").write_text(done.stdout + done.stderr)
    keep = os.environ.get("FUZZ_REPORT_DIR")
    if keep and report.exists():
        name = "tokens" if token else "no-tokens"
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"schemathesis-{name}.json").write_bytes(report.read_bytes())
        (Path(keep) / f"schemathesis-{name}.txt").write_text(done.stdout + done.stderr)
    assert report.exists(), done.stdout[-5000:] + done.stderr[-5000:]
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = done.stdout
    return result


def _readable(output: str) -> str:
    """The run's output with each line cut to 400 characters: a generated body of megabytes (a batch's reproduction
    command) must not push the failing response's status and body out of what CI shows."""
    cut = (line if len(line) <= 400 else f"{line[:400]} [... {len(line) - 400} more]" for line in output.splitlines())
    return "\n".join(cut)[-20000:]


def _summary(name: str, result: dict[str, Any]) -> str:
    cases = result["test_cases"]
    failures = ", ".join(f"{f['code']} {f['title']} x{f['count']}" for f in result["failures"]) or "none"
    errors = ", ".join(f"{e['title']} x{e['count']}" for e in result["errors"]) or "none"
    return (
        f"schemathesis [{name}]: {cases['generated']} cases generated, failures: {failures}; errors: {errors}; "
        f"dropped by schemathesis_hooks.filter_failure: {result['filtered']}; "
        f"{result['running_time']:.1f}s, seed {result['seed']}, max-examples {MAX_EXAMPLES}"
    )


@pytest.mark.timeout(TIMEOUT_S)
@pytest.mark.parametrize("tokens", [False, True], ids=["no-tokens", "tokens"])
def test_schemathesis_finds_nothing(settings: Settings, tmp_path: Path, tokens: bool) -> None:
    # given a real server on the suite's Redis, with two processes registered
    if tokens:
        settings = settings.model_copy(update={"api_tokens": TOKENS})
    token = TOKEN if tokens else None
    with live_server(settings) as url:
        _register(url, token)

        # when schemathesis runs every phase with every check
        result = _run_schemathesis(url, token, tmp_path)

    # then no check fails and nothing errs
    summary = _summary("tokens" if tokens else "no-tokens", result)
    print(summary)
    assert not result["failures"] and not result["errors"], summary + "\n" + _readable(result["output"])
    assert result["exit_code"] == 0, summary + "\n" + _readable(result["output"])


class _Failure:
    def __init__(self, code: str) -> None:
        self.code = code


class _Case:
    def __init__(self, body: Any) -> None:
        self.body = body


class _Response:
    def __init__(self, status_code: int, details: list[str]) -> None:
        self.status_code = status_code
        self.content = json.dumps({"success": False, "error": {"code": "VALIDATION_ERROR", "details": details}})


@pytest.mark.parametrize(
    ("body", "details", "kept"),
    [
        ({"processID": 141.0}, ["processID: Input should be a valid integer"], False),
        ({"a": [{"b": 2.0}]}, ["a.0.b: Input should be a valid integer"], False),
        ({"processID": 141.5}, ["processID: Input should be a valid integer"], True),
        ({"processID": "141"}, ["processID: Input should be a valid integer"], True),
        ({"processID": 141.0, "x": 1}, ["processID: Input should be a valid integer", "x: Extra inputs"], True),
        ({"processKey": None}, ["give processID or processKey"], True),
    ],
    ids=["integral-float", "nested-integral-float", "fraction", "string", "and-another-problem", "another-problem"],
)
def test_the_hook_drops_only_a_refused_integral_float(body: Any, details: list[str], kept: bool) -> None:
    from tests.http.schemathesis_hooks import filter_failure

    assert filter_failure(None, _Failure("ST202"), _Case(body), _Response(422, details)) is kept
    assert filter_failure(None, _Failure("ST201"), _Case(body), _Response(422, details)) is True
