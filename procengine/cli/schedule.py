"""`procengine schedule`: starts of a process at the times a cron expression or an interval names (node/schedules.py).

    procengine schedule create --process-key KEY (--cron "0 9 * * 1-5" [--timezone Europe/Berlin] | --every 5m)
        [--var NAME=JSON ...] [--overlap skip|buffer-one|allow|cancel-previous] [--catchup none|latest|all]
        [--catchup-window 1h] [--start-at TIME] [--end-at TIME] [--version N] [--paused]
    procengine schedule list | show ID | pause ID | resume ID | trigger ID | delete ID [--reason R]
    procengine schedule update ID [--cron ... | --every ...] [--timezone ...] [--overlap ...] ...

Only argparse is imported at the top: the client comes with `run_schedule`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from procengine.cli.inputs import positive_int

if TYPE_CHECKING:
    from procengine.api.schedule_views import ScheduleView
    from procengine.cli.output import Output
    from procengine.client import AsyncClient

__all__ = ["VERBS", "add_schedule_arguments", "run_schedule"]

VERBS: Final = ("create", "list", "show", "pause", "resume", "trigger", "update", "delete")
_SPEC_FLAGS: Final = (
    "cron", "every", "timezone", "overlap", "catchup", "catchup_window", "start_at", "end_at", "version",
)  # fmt: skip


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", metavar="VERB", choices=VERBS, help=", ".join(VERBS))
    parser.add_argument("schedule_id", metavar="ID", nargs="?", type=positive_int, help="the scheduleID")
    parser.add_argument("--process-key", metavar="KEY", help="the process it starts (create)")
    parser.add_argument("--version", metavar="N", type=positive_int, help="this version (default: the latest)")
    parser.add_argument("--cron", metavar="EXPR", help='five fields: minute hour day month weekday ("0 9 * * 1-5")')
    parser.add_argument("--every", metavar="DURATION", help="an interval: 30s, 5m, 12h, 1d")
    parser.add_argument("--timezone", metavar="ZONE", help="the cron's IANA time zone (default UTC)")
    parser.add_argument("--var", metavar="NAME=JSON", action="append", default=[], help="a start variable")
    parser.add_argument("--vars-file", metavar="FILE", type=Path, help="start variables from a JSON or YAML object")
    parser.add_argument("--overlap", choices=("skip", "buffer-one", "allow", "cancel-previous"))
    parser.add_argument("--catchup", choices=("none", "latest", "all"), help="after downtime (default none)")
    parser.add_argument("--catchup-window", metavar="DURATION", help="how far back catch-up reaches (default 1h)")
    parser.add_argument("--start-at", metavar="TIME", help="no firing before TIME (ISO-8601)")
    parser.add_argument("--end-at", metavar="TIME", help="no firing after TIME (ISO-8601)")
    parser.add_argument("--name", metavar="NAME", help="a label (create)")
    parser.add_argument("--paused", action="store_true", help="create it paused")
    parser.add_argument("--reason", metavar="R", help="why (written to the server's audit log)")


async def run_schedule(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    from procengine.cli.exit_codes import EXIT_OK
    from procengine.cli.inputs import InputError, parse_variables

    verb = args.verb
    spec: dict[str, Any] = {flag: getattr(args, flag) for flag in _SPEC_FLAGS if getattr(args, flag) is not None}
    if args.var or args.vars_file:
        spec["variables"] = parse_variables(args.var, args.vars_file)
    if verb == "list":
        page = await client.schedules()
        output.show(page, "\n".join(_line(s) for s in page.items) or "no schedules")
        return EXIT_OK
    if verb == "create":
        if args.process_key is None:
            raise InputError("schedule create: which process? (--process-key KEY)")
        created = await client.create_schedule(
            args.process_key, name=args.name, paused=args.paused, reason=args.reason, **spec
        )
        view = await client.schedule(created.scheduleID)
        output.show(view, _detail(view))
        return EXIT_OK
    if args.schedule_id is None:
        raise InputError(f"schedule {verb}: which schedule? (procengine schedule {verb} ID)")
    target = args.schedule_id
    if verb == "show":
        view = await client.schedule(target)
    elif verb == "update":
        if not spec:
            raise InputError("schedule update: say what changes (--cron, --every, --timezone, --overlap, ...)")
        view = await client.update_schedule(target, reason=args.reason, **spec)
    elif verb == "trigger":
        triggered = await client.trigger_schedule(target, args.reason)
        output.show(triggered, f"schedule {target}: fired by hand at {triggered.fireTime} (see `schedule show`)")
        return EXIT_OK
    elif verb == "delete":
        deleted = await client.delete_schedule(target, args.reason)
        output.show(deleted, f"schedule {target} deleted")
        return EXIT_OK
    else:
        view = await getattr(client, f"{verb}_schedule")(target, args.reason)
    output.show(view, _detail(view))
    return EXIT_OK


def _when(view: ScheduleView) -> str:
    return f"cron {view.cron!r} {view.timezone}" if view.cron else f"every {view.every}"


def _line(view: ScheduleView) -> str:
    upcoming = view.nextFireTimes[0] if view.nextFireTimes else "-"
    return f"{view.scheduleID}  {view.processKey}  {_when(view)}  {view.state}  next {upcoming}"


def _detail(view: ScheduleView) -> str:
    lines = [
        f"schedule {view.scheduleID}: {view.processKey}"
        + (f" v{view.version}" if view.version else "")
        + f", {_when(view)}, {view.state}",
        f"  overlap {view.overlap}, catchup {view.catchup} (window {view.catchupWindow})",
        "  next: " + (", ".join(view.nextFireTimes) or "-"),
    ]
    for outcome in view.lastOutcomes:
        started = f" execution {outcome.executionID}" if outcome.executionID else ""
        why = f": {outcome.reason}" if outcome.reason else ""
        manual = " (by hand)" if outcome.manual else ""
        lines.append(f"  {outcome.fireTime} {outcome.result}{started}{manual}{why}")
    return "\n".join(lines)
