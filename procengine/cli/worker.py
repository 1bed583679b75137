"""`procengine worker`: serve task elements with a `queue` from outside the engine (procengine/worker/).

    procengine worker --url http://127.0.0.1:8080 --token TOKEN --queue payments --handlers mypkg.handlers \
        --concurrency 16

SIGTERM or Ctrl-C stops it gracefully: no new task is fetched, those in flight get --grace-s to finish, the rest
are released for another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from procengine.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from procengine.cli.inputs import positive_int

__all__ = ["add_worker_arguments", "run_worker"]

log = logging.getLogger(__name__)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL", help="the server (else PROCENGINE_URL, else http://127.0.0.1:8080)")
    parser.add_argument("--token", metavar="TOKEN", help="its bearer token (else PROCENGINE_TOKEN)")
    parser.add_argument(
        "--queue", metavar="Q", action="append", required=True, help="a queue to take tasks from (repeatable)"
    )
    parser.add_argument(
        "--handlers", metavar="MODULE", action="append", default=[], help="a module whose @task handlers to run"
    )
    parser.add_argument("--concurrency", metavar="N", type=positive_int, default=16, help="tasks at once (16)")
    parser.add_argument("--worker-id", metavar="ID", help="this worker's name (default host-pid)")
    parser.add_argument("--lock-ms", metavar="N", type=positive_int, default=30_000, help="a task's lock (30000)")
    parser.add_argument("--wait-ms", metavar="N", type=int, default=10_000, help="a fetch's long poll (10000)")
    parser.add_argument("--grace-s", metavar="S", type=float, default=30.0, help="stopping: in-flight tasks' time")
    parser.add_argument("--log-level", metavar="LEVEL", type=str.upper, default="INFO", help="default INFO")


def run_worker(args: argparse.Namespace) -> int:
    from procengine.runtime import logs
    from procengine.tasks import builtin_handlers, default_registry

    logs.configure(args.log_level, "text")
    if os.getcwd() not in sys.path:  # like `serve --handlers` and `python -m`: modules of the directory it runs in
        sys.path.insert(0, os.getcwd())
    try:
        for module in [m.strip() for value in args.handlers for m in value.split(",") if m.strip()]:
            importlib.import_module(module)
    except ImportError as exc:
        log.error("--handlers: %s", exc)
        return EXIT_USAGE
    handlers = builtin_handlers([]).merged(default_registry)
    try:
        asyncio.run(_work(args, handlers))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.error("worker failed: %s", exc)
        return EXIT_FAILED
    return EXIT_OK


async def _work(args: argparse.Namespace, handlers: object) -> None:
    from procengine.cli.serve import shutdown_tracing, tracing_from_env
    from procengine.client import AsyncClient
    from procengine.tasks import HandlerRegistry
    from procengine.worker import Worker

    assert isinstance(handlers, HandlerRegistry)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="task"))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    timeout = args.wait_ms / 1000 + 30  # a fetch's answer comes after its long poll
    provider = tracing_from_env()  # OTEL_* as `serve` reads them: the handlers' spans join the executions' traces
    async with AsyncClient(args.url, args.token, timeout=timeout) as client:
        worker = Worker(
            client,
            args.queue,
            handlers,
            concurrency=args.concurrency,
            worker_id=args.worker_id,
            lock_ms=args.lock_ms,
            wait_ms=args.wait_ms,
            grace_s=args.grace_s,
            tracer=None if provider is None else provider.get_tracer("procengine.worker"),
        )
        try:
            await worker.run(stop)
        finally:
            if provider is not None:
                shutdown_tracing(provider)
