"""The command line of the API commands (start, status, list, log, watch, pause, resume, cancel, signal, retry,
edit, register) and of `validate`, and the grouped list of every command that `procengine --help` ends with.

Only argparse is imported here: what the commands do (the client, rich) is imported when one runs, so
`procengine serve`, `inspect` and `--help` do not pay for it. Connection options on every API command:
`--url` (else PROCENGINE_URL, else http://127.0.0.1:8080) and `--token` (else PROCENGINE_TOKEN).
"""

from __future__ import annotations

import argparse
import functools
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from procengine.cli.bulk import add_bulk_arguments
from procengine.cli.inputs import positive_int
from procengine.cli.schedule import add_schedule_arguments
from procengine.cli.worker import add_worker_arguments, run_worker

__all__ = [
    "GROUPS",
    "add_commands",
    "grouped_help",
]


GROUPS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("run and inspect a server (Redis at hand)", ("serve", "inspect", "export")),
    (
        "drive executions over the REST API (--url, --token)",
        ("start", "status", "list", "log", "watch", "pause", "resume", "cancel", "signal"),
    ),
    (
        "repair an execution, same id (--reason)",
        ("retry", "edit", "skip", "complete", "fail", "move", "run-now", "policy", "migrate"),
    ),
    ("go back in an execution", ("checkpoints", "rewind", "fork", "break", "step")),
    ("definitions", ("register", "validate", "processes")),
    ("act on many executions at once", ("bulk",)),
    ("run task handlers outside the engine", ("worker",)),
    ("start executions on a schedule", ("schedule",)),
)
"""How `procengine --help` groups the commands, in this order."""

_STATUSES: Final = ("running", "paused", "completed", "failed", "cancelled")

Subcommands = argparse._SubParsersAction
"""What `add_subparsers()` gives (argparse names it with an underscore, typeshed as a generic)."""


