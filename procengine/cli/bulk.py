"""`procengine bulk`: one action over many executions, as a durable job on the server (node/bulk.py).

    procengine bulk pause --status running --process-id 3 --reason "maintenance" [--dry-run] [--max-per-second N]
    procengine bulk signal --ids 7,8,9 --signal approval --payload '{"ok": true}'
    procengine bulk edit --status paused --var limit=10
    procengine bulk migrate --process-id 3 --to-version 4 [--map OLD=NEW ...]
    procengine bulk show JOB | list | undo JOB | stop JOB | go-on JOB | abort JOB

An action prints a progress bar until the job ends (`--no-wait`: the job's id at once). Only argparse is imported
at the top: the client and rich come with `run_bulk`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from procengine.cli.inputs import positive_int

if TYPE_CHECKING:
    from procengine.api.bulk_views import BulkJobView
    from procengine.cli.output import Output
    from procengine.client import AsyncClient

__all__ = ["ACTIONS", "JOB_VERBS", "add_bulk_arguments", "run_bulk"]

ACTIONS: Final = {
    "pause": "pause",
    "resume": "resume",
    "cancel": "cancel",
    "signal": "signal",
    "retry": "retry",
    "edit": "edit-variables",
    "migrate": "migrate",
}
"""The command's word -> the API's action."""
JOB_VERBS: Final = ("show", "list", "undo", "stop", "go-on", "abort")
"""Words about a job: show, list, undo; stop, go-on and abort pause, resume and cancel the job itself."""
_STEER: Final = {"stop": "bulk_pause", "go-on": "bulk_resume", "abort": "bulk_cancel"}
_TEXT_FILTERS: Final = {
    "process_key": "processKey",
    "started_after": "startedAfter",
    "started_before": "startedBefore",
    "error_type": "errorType",
}
"""The filter flags that are texts -> the filter's names (the list's query parameters)."""
POLL_S: Final = 0.25
ENDED: Final = ("completed", "cancelled", "failed")


def _ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of ids like 1,2,3: {text!r}") from None
    if not ids or min(ids) < 1:
        raise argparse.ArgumentTypeError(f"not a list of ids like 1,2,3: {text!r}")
    return ids


def add_bulk_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        metavar="ACTION",
        choices=[*ACTIONS, *JOB_VERBS],
        help=f"{', '.join(ACTIONS)} (over --status/--process-id or --ids); or {', '.join(JOB_VERBS)} (a job)",
    )
    parser.add_argument("job_id", metavar="JOB", nargs="?", type=positive_int, help="the jobID (show, undo, ...)")
    parser.add_argument(
        "--status", choices=("running", "paused", "completed", "failed", "cancelled"), help="executions in it"
    )
    parser.add_argument("--process-id", metavar="N", type=positive_int, help="executions of this processID")
    parser.add_argument("--process-key", metavar="KEY", help="executions of any version of this process")
    parser.add_argument(
        "--attr",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a search attribute equals VALUE, or NAME.gte=VALUE (.gt, .lte, .lt); as `list --attr` (repeatable)",
    )
    parser.add_argument("--started-after", metavar="TIME", help="executions started at or after TIME (ISO-8601)")
    parser.add_argument("--started-before", metavar="TIME", help="executions started before TIME (ISO-8601)")
    parser.add_argument("--error-type", metavar="TYPE", help="failed executions whose error has this type")
    parser.add_argument("--ids", metavar="1,2,3", type=_ids, help="these executions instead of a filter")
    parser.add_argument("--dry-run", action="store_true", help="how many match and a sample; nothing is touched")
    parser.add_argument("--max-per-second", metavar="N", type=positive_int, help="at most N executions a second")
    parser.add_argument("--reason", metavar="R", help="written to each execution's log")
    parser.add_argument("--signal", metavar="NAME", help="the signal's name (signal)")
    parser.add_argument("--payload", metavar="JSON", help="the signal's payload (signal)")
    parser.add_argument(
        "--var", metavar="NAME=JSON", action="append", default=[], help="merge patch of variables (edit, retry)"
    )
    parser.add_argument("--to-version", metavar="N", type=positive_int, help="the version to migrate to (migrate)")
    parser.add_argument(
        "--map", metavar="OLD=NEW", action="append", default=[], help="element OLD takes element NEW's place (migrate)"
    )
    parser.add_argument("--vars-file", metavar="FILE", type=Path, help="a merge patch from a JSON or YAML object")
    parser.add_argument("--no-wait", action="store_true", help="print the job's id and return at once")


async def run_bulk(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    from procengine.api.bulk_views import BulkDryRun
    from procengine.cli.exit_codes import EXIT_FAILED, EXIT_OK
    from procengine.cli.inputs import InputError, parse_attribute_filters, parse_json, parse_mapping, parse_variables

    if args.what in JOB_VERBS:
        return await _about_job(client, args, output)
    if args.job_id is not None:
        raise InputError(f"bulk {args.what}: takes no JOB (a filter: --status, --process-id; or --ids)")
    wanted: dict[str, Any] = {}
    if args.status is not None:
        wanted["status"] = args.status
    if args.process_id is not None:
        wanted["processID"] = args.process_id
    for flag, name in _TEXT_FILTERS.items():
        if getattr(args, flag) is not None:
            wanted[name] = getattr(args, flag)
    for name, value in parse_attribute_filters(args.attr).items():
        ranges = value if isinstance(value, dict) else {"": value}
        wanted.update({f"attr.{name}" + (f".{op}" if op else ""): given for op, given in ranges.items()})
    if args.ids is None and not wanted:
        raise InputError(f"bulk {args.what}: say which executions: a filter (--status, --attr, ...), or --ids")
    patch = parse_variables(args.var, args.vars_file) if args.var or args.vars_file else None
    answer = await client.bulk(
        ACTIONS[args.what],
        filter=None if args.ids is not None else wanted,
        ids=args.ids,
        reason=args.reason,
        dry_run=args.dry_run,
        max_per_second=args.max_per_second,
        signal=args.signal,
        payload=None if args.payload is None else parse_json(args.payload, "--payload"),
        variables=patch,
        version=args.to_version,
        mapping=parse_mapping(args.map, "bulk migrate") or None,
    )
    if isinstance(answer, BulkDryRun):
        sample = ", ".join(str(i) for i in answer.sample)
        output.show(answer, f"dry run: {args.what} would act on {answer.matched} executions (first: {sample or '-'})")
        return EXIT_OK
    if args.no_wait:
        output.show(answer, f"bulk {args.what}: job {answer.jobID} over {answer.matched} executions")
        return EXIT_OK
    job = await _follow(client, answer.jobID, output)
    output.show(job, _summary(job))
    return EXIT_OK if job.status == "completed" and not job.failed else EXIT_FAILED


async def _about_job(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    from procengine.cli.exit_codes import EXIT_OK
    from procengine.cli.inputs import InputError

    if args.what == "list":
        page = await client.bulk_jobs()
        lines = [_summary(job) for job in page.items] or ["no bulk operations"]
        output.show(page, "\n".join(lines))
        return EXIT_OK
    if args.job_id is None:
        raise InputError(f"bulk {args.what}: which job? (procengine bulk {args.what} JOB)")
    if args.what == "show":
        job = await client.bulk_job(args.job_id)
    elif args.what == "undo":
        created = await client.bulk_undo(args.job_id, args.reason)
        job = await _follow(client, created.jobID, output) if not args.no_wait else await client.bulk_job(created.jobID)
    else:
        job = await getattr(client, _STEER[args.what])(args.job_id, args.reason)
    output.show(job, _summary(job))
    return EXIT_OK


async def _follow(client: AsyncClient, job_id: int, output: Output) -> BulkJobView:
    """Read the job until it ends, with a progress bar on stderr (none with --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    job = await client.bulk_job(job_id)
    if output.as_json:
        while job.status not in ENDED:
            await asyncio.sleep(POLL_S)
            job = await client.bulk_job(job_id)
        return job
    columns = (TextColumn(f"job {job_id} {job.action}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        bar = progress.add_task(job.action, total=job.matched or 1)
        while True:
            progress.update(bar, completed=job.done + job.failed + sum(job.refused.values()))
            if job.status in ENDED:
                return job
            await asyncio.sleep(POLL_S)
            job = await client.bulk_job(job_id)


def _summary(job: BulkJobView) -> str:
    refused = sum(job.refused.values())
    line = (
        f"job {job.jobID}: {job.action} {job.status}: {job.done} done, {refused} refused, {job.failed} failed "
        f"of {job.matched}"
    )
    reasons = [f"  refused ({count}): {reason}" for reason, count in sorted(job.refused.items())]
    return "\n".join([line, *reasons])
