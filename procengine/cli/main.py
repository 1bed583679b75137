"""The `procengine` command: `serve`, `inspect` (an execution's keys, decoded, straight from Redis), and the
commands that drive a server over its REST API (commands.py), listed in groups by `procengine --help`.

Flags win over PROCENGINE_* environment variables, which win over defaults: the CLI passes only the flags
that were given to `Settings(...)`, and pydantic-settings fills in the rest from the environment.
A bad flag or environment value ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from procengine.cli.commands import add_commands, grouped_help
from procengine.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from procengine.errors import ProcEngineError, StoreFailed, StoreUnreachable
from procengine.runtime import logs
from procengine.runtime.collector import parse_thresholds, set_thresholds
from procengine.runtime.event_loop import event_loop_factory
from procengine.settings import Settings, parse_token_pairs

__all__ = ["build_parser", "main", "settings_from_args"]

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

log = logging.getLogger(__name__)


class UsageError(Exception):
    """A flag or environment value that cannot be used; the message names it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="procengine",
        description="A durable process engine.",
        usage="%(prog)s [-h] [--version] COMMAND ...",
        # the commands are listed in groups by the epilog (grouped_help), laid out as written
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS, prog=parser.prog)

    # Every serve flag defaults to SUPPRESS: a flag that was not given is absent from the namespace, so the
    # environment (read by Settings) decides it.
    serve = commands.add_parser(
        "serve",
        help="run the engine and its REST front door",
        description="Run the engine and its REST front door. Every flag can also be set as PROCENGINE_<NAME>; "
        "flags win over the environment.",
        argument_default=argparse.SUPPRESS,
    )
    serve.add_argument("--redis-url", metavar="URL", help="Redis 6.2+ to use (default: an embedded redis-server)")
    serve.add_argument("--data-dir", metavar="DIR", type=Path, help="embedded Redis data (default ./.procengine)")
    serve.add_argument("--host", metavar="H", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", metavar="P", type=int, help="port to listen on (default 8080, 0: any free port)")
    serve.add_argument("--prefix", metavar="P", help="prefix of every Redis key (default procengine)")
    serve.add_argument(
        "--token", metavar="TOKEN=TENANT", action="append", dest="api_tokens", help="API token and tenant (repeatable)"
    )
    serve.add_argument(
        "--handlers", metavar="pkg.module", action="append", help="module whose @task handlers to load (repeatable)"
    )
    serve.add_argument(
        "--register",
        metavar="FILE",
        action="append",
        type=Path,
        dest="definitions",
        help="definition (YAML or JSON) to register at start, like POST /processes (repeatable)",
    )
    serve.add_argument("--log-format", choices=("json", "text"), help="json: a JSON object a line (default); text")
    serve.add_argument(
        "--event-loop", choices=("auto", "uvloop", "asyncio"), help="auto (default): uvloop if installed, else asyncio"
    )
    serve.add_argument("--log-level", metavar="LEVEL", type=str.upper, choices=LOG_LEVELS, help="default INFO")
    serve.add_argument("--pause-grace-ms", metavar="N", type=int, help="how long pause lets a running task finish")
    serve.add_argument("--node-ttl-ms", metavar="N", type=int, help="a silent node's executions are adopted after this")
    serve.add_argument("--passivate-after-ms", metavar="N", type=int, help="idle paused actors leave memory after this")
    serve.add_argument(
        "--durability",
        choices=("local", "replicated"),
        help="local: acknowledged once the master has a write (default); replicated: once a replica has it too",
    )
    serve.add_argument(
        "--max-snapshot-bytes", metavar="N", type=int, help="most bytes an execution's memory may take (2 MiB)"
    )
    serve.add_argument("--max-foreach-items", metavar="N", type=int, help="most items one for-each takes (10000)")
    serve.add_argument(
        "--max-expression-cost", metavar="N", type=int, help="most one CEL evaluation may cost (1000000)"
    )
    serve.add_argument(
        "--checkpoint-coalesce",
        metavar="N",
        type=int,
        help="most consecutive pure elements of a lane written in one checkpoint (32; 1: each its own)",
    )
    serve.add_argument(
        "--history-checkpoints", metavar="N", type=int, help="last checkpoints each execution keeps (50; 0: none)"
    )
    serve.add_argument(
        "--history-bytes", metavar="N", type=int, help="most bytes of them per execution (262144; 0: none)"
    )
    serve.add_argument("--max-event-streams", metavar="N", type=int, help="event streams a node serves at once (100)")
    serve.add_argument(
        "--max-nesting-depth", metavar="N", type=int, help="how deep JSON/YAML input may nest (64; 422 beyond)"
    )
    serve.add_argument("--max-connections", metavar="N", type=int, help="connections held open at once (4096)")
    _add_tls_flags(serve)
    serve.add_argument(
        "--http-header-timeout-s", metavar="S", type=float, help="a request's head must arrive within this (10)"
    )
    serve.add_argument(
        "--http-keepalive-timeout-s", metavar="S", type=float, help="idle keep-alive connections close after (75)"
    )
    for flag, what in (
        ("--max-definition-elements", "elements one definition may have (1000)"),
        ("--max-variables", "start variables one execution may be given (1000)"),
        ("--max-signal-bytes", "most bytes a signal's payload may take (262144)"),
        ("--max-pending-signals", "signals that may wait in one execution (1000)"),
        ("--max-starts-per-second", "starts a tenant may make per second, all nodes (5000; 0: no limit)"),
    ):
        serve.add_argument(flag, metavar="N", type=int, help=what)
    serve.add_argument(
        "--retention", metavar="DURATION", help="how long finished executions stay in Redis (default 7d; 12h, 30m...)"
    )
    serve.add_argument(
        "--sweep-interval-ms", metavar="N", type=int, help="how often expired executions leave the index (60000)"
    )
    serve.add_argument(
        "--retention-for",
        metavar="TENANT=DURATION",
        action="append",
        help="a tenant's own retention (repeatable)",
    )
    serve.add_argument(
        "--on-exhausted",
        choices=("fail", "pause"),
        help="an element failed for good (no catch) fails the execution (default) or pauses it, held to retry",
    )
    serve.add_argument(
        "--on-exhausted-for",
        metavar="TENANT=fail|pause",
        action="append",
        help="a tenant's own --on-exhausted (repeatable)",
    )
    serve.add_argument(
        "--http-allow",
        metavar="HOST[:PORT]",
        action="append",
        help="a host the built-in http task handler may call (repeatable; default none)",
    )
    serve.set_defaults(run=_serve)

    inspect = commands.add_parser(
        "inspect",
        help="print every Redis key of an execution, decoded; or list executions",
        description="Read an execution straight from Redis: its hash, stack, memory, threads, elements and the "
        "last log entries, decoded. With --list: an overview of the executions of every tenant, newest first. "
        "Redis: --redis-url, else PROCENGINE_REDIS_URL, else the embedded redis-server of --data-dir.",
    )
    from procengine.statuses import Status  # here, not at the top: the rest of this module is not inspect's

    which = inspect.add_mutually_exclusive_group(required=True)
    which.add_argument("execution_id", metavar="ID", type=_positive, nargs="?", help="the executionID")
    which.add_argument("--list", action="store_true", dest="list_all", help="list executions instead")
    inspect.add_argument("--status", choices=[status.value for status in Status], help="--list: only this status")
    inspect.add_argument("--limit", metavar="N", type=_positive, help="--list: at most N rows (default 50)")
    inspect.add_argument("--log", metavar="N", type=_not_negative, dest="log_count", help="log entries (default 20)")
    inspect.add_argument("--redis-url", metavar="URL", help="the Redis to read")
    _add_tls_flags(inspect)
    inspect.add_argument("--data-dir", metavar="DIR", type=Path, help="of the embedded Redis (default ./.procengine)")
    inspect.add_argument("--prefix", metavar="P", help="prefix of every Redis key (default procengine)")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of the report")
    inspect.add_argument("--tenant", metavar="T", help="only this tenant's executions (another's is not found)")
    inspect.set_defaults(run=_inspect)

    export = commands.add_parser(
        "export",
        help="write finished executions as JSON lines, to archive them before their retention ends",
        description="Read finished executions (completed, failed, cancelled) that stopped before --finished-before "
        "straight from Redis and write one JSON line each (status, process, timing, error, parent and children, "
        "variables, element records, the whole log), newest first. Nothing is changed.",
    )
    export.add_argument(
        "--finished-before",
        metavar="T",
        required=True,
        help="an RFC 3339 time (2026-12-01T00:00:00Z), or a duration ago (7d, 12h)",
    )
    export.add_argument("--out", metavar="FILE", type=Path, help="write here (default: standard output)")
    export.add_argument("--tenant", metavar="T", help="only this tenant's executions")
    export.add_argument("--redis-url", metavar="URL", help="the Redis to read")
    _add_tls_flags(export)
    export.add_argument("--data-dir", metavar="DIR", type=Path, help="of the embedded Redis (default ./.procengine)")
    export.add_argument("--prefix", metavar="P", help="prefix of every Redis key (default procengine)")
    export.set_defaults(run=_export)

    reindexing = commands.add_parser(
        "reindex",
        help="put every execution in the indexes of its status and process (once, after an upgrade)",
        description="Executions started before the indexes by status and process existed are listed by a "
        "filtered list only after their next status change. This puts each in the indexes of its status and "
        "process; running it again changes nothing.",
    )
    reindexing.add_argument("--tenant", metavar="T", help="only this tenant's executions")
    reindexing.add_argument("--redis-url", metavar="URL", help="the Redis to write")
    _add_tls_flags(reindexing)
    reindexing.add_argument(
        "--data-dir", metavar="DIR", type=Path, help="of the embedded Redis (default ./.procengine)"
    )
    reindexing.add_argument("--prefix", metavar="P", help="prefix of every Redis key (default procengine)")
    reindexing.set_defaults(run=_reindex)
    add_commands(commands)  # start, status, list, log, watch, pause, resume, cancel, signal, register, validate
    parser.epilog = grouped_help(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed usage and the problem (or --help / --version)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = args.run(args)
    return code


def settings_from_args(args: argparse.Namespace) -> Settings:
    """`Settings` from the flags that were given; the environment and the defaults fill in the rest."""
    given: dict[str, Any] = {
        name: value for name, value in vars(args).items() if name not in ("command", "run") and value is not None
    }
    if "api_tokens" in given:
        try:
            given["api_tokens"] = parse_token_pairs(given["api_tokens"])
        except ValueError as exc:
            raise UsageError(f"--token: {exc}") from None
    if "handlers" in given:
        given["handlers"] = [m.strip() for value in given["handlers"] for m in value.split(",") if m.strip()]
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise UsageError("; ".join(_describe(error, given) for error in exc.errors())) from None
    except ValueError as exc:  # pydantic-settings' SettingsError: an environment value it could not parse
        raise UsageError(str(exc)) from None
    if settings.log_level.upper() not in LOG_LEVELS:
        raise UsageError(f"PROCENGINE_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    return settings


def _serve(args: argparse.Namespace) -> int:
    from procengine.http.app import check_bind_allowed  # lazily, like the server below

    try:
        settings = settings_from_args(args)
        _check_handler_modules(settings.handlers)
        check_bind_allowed(settings)
    except (UsageError, ValueError) as exc:
        return _fail(f"{exc}", EXIT_USAGE)
    logs.configure(settings.log_level, settings.log_format)
    from procengine.cli import serve as server  # lazily: `inspect` and `--help` need neither aiohttp nor the engine

    set_thresholds(parse_thresholds(settings.gc_thresholds))
    try:
        loop_factory = event_loop_factory(settings.event_loop)
    except ImportError as exc:
        return _fail(f"--event-loop {settings.event_loop}: {exc}", EXIT_USAGE)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(server.serve(settings))
    except KeyboardInterrupt:  # before serve installed its signal handlers; it stops cleanly after
        return 130
    except StoreFailed as exc:  # Redis refused us before anything served: say why, in a line
        return _fail(redis_startup_failure(exc, settings), EXIT_FAILED)
    except ProcEngineError as exc:
        return _fail(exc.message, EXIT_FAILED)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(f"cannot listen on {settings.host}:{settings.port}: address already in use", EXIT_FAILED)
        raise
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    # Lazily, like serve's imports (and here rather than at the top: the rest of this module is not inspect's).
    from procengine.cli import inspect as inspection
    from procengine.store.failures import store_errors
    from procengine.store.keys import Keys

    if args.list_all and args.log_count is not None:
        return _fail("inspect: --log goes with an ID, not with --list", EXIT_USAGE)
    if not args.list_all and (args.status is not None or args.limit is not None):
        return _fail("inspect: --status and --limit go with --list", EXIT_USAGE)
    opened = _open_redis(args)
    if isinstance(opened, int):
        return opened
    redis, url, settings = opened
    keys = Keys(settings.prefix)

    async def read() -> Any:
        try:
            with store_errors():
                if args.list_all:
                    return await inspection.list_executions(redis, keys, args.status, args.limit or 50, args.tenant)
                log_count = 20 if args.log_count is None else args.log_count
                return await inspection.inspect_execution(redis, keys, args.execution_id, log_count, args.tenant)
        finally:
            await redis.aclose()

    try:
        found = asyncio.run(read())
    except (StoreUnreachable, OSError) as exc:  # StoreUnreachable: no answer, or not RESP (not a Redis)
        return _fail(f"cannot reach Redis at {inspection.redact(url)}: {exc or type(exc).__name__}", EXIT_FAILED)
    except StoreFailed as exc:
        return _fail(f"Redis at {inspection.redact(url)} answered with an error: {exc}", EXIT_FAILED)
    except ProcEngineError as exc:
        return _fail(exc.message, EXIT_FAILED)
    if args.json:
        text = inspection.to_json(found) + "\n"
    elif args.list_all:
        text = inspection.render_list(found)
    else:
        text = inspection.render_execution(found)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has gone, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from procengine.cli import inspect as inspection
    from procengine.cli.export import export_finished
    from procengine.runtime.clock import parse_iso
    from procengine.settings import duration_ms
    from procengine.store.failures import store_errors
    from procengine.store.keys import Keys

    try:
        before_ms = parse_iso(args.finished_before)
    except ValueError:
        try:
            before_ms = int(time.time() * 1000) - duration_ms(args.finished_before)
        except ValueError:
            return _fail(f"--finished-before: {args.finished_before!r} is no RFC 3339 time and no duration", EXIT_USAGE)
    opened = _open_redis(args)
    if isinstance(opened, int):
        return opened
    redis, url, settings = opened
    out = args.out.open("w", encoding="utf-8") if args.out is not None else sys.stdout

    async def run() -> int:
        try:
            with store_errors():
                return await export_finished(redis, Keys(settings.prefix), before_ms, out.write, args.tenant)
        finally:
            await redis.aclose()

    try:
        written = asyncio.run(run())
    except (StoreUnreachable, OSError) as exc:
        return _fail(f"cannot reach Redis at {inspection.redact(url)}: {exc or type(exc).__name__}", EXIT_FAILED)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {written} finished executions", file=sys.stderr)
    return EXIT_OK


def _reindex(args: argparse.Namespace) -> int:
    from procengine.cli import inspect as inspection
    from procengine.cli.reindex import reindex
    from procengine.store.failures import store_errors
    from procengine.store.keys import Keys

    opened = _open_redis(args)
    if isinstance(opened, int):
        return opened
    redis, url, settings = opened

    async def run() -> int:
        try:
            with store_errors():
                return await reindex(redis, Keys(settings.prefix), args.tenant)
        finally:
            await redis.aclose()

    try:
        done = asyncio.run(run())
    except (StoreFailed, OSError) as exc:
        return _fail(f"reindex: Redis at {inspection.redact(url)} failed: {exc or type(exc).__name__}", EXIT_FAILED)
    print(f"indexed {done} executions", file=sys.stderr)
    return EXIT_OK


def _open_redis(args: argparse.Namespace) -> tuple[Any, str, Settings] | int:
    """The Redis a command that goes to it straight (inspect, export, reindex) uses, from --redis-url, --data-dir,
    --prefix and the environment; or the exit code of why not (the message printed)."""
    from procengine.cli import inspect as inspection

    # Only what these commands use goes to Settings, so that the environment fills in the rest as for serve.
    names = ("redis_url", "data_dir", "prefix", "redis_tls_ca", "redis_tls_cert", "redis_tls_key")
    given = {name: getattr(args, name) for name in names}
    try:
        settings = settings_from_args(argparse.Namespace(**given))
        url = settings.redis_url or inspection.embedded_redis_url(settings.data_dir)
        return inspection.open_redis(url, settings.redis_timeout_s, settings.redis_tls), url, settings
    except UsageError as exc:
        return _fail(f"{exc}", EXIT_USAGE)
    except ProcEngineError as exc:
        return _fail(exc.message, EXIT_FAILED)
    except ValueError as exc:  # redis-py refuses the URL
        return _fail(f"--redis-url: {exc}", EXIT_USAGE)


def redis_startup_failure(exc: BaseException, settings: Settings) -> str:
    """One line for a Redis that failed `serve` at start: where, redis-py's last words, and for a certificate
    that does not verify, the setting to look at."""
    where = _redacted(settings.redis_url or "the embedded Redis")
    reason = " ".join(str(exc).split())[:400] or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
        hint = " (is --redis-tls-ca the CA that signed the server's certificate?)"
    elif "SSL" in reason or "TLS" in reason:
        hint = " (check the rediss:// URL and --redis-tls-* files)"
    else:
        hint = ""
    return f"cannot use Redis at {where}: {reason}{hint}"


def _add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """TLS to Redis with a private CA: serve and every command that goes to Redis straight take the same three."""
    parser.add_argument("--redis-tls-ca", metavar="PEM", type=Path, help="CA of the Redis servers' certificates")
    parser.add_argument("--redis-tls-cert", metavar="PEM", type=Path, help="client certificate, if Redis asks for one")
    parser.add_argument("--redis-tls-key", metavar="PEM", type=Path, help="the client certificate's private key")


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}{sep}***@{location}" if at and credentials else url


def _positive(text: str) -> int:
    return _at_least(text, 1)


def _not_negative(text: str) -> int:
    return _at_least(text, 0)


def _at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {low} or more, got {value}")
    return value


def _check_handler_modules(modules: list[str]) -> None:
    """A --handlers module that cannot be found is a usage error; one that fails while importing is the
    user's code and keeps its traceback (it is imported by serve)."""
    # Like `python -m` and uvicorn: modules of the directory procengine runs in can be named.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(f"--handlers: no module named {module!r} (from {cwd} and the installed packages)")


def _describe(error: Any, given: dict[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error.get("loc"):  # a rule over several settings: its message names them
        return message
    field = str(error["loc"][0])
    if field in given:
        flags = {
            "api_tokens": "--token",
            "definitions": "--register",
            "retention_for": "--retention-for",
            "on_exhausted_for": "--on-exhausted-for",
        }
        where = flags.get(field, "--" + field.replace("_", "-"))
    else:
        where = "PROCENGINE_" + field.upper()
    return f"{where}: {message}"


def _fail(message: str, code: int) -> int:
    print(f"procengine: error: {message}", file=sys.stderr)
    return code


def _version() -> str:
    try:
        return metadata.version("procengine")
    except metadata.PackageNotFoundError:
        return "unknown"