def add_commands(commands: Subcommands[argparse.ArgumentParser]) -> None:
    """Add the API commands and `validate` to the `procengine` parser's subcommands."""
    api = _api_options()
    read = _json_option()

    def add(name: str, summary: str, description: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=summary, description=description, parents=[*parents, read])
        parser.set_defaults(run=functools.partial(_run, name))
        return parser

    start = add(
        "start",
        "start an execution of a process",
        "Start an execution of the latest version of PROCESS_KEY (or of --version N), or of --process-id N.",
        api,
    )
    start.add_argument("process_key", metavar="PROCESS_KEY", nargs="?", help="the process's key")
    start.add_argument("--process-id", metavar="N", type=positive_int, help="start this processID instead")
    start.add_argument("--version", metavar="N", type=positive_int, help="this version of PROCESS_KEY")
    start.add_argument(
        "--var", metavar="NAME=JSON", action="append", default=[], help="a variable, e.g. amount=42 (repeatable)"
    )
    start.add_argument("--vars-file", metavar="FILE", type=Path, help="variables from a JSON or YAML object")
    start.add_argument(
        "--idempotency-key",
        metavar="K",
        help="a repeat with K returns the first execution (with --batch: line N's key is K:N, unless it has one)",
    )
    start.add_argument(
        "--pause-before",
        metavar="KEY",
        action="append",
        help="a breakpoint from the start: it pauses before element KEY (repeatable; see `procengine break`)",
    )
    start.add_argument(
        "--attr",
        metavar="NAME=JSON",
        action="append",
        default=[],
        help="a search attribute the definition declares, e.g. amount=42 or customer='\"acme\"' (repeatable)",
    )
    start.add_argument(
        "--batch",
        metavar="FILE",
        help="start many: one start a line (JSON Lines; - for stdin), each an object of processKey/processID, "
        "variables (over --var/--vars-file) and idempotencyKey; 1,000 to a request",
    )

    status = add("status", "show an execution's status, progress and threads", "Show an execution's status.", api)
    _execution_id(status)

    listing = add("list", "list executions, newest first", "List the tenant's executions, newest first.", api)
    listing.add_argument("--status", choices=_STATUSES, help="only executions in this status")
    listing.add_argument("--process-id", metavar="N", type=positive_int, help="only executions of this processID")
    listing.add_argument("--limit", metavar="N", type=positive_int, help="at most N (the server's default: 50)")
    listing.add_argument("--cursor", metavar="C", help="the page after C (printed as `more: --cursor C`)")
    listing.add_argument("--process-key", metavar="KEY", help="only executions of any version of this process")
    listing.add_argument(
        "--attr",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a search attribute equals VALUE (a text: has the word), or NAME.gte=VALUE (also .gt, .lte, .lt) for a "
        "number's or time's range (repeatable: all must hold)",
    )
    listing.add_argument("--started-after", metavar="TIME", help="only executions started at or after TIME (ISO-8601)")
    listing.add_argument("--started-before", metavar="TIME", help="only executions started before TIME (ISO-8601)")
    listing.add_argument("--error-type", metavar="TYPE", help="only failed executions whose error has this type")

    log = add("log", "print an execution's audit log", "Print an execution's audit log, oldest first.", api)
    _execution_id(log)
    log.add_argument(
        "--follow", "-f", action="store_true", help="then print entries as they are written, until the execution ends"
    )

    watch = add(
        "watch",
        "show live progress bars until an execution ends",
        "Show a progress bar per thread, live, until the execution ends; then its final status. "
        "Exit 0 if it completed, 1 if it failed or was cancelled.",
        api,
    )
    _execution_id(watch)

    for name, summary, detail in (
        ("pause", "pause a running execution", "Running tasks get the server's grace period to finish."),
        ("resume", "resume a paused execution", "It goes on from its snapshot."),
        ("cancel", "cancel a running or paused execution", "It stops at once."),
    ):
        transition = add(name, summary, f"{summary[0].upper()}{summary[1:]}. {detail}", api)
        _execution_id(transition)
        transition.add_argument("--reason", metavar="R", help="written to the execution's log")

    signal = add(
        "signal",
        "deliver a signal to an execution",
        "Deliver the signal NAME with a JSON payload (none: null).",
        api,
    )
    _execution_id(signal)
    signal.add_argument("name", metavar="NAME", help="the signal's name")
    signal.add_argument("payload", metavar="PAYLOAD", nargs="?", help="the payload as JSON, e.g. '{\"ok\": true}'")
    signal.add_argument("--payload-file", metavar="FILE", type=Path, help="the payload from a JSON or YAML file")
    signal.add_argument("--idempotency-key", metavar="K", help="delivered once, however often it is sent with K")

    retry = add(
        "retry",
        "retry a failed execution from what failed",
        "Retry a failed execution, same id: it goes on from the elements that failed, their attempts reset; "
        "elements that completed do not run again. --var and --vars-file change its variables in the same write "
        "(a JSON merge patch: null removes a name).",
        api,
    )
    _execution_id(retry)
    _patch_options(retry)
    retry.add_argument("--reason", metavar="R", help="written to the execution's log")
    retry.add_argument("--idempotency-key", metavar="K", help="applied once, however often it is sent with K")
    retry.add_argument(
        "--element",
        metavar="KEY",
        help="retry only this element of a paused or failed execution's stack (attempt 1); it is paused after",
    )
    _lane_option(retry)

    edit = add(
        "edit",
        "change a paused execution's variables",
        "Change a paused execution's variables (a JSON merge patch: null removes a name, an object merges into "
        "the object it names); resume goes on with them.",
        api,
    )
    _execution_id(edit)
    _patch_options(edit)
    edit.add_argument("--reason", metavar="R", help="written to the execution's log")

    skip = add(
        "skip",
        "skip an element of a paused or failed execution",
        "Skip the element KEY of a paused or failed execution's stack: it is recorded skipped and its next element "
        "follows; --output is stored as if it had run. The execution is paused after it (resume goes on).",
        api,
    )
    _step_arguments(skip)
    skip.add_argument("--output", metavar="JSON", help="the output to store, as JSON")
    complete = add(
        "complete",
        "complete a task of a paused or failed execution",
        "Complete the task KEY of a paused or failed execution's stack as if its handler had returned --output "
        "(JSON; none: null). The execution is paused after it.",
        api,
    )
    _step_arguments(complete)
    complete.add_argument("--output", metavar="JSON", help="what the handler would have returned, as JSON")
    fail = add(
        "fail",
        "fail an element of a paused or failed execution",
        "Fail the element KEY of a paused or failed execution's stack with --error of --type: a catch clause for "
        "that type takes it (the execution is paused after it); with none, the execution ends failed.",
        api,
    )
    _step_arguments(fail)
    fail.add_argument("--error", metavar="MESSAGE", required=True, help="the error message")
    fail.add_argument("--type", metavar="TYPE", default="Error", help="the error's type, as catch clauses name it")

    move = add(
        "move",
        "put a lane of a paused or failed execution before an element",
        "Put the lane LANE (a thread's key, or a branch or iteration path) of a paused or failed execution before "
        "the element KEY of its thread or branch: it starts there, attempt 1. The execution is paused after it.",
        api,
    )
    _execution_id(move)
    move.add_argument("lane", metavar="LANE", help="the lane, e.g. main or main/each[2]")
    move.add_argument("before", metavar="KEY", help="the element it goes on from")
    move.add_argument("--reason", metavar="R", help="written to the execution's log")

    run_now = add(
        "run-now",
        "end the backoff or delay an element waits on",
        "End the retry backoff or the delay the element KEY of a running execution waits on: it goes on at once.",
        api,
    )
    _step_arguments(run_now)

    policy = add(
        "policy",
        "change a pending task's retry policy or timeout",
        "Change the pending task KEY's retry policy (--retry, JSON: maxAttempts, backoffMs, backoffMultiplier, "
        "maxBackoffMs) and/or --timeout-ms, for this run of it, on a running or paused execution.",
        api,
    )
    _step_arguments(policy)
    policy.add_argument("--retry", metavar="JSON", help='e.g. \'{"maxAttempts": 5, "backoffMs": 1000}\'')
    policy.add_argument("--timeout-ms", metavar="MS", type=positive_int, help="each attempt's timeout")

    register = add(
        "register",
        "register a definition (YAML or JSON)",
        "Register a process definition from a YAML or JSON file; an identical one answers its existing version.",
        api,
    )
    register.add_argument("file", metavar="FILE", type=Path, help="the definition (.json: JSON, else YAML)")

    processes = add(
        "processes",
        "list the definitions (versions, counts by status), or delete or deprecate a version",
        "List the tenant's definitions: each version with its processID, whether it is the latest or deprecated, "
        "and how many of its executions are in each status. `processes deprecate ID` stops new starts of a version "
        "(its executions go on; `undeprecate ID` takes it back); `processes delete ID` deletes a version that no "
        "stored execution uses (exit 4 with how many do).",
        api,
    )
    processes.add_argument(
        "verb", metavar="ACTION", nargs="?", default="list", choices=("list", "delete", "deprecate", "undeprecate"),
        help="list (the default), delete, deprecate or undeprecate",
    )  # fmt: skip
    processes.add_argument("process_id", metavar="ID", nargs="?", type=positive_int, help="the version's processID")
    processes.add_argument("--reason", metavar="R", help="why: written to the server's log with the change")

    checkpoints = add(
        "checkpoints",
        "list an execution's kept checkpoints, show one, or diff two",
        "List the execution's kept checkpoints, newest first; with SEQ, show that one (its stack and memory); "
        "with SEQ --diff OTHER, what changed from SEQ to OTHER.",
        api,
    )
    _execution_id(checkpoints)
    checkpoints.add_argument("seq", metavar="SEQ", nargs="?", type=positive_int, help="a kept checkpoint's number")
    checkpoints.add_argument("--diff", metavar="OTHER", type=positive_int, help="what changed from SEQ to OTHER")
    checkpoints.add_argument("--limit", metavar="N", type=positive_int, help="at most N (the server's default: 50)")
    checkpoints.add_argument("--cursor", metavar="C", help="the page after C (printed as `more: --cursor C`)")

    rewind = add(
        "rewind",
        "put a paused, failed or cancelled execution back to a kept checkpoint",
        "Put the execution back to its kept checkpoint SEQ (see `procengine checkpoints ID`), same id: paused "
        "there, resume goes on from it and the elements after it run again. --var and --vars-file change its "
        "variables in the same write (a JSON merge patch: null removes a name).",
        api,
    )
    _execution_id(rewind)
    rewind.add_argument("seq", metavar="SEQ", type=positive_int, help="the kept checkpoint to go back to")
    _patch_options(rewind)
    rewind.add_argument("--reason", metavar="R", help="written to the execution's log")

    migrating = add(
        "migrate",
        "move a paused or failed execution to another version of its process",
        "Move the execution to version --to-version N of its process, same id, same status: its pending elements "
        "take the elements of the same key in N, or those --map OLD=NEW names. The plan is checked first and every "
        "problem printed; --dry-run only prints the plan and its problems (exit 1 if there are any).",
        api,
    )
    _execution_id(migrating)
    migrating.add_argument("--to-version", metavar="N", type=positive_int, required=True, help="the target version")
    migrating.add_argument(
        "--map", metavar="OLD=NEW", action="append", default=[], help="element OLD takes element NEW's place"
    )
    migrating.add_argument("--dry-run", action="store_true", help="print the plan and its problems; write nothing")
    migrating.add_argument("--reason", metavar="R", help="written to the execution's log")

    forked = add(
        "fork",
        "start a new execution from a kept checkpoint of this one",
        "Start a new execution of the same process version from the execution's kept checkpoint --checkpoint SEQ "
        "(its latest if not given), running unless --paused. --var and --vars-file change its variables (a JSON "
        "merge patch). Each execution's log names the other.",
        api,
    )
    _execution_id(forked)
    forked.add_argument("--checkpoint", metavar="SEQ", type=positive_int, help="the kept checkpoint (see checkpoints)")
    forked.add_argument("--paused", action="store_true", help="start it paused there")
    _patch_options(forked)
    forked.add_argument("--reason", metavar="R", help="written to both executions' logs")

    breaks = add(
        "break",
        "set where an execution pauses before an element (breakpoints)",
        "Set the execution's breakpoints, the whole set: it pauses before each KEY in any lane that reaches it "
        "(--when KEY=CEL: only when the condition holds there); no KEY and no --when clears them. Prints the runs "
        "of those elements that had already begun (they will not stop).",
        api,
    )
    _execution_id(breaks)
    breaks.add_argument("elements", metavar="KEY", nargs="*", help="an element's key, as the definition names it")
    breaks.add_argument(
        "--when", metavar="KEY=CEL", action="append", default=[], help="pause before KEY only when CEL holds"
    )
    breaks.add_argument("--reason", metavar="R", help="written to the execution's log")

    stepper = add(
        "step",
        "run the next element of each lane of a paused execution, and pause again",
        "Step mode: the paused execution runs exactly the next element of each lane (or of --lane LANE) and "
        "pauses again; prints what ran.",
        api,
    )
    _execution_id(stepper)
    stepper.add_argument("--lane", metavar="LANE", help="only this lane (a thread, or e.g. main/each[2])")
    stepper.add_argument("--reason", metavar="R", help="written to the execution's log")

    bulk = add(
        "bulk",
        "pause, resume, cancel, signal, retry or edit many executions at once, as a job",
        "Run an action over the executions a filter matches (--status, --process-id) or over --ids, as a durable "
        "job on the server, with a progress bar until it ends; --dry-run says how many match. `bulk show|stop|go-on"
        "|abort|undo JOB` shows, pauses, resumes, cancels or undoes (a bulk pause) a job; `bulk list` lists them.",
        api,
    )
    add_bulk_arguments(bulk)

    worker = commands.add_parser(
        "worker",
        help="take tasks of queues and run their @task handlers here (docs/workers.md)",
        description="Serve task elements that name a `queue`: fetch their tasks over the REST API, run the @task "
        "handlers of --handlers modules (plain functions in a thread pool), complete or fail each. SIGTERM stops "
        "it gracefully: in-flight tasks get --grace-s to finish, the rest are released for another worker.",
    )
    add_worker_arguments(worker)
    worker.set_defaults(run=run_worker)
    schedule = add(
        "schedule",
        "create, list, show, pause, resume, trigger, update or delete schedules",
        "Schedules start a process at the times a cron expression (in a time zone) or an interval names: "
        "`schedule create --process-key KEY --cron '0 9 * * 1-5' --timezone Europe/Berlin` (or --every 5m); "
        "`schedule list`; `schedule show|pause|resume|trigger|delete ID`; `schedule update ID --every 1h`.",
        api,
    )
    add_schedule_arguments(schedule)

    validate = add(
        "validate",
        "check a definition offline, listing every problem",
        "Check a definition file without a server and list every problem. Handlers and called processes are "
        "checked when it is registered. Exit 0 if valid, 1 if not.",
    )
    validate.add_argument("file", metavar="FILE", type=Path, help="the definition (.json: JSON, else YAML)")


