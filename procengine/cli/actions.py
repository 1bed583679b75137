"""What the API commands and `validate` do, once `commands.py` has parsed their command line.

Each API command is a coroutine over an `AsyncClient` that prints the answer and says the exit code. The
client's exceptions become exit codes here, in one place: 3 for NotFound, 4 for a conflict (409), 1 for
every other error; a command-line value that cannot be used is a usage error, 2, like argparse's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, cast

from procengine.api.views import StatusName
from procengine.cli import render
from procengine.cli import render_processes as shown
from procengine.cli.bulk import run_bulk
from procengine.cli.exit_codes import EXIT_CONFLICT, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from procengine.cli.inputs import (
    DocumentError,
    InputError,
    load_document,
    parse_attribute_filters,
    parse_attributes,
    parse_batch,
    parse_json,
    parse_mapping,
    parse_variables,
    read_file,
)
from procengine.cli.output import Output
from procengine.cli.schedule import run_schedule
from procengine.cli.watch import watch
from procengine.client import AsyncClient, Conflict, NotFound, ProcEngineClientError

__all__ = ["exit_code", "run"]

ApiCommand = Callable[[AsyncClient, argparse.Namespace, Output], Awaitable[int]]


def run(name: str, args: argparse.Namespace) -> int:
    """Run the command `name` with its parsed arguments; its exit code."""
    output = Output(args.json)
    try:
        if name == "validate":
            return validate(args, output)
        return asyncio.run(_over_api(API_COMMANDS[name], args, output))
    except InputError as exc:
        output.fail(str(exc))
        return EXIT_USAGE
    except ProcEngineClientError as exc:
        output.error(exc)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the reader has gone, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def exit_code(exc: ProcEngineClientError) -> int:
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, Conflict):
        return EXIT_CONFLICT
    return EXIT_FAILED


async def _over_api(command: ApiCommand, args: argparse.Namespace, output: Output) -> int:
    async with AsyncClient(args.url, args.token, timeout=args.timeout) as client:
        return await command(client, args, output)


# --- the API commands -------------------------------------------------------------------------------


async def start(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if (args.process_key is None) == (args.process_id is None) and not (args.batch and args.process_id is None):
        raise InputError("start: give a PROCESS_KEY or --process-id N (one of them)")
    if args.version is not None and args.process_key is None:
        raise InputError("start: --version goes with a PROCESS_KEY")
    variables = parse_variables(args.var, args.vars_file)
    key, process_id = args.process_key, args.process_id
    if args.version is not None:
        key, process_id = None, await _process_id_of(client, args.process_key, args.version)
    if args.batch is not None:
        return await _start_many(client, args, output, variables, key, process_id)
    result = await client.start(
        key,
        process_id=process_id,
        variables=variables,
        idempotency_key=args.idempotency_key,
        pause_before=args.pause_before,
        attributes=parse_attributes(args.attr),
    )
    output.show(result, render.started(result))
    return EXIT_OK


async def _start_many(
    client: AsyncClient,
    args: argparse.Namespace,
    output: Output,
    variables: dict[str, Any],
    process_key: str | None,
    process_id: int | None,
) -> int:
    """`start --batch FILE`: every line a start, the command's process, variables and key their defaults; exit 1
    if any start failed."""
    text = sys.stdin.read() if args.batch == "-" else read_file(Path(args.batch), "--batch").decode(errors="replace")
    lines = parse_batch(text, "--batch" if args.batch == "-" else f"--batch {args.batch}")
    starts = []
    for number, line in lines:
        start = {**line, "variables": {**variables, **line.get("variables", {})}}
        if args.idempotency_key is not None and "idempotencyKey" not in line:
            start["idempotencyKey"] = f"{args.idempotency_key}:{number}"
        if "processKey" not in line and "processID" not in line and process_key is None and process_id is None:
            raise InputError(f"--batch line {number}: names no process, and neither does the command")
        starts.append(start)
    result = await client.start_many(starts, process_key=process_key, process_id=process_id)
    output.show(result, render.started_many(result, [number for number, _ in lines]))
    return EXIT_FAILED if result.failed else EXIT_OK


async def status(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    view = await client.status(args.execution_id)
    output.show(view, render.status(view))
    return EXIT_OK


async def list_executions(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    page = await client.executions(
        status=cast(StatusName | None, args.status),
        process_id=args.process_id,
        limit=args.limit,
        cursor=args.cursor,
        process_key=args.process_key,
        started_after=args.started_after,
        started_before=args.started_before,
        error_type=args.error_type,
        attributes=parse_attribute_filters(args.attr),
    )
    output.show(page, render.executions(page, plain=not output.console.is_terminal))
    return EXIT_OK


async def log(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if not args.follow:
        view = await client.log(args.execution_id)
        if output.as_json:
            output.json(view)
        for entry in [] if output.as_json else view.items:
            output.console.print(render.log_line(entry))
        return EXIT_OK
    async with contextlib.aclosing(client.events(args.execution_id)) as entries:
        async for entry in entries:  # one JSON document a line with --json: a stream has no end to wait for
            if output.as_json:
                output.json(entry, indent=None)
            else:
                output.console.print(render.log_line(entry))
    return EXIT_OK


async def watch_execution(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    outcome = await watch(client, args.execution_id, output)
    return EXIT_OK if outcome == "completed" else EXIT_FAILED


async def pause(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.pause(args.execution_id, args.reason)
    output.show(result, render.paused(result))
    return EXIT_OK


async def resume(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.resume(args.execution_id, args.reason)
    output.show(result, render.resumed(result))
    return EXIT_OK


async def cancel(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.cancel(args.execution_id, args.reason)
    output.show(result, render.cancelled(result))
    return EXIT_OK


async def signal(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if args.payload is not None and args.payload_file is not None:
        raise InputError("signal: give the PAYLOAD or --payload-file, not both")
    payload: Any = None
    if args.payload is not None:
        payload = parse_json(args.payload, "PAYLOAD")
    elif args.payload_file is not None:
        try:
            payload = load_document(args.payload_file, read_file(args.payload_file, "--payload-file"))
        except DocumentError as exc:
            raise InputError(f"--payload-file {exc}") from None
    result = await client.signal(args.execution_id, args.name, payload, idempotency_key=args.idempotency_key)
    output.show(result, render.signalled(result))
    return EXIT_OK


async def retry(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if args.element is not None:
        if args.var or args.vars_file or args.idempotency_key:
            raise InputError("retry --element: --var, --vars-file and --idempotency-key apply to a whole retry only")
        stepped = await client.retry_element(args.execution_id, args.element, lane=args.lane, reason=args.reason)
        output.show(stepped, render.stepped(stepped))
        return EXIT_OK
    if args.lane is not None:
        raise InputError("retry: --lane goes with --element")
    patch = parse_variables(args.var, args.vars_file) if args.var or args.vars_file else None
    result = await client.retry(
        args.execution_id, variables=patch, reason=args.reason, idempotency_key=args.idempotency_key
    )
    output.show(result, render.retried(result))
    return EXIT_OK


async def edit(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if not args.var and args.vars_file is None:
        raise InputError("edit: give at least one --var NAME=JSON or --vars-file FILE")
    result = await client.edit_variables(
        args.execution_id, parse_variables(args.var, args.vars_file), reason=args.reason
    )
    output.show(result, render.edited(result))
    return EXIT_OK


async def skip(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    given = {} if args.output is None else {"output": parse_json(args.output, "--output")}
    result = await client.skip(args.execution_id, args.element, lane=args.lane, reason=args.reason, **given)
    output.show(result, render.stepped(result))
    return EXIT_OK


async def complete(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    value = None if args.output is None else parse_json(args.output, "--output")
    result = await client.complete(args.execution_id, args.element, value, lane=args.lane, reason=args.reason)
    output.show(result, render.stepped(result))
    return EXIT_OK


async def fail(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.fail(
        args.execution_id, args.element, args.error, type=args.type, lane=args.lane, reason=args.reason
    )
    output.show(result, render.stepped(result))
    return EXIT_OK


async def change_policy(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if args.retry is None and args.timeout_ms is None:
        raise InputError("policy: give --retry JSON and/or --timeout-ms MS")
    retry = None if args.retry is None else parse_json(args.retry, "--retry")
    if retry is not None and not isinstance(retry, dict):
        raise InputError("policy: --retry must be a JSON object")
    result = await client.change_policy(
        args.execution_id, args.element, retry=retry, timeout_ms=args.timeout_ms, lane=args.lane, reason=args.reason
    )
    output.show(result, render.stepped(result))
    return EXIT_OK


async def move(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.move(args.execution_id, args.lane, args.before, reason=args.reason)
    output.show(result, render.stepped(result))
    return EXIT_OK


async def run_now(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.run_now(args.execution_id, args.element, lane=args.lane, reason=args.reason)
    output.show(result, render.stepped(result))
    return EXIT_OK


async def register(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    raw = read_file(args.file, "register")
    content_type = "application/json" if args.file.suffix.lower() == ".json" else "application/yaml"
    summary = await client.register(raw, content_type=content_type)
    output.show(summary, render.registered(summary))
    return EXIT_OK


async def processes(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    """`processes [list]`, or `processes delete|deprecate|undeprecate ID [--reason R]`."""
    if args.verb == "list":
        if args.process_id is not None:
            raise InputError("processes: list takes no ID (GET one with `procengine processes --json`)")
        listed = await client.processes()
        output.show(listed, shown.processes(listed, plain=not output.console.is_terminal))
        return EXIT_OK
    if args.process_id is None:
        raise InputError(f"processes {args.verb}: give the version's ID (its processID)")
    if args.verb == "delete":
        result = await client.delete_process(args.process_id, reason=args.reason)
        output.show(result, shown.deleted(result))
        return EXIT_OK
    view = await client.deprecate_process(args.process_id, deprecated=args.verb == "deprecate", reason=args.reason)
    output.show(view, shown.deprecated(view))
    return EXIT_OK


async def checkpoints(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    if args.seq is None:
        if args.diff is not None:
            raise InputError("checkpoints: --diff OTHER goes with a SEQ")
        page = await client.checkpoints(args.execution_id, limit=args.limit, cursor=args.cursor)
        output.show(page, render.checkpoints(page))
    elif args.diff is None:
        view = await client.checkpoint(args.execution_id, args.seq)
        output.show(view, render.checkpoint(view))
    else:
        diff = await client.checkpoint_diff(args.execution_id, args.seq, args.diff)
        output.show(diff, render.checkpoint_diff(diff))
    return EXIT_OK


async def fork(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    patch = parse_variables(args.var, args.vars_file) if args.var or args.vars_file else None
    result = await client.fork(
        args.execution_id, args.checkpoint, variables=patch, paused=args.paused, reason=args.reason
    )
    output.show(result, render.forked(result, args.execution_id))
    return EXIT_OK


async def rewind(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    patch = parse_variables(args.var, args.vars_file) if args.var or args.vars_file else None
    result = await client.rewind(args.execution_id, args.seq, variables=patch, reason=args.reason)
    output.show(result, render.rewound(result))
    return EXIT_OK


async def migrate(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    mapping = parse_mapping(args.map, "migrate")
    result = await client.migrate(
        args.execution_id, args.to_version, mapping or None, dry_run=args.dry_run, reason=args.reason
    )
    output.show(result, render.migrated(result))
    return EXIT_FAILED if result.problems else EXIT_OK


async def set_breakpoints(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    wanted: list[str | dict[str, str]] = list(args.elements)
    for given in args.when:
        element, sep, condition = given.partition("=")
        if not sep or not element or not condition:
            raise InputError(f"break: --when takes KEY=CEL, not {given!r}")
        wanted.append({"element": element, "when": condition})
    result = await client.set_breakpoints(args.execution_id, wanted, reason=args.reason)
    output.show(result, render.breakpoints(result))
    return EXIT_OK


async def step(client: AsyncClient, args: argparse.Namespace, output: Output) -> int:
    result = await client.step(args.execution_id, lane=args.lane, reason=args.reason)
    output.show(result, render.stepped_mode(result))
    return EXIT_OK


API_COMMANDS: Final[dict[str, ApiCommand]] = {
    "bulk": run_bulk,
    "schedule": run_schedule,
    "step": step,
    "break": set_breakpoints,
    "checkpoints": checkpoints,
    "rewind": rewind,
    "migrate": migrate,
    "fork": fork,
    "start": start,
    "status": status,
    "list": list_executions,
    "log": log,
    "watch": watch_execution,
    "pause": pause,
    "resume": resume,
    "cancel": cancel,
    "signal": signal,
    "retry": retry,
    "edit": edit,
    "skip": skip,
    "complete": complete,
    "fail": fail,
    "move": move,
    "run-now": run_now,
    "policy": change_policy,
    "register": register,
    "processes": processes,
}


async def _process_id_of(client: AsyncClient, key: str, version: int) -> int:
    """The processID of one version of a process (the start request names a version by its processID)."""
    for process in (await client.processes()).items:
        if process.key == key and process.version == version:
            return process.processID
    raise NotFound(f"process {key!r} has no version {version}", status=404)


# --- offline ----------------------------------------------------------------------------------------


def validate(args: argparse.Namespace, output: Output) -> int:
    """Check a definition file as the server would on registration, minus handlers and called processes
    (which only a server knows); print every problem."""
    from procengine.engine.validation import validate_definition  # lazily: CEL and the definition models
    from procengine.errors import ProcEngineError

    raw = read_file(args.file, "validate")
    document: Any = None
    problems: list[str] = []
    try:
        document = load_document(args.file, raw)
    except DocumentError as exc:
        problems = [str(exc)]
    key = document.get("key") if isinstance(document, dict) and isinstance(document.get("key"), str) else None
    summary = ""
    if not problems:
        try:
            compiled = validate_definition(document)
        except ProcEngineError as exc:
            problems = [str(p) for p in exc.details] if isinstance(exc.details, list) else [exc.message]
        else:
            threads = len(compiled.threads)
            summary = (
                f"process {key!r}, {threads} thread{'s' * (threads != 1)}, {compiled.total_nodes} elements "
                "(handlers and called processes are checked when it is registered)"
            )
    if output.as_json:
        output.json({"file": str(args.file), "valid": not problems, "key": key, "problems": problems})
    elif problems:
        noun = "problem" if len(problems) == 1 else "problems"
        output.console.print(f"{args.file}: not valid, {len(problems)} {noun}:")
        for problem in problems:
            output.console.print(f"  - {problem}")
    else:
        output.console.print(f"{args.file}: valid: {summary}")
    return EXIT_FAILED if problems else EXIT_OK