def grouped_help(commands: Subcommands[argparse.ArgumentParser], width: int = 100) -> str:
    """Every command with its summary, under the headings of GROUPS (commands of no group last)."""
    summaries = {action.dest: action.help or "" for action in commands._choices_actions}
    grouped = [name for _, names in GROUPS for name in names]
    groups: list[tuple[str, Sequence[str]]] = [(title, [n for n in names if n in summaries]) for title, names in GROUPS]
    rest = [name for name in summaries if name not in grouped]
    if rest:
        groups.append(("other", rest))
    column = max((len(name) for name in summaries), default=0) + 4
    blocks = []
    for title, names in groups:
        lines = [f"{title}:"]
        for name in names:
            text = textwrap.wrap(summaries[name], width - column - 2) or [""]
            lines.append(f"  {name.ljust(column)}{text[0]}")
            lines.extend(f"  {' ' * column}{more}" for more in text[1:])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\nprocengine COMMAND --help shows a command's options."


def _api_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    connection = options.add_argument_group("connection")
    connection.add_argument("--url", metavar="URL", help="the server (else PROCENGINE_URL, else http://127.0.0.1:8080)")
    connection.add_argument("--token", metavar="TOKEN", help="its bearer token (else PROCENGINE_TOKEN)")
    connection.add_argument(
        "--timeout", metavar="S", type=float, default=30.0, help="seconds a request may take (default 30)"
    )
    return options


def _json_option() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", help="print the answer's data as JSON")
    return options


def _patch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--var",
        metavar="NAME=JSON",
        action="append",
        default=[],
        help="set a variable, e.g. amount=42; amount=null removes it (repeatable)",
    )
    parser.add_argument("--vars-file", metavar="FILE", type=Path, help="a merge patch from a JSON or YAML object")


def _execution_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("execution_id", metavar="ID", type=positive_int, help="the executionID")


def _run(name: str, args: argparse.Namespace) -> int:
    from procengine.cli import actions  # lazily: the client, aiohttp and rich

    return actions.run(name, args)


def _lane_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lane", metavar="LANE", help="where the element stands when it stands in several (e.g. main/each[2])"
    )


def _step_arguments(parser: argparse.ArgumentParser) -> None:
    _execution_id(parser)
    parser.add_argument("element", metavar="KEY", help="the element's key, as the definition names it")
    _lane_option(parser)
    parser.add_argument("--reason", metavar="R", help="written to the execution's log")
