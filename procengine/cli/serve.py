"""`procengine serve`: Redis (embedded or external), the engine, and the front door, started and stopped
as one stack so that everything opened is closed in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from procengine.api.service import Caller
from procengine.errors import BadRequest, ValidationFailed
from procengine.http.app import check_bind_allowed, create_app
from procengine.http.listener import GuardedSite
from procengine.node.node import Node
from procengine.runtime.metrics import Metrics
from procengine.runtime.tracing import configure_from_env
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.embedded import RedisServer
from procengine.tasks import HandlerRegistry, builtin_handlers, default_registry

log = logging.getLogger(__name__)


def load_handlers(modules: list[str], http_allow: list[str] | None = None) -> HandlerRegistry:
    """Import the user's handler modules (their @task decorators register) and add the built-ins."""
    for module in modules:
        importlib.import_module(module)
    return builtin_handlers(http_allow or []).merged(default_registry)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    check_bind_allowed(settings)
    handlers = load_handlers(settings.handlers, settings.http_allow)
    log.info("event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0])
    async with contextlib.AsyncExitStack() as stack:
        url = settings.redis_url
        if url is None:
            server = await stack.enter_async_context(RedisServer(data_dir=settings.data_dir))
            url = embedded_url(server, settings)
            log.info("embedded redis-server on %s, data in %s", url, settings.data_dir)
        metrics = Metrics()
        redis = connect(
            url,
            timeout_s=settings.redis_timeout_s,
            retries=settings.redis_retries,
            metrics=metrics,
            tls=settings.redis_tls,
        )
        stack.push_async_callback(redis.aclose)
        tracer_provider = tracing_from_env()
        if tracer_provider is not None:  # closed last: the spans of the drain go out too
            stack.callback(shutdown_tracing, tracer_provider)
        engine = await stack.enter_async_context(
            Node(redis, settings, handlers, metrics=metrics, tracer_provider=tracer_provider)
        )
        await register_files(engine, settings)
        # in-flight requests get the drain's time to finish when the server stops, not aiohttp's default minute
        runner = web.AppRunner(
            create_app(engine, settings),
            access_log=None,
            shutdown_timeout=settings.pause_grace_ms / 1000 + 5,
            keepalive_timeout=settings.http_keepalive_timeout_s,  # aiohttp's default is an hour
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = GuardedSite(runner, settings)  # a head deadline and a connection cap: http/listener.py
        await site.start()
        address = f"http://{settings.host}:{_bound_port(runner, settings.port)}"
        print(f"procengine serving on {address}", flush=True)
        print(f"console: {address}/  API: {address}/api/v1/process-engine  OpenAPI: {address}/openapi.json", flush=True)
        if ready is not None:
            ready.set()
        await _until_signalled()
        # graceful: no new connections, then the engine drains (tasks finish within the grace, checkpoints, the
        # heartbeat goes and the other nodes adopt at once); the stack then closes the rest in reverse order
        await site.stop()
        await engine.drain()


def tracing_from_env() -> TracerProvider | None:
    """The OTEL_* variables' tracer provider (runtime/tracing.py), also made the global one so that the handlers'
    own instrumentation exports through it; None (tracing off) without them or without the SDK."""
    provider = configure_from_env()
    if provider is None:
        return None
    trace.set_tracer_provider(provider)
    log.info("tracing on: spans exported as OTEL_* configures them")
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Export the spans still batched, and stop."""
    shutdown = getattr(provider, "shutdown", None)  # the SDK's has one; the API's type does not say so
    if callable(shutdown):
        shutdown()


def embedded_url(server: RedisServer, settings: Settings) -> str:
    """The URL the node uses for its embedded redis-server: the unix socket unless settings say TCP."""
    if settings.embedded_unix_socket and server.unix_url is not None:
        return server.unix_url
    return server.url


async def register_files(engine: Node, settings: Settings) -> None:
    """`--register FILE`: register each definition in every tenant, as POST /processes would; a process that
    another one calls (call-process) first, whatever the order of the files."""
    documents: list[tuple[Path, Any]] = []
    for path in settings.definitions:
        try:
            documents.append((path, yaml.safe_load(path.read_text(encoding="utf-8"))))
        except (OSError, yaml.YAMLError) as exc:
            raise BadRequest(f"--register {path}: {exc}") from None
    for path, document in _callees_first(documents):
        for tenant in settings.tenants:
            try:
                summary, created = await engine.register_process(Caller(tenant, "system", "register"), document)
            except ValidationFailed as exc:
                raise ValidationFailed(f"--register {path}: {'; '.join(exc.problems)}", exc.problems) from None
            state = "registered" if created else "already registered"
            log.info(
                "%s: %s %r version %s (processID %s) for %s",
                path,
                state,
                summary.key,
                summary.version,
                summary.processID,
                tenant,
            )


def _callees_first(documents: list[tuple[Path, Any]]) -> list[tuple[Path, Any]]:
    """The documents in their order, except that one whose call-process names another's key comes after it."""
    keys: dict[Any, list[int]] = {}  # a key given twice (two versions) keeps the order of its files
    for index, (_, document) in enumerate(documents):
        if isinstance(document, dict):
            keys.setdefault(document.get("key"), []).append(index)
    ordered: list[int] = []
    visiting: set[int] = set()

    def visit(index: int) -> None:
        if index in ordered or index in visiting:  # done, or a cycle (registration says what is wrong)
            return
        visiting.add(index)
        for called in _called(documents[index][1]):
            for version in keys.get(called, []):
                if version != index:
                    visit(version)
        visiting.discard(index)
        ordered.append(index)

    for index in range(len(documents)):
        visit(index)
    return [documents[index] for index in ordered]


def _called(node: Any) -> list[str]:
    """The process keys a definition document's call-process elements name, at any depth."""
    if isinstance(node, list):
        return [key for item in node for key in _called(item)]
    if not isinstance(node, dict):
        return []
    own = [node["process"]] if node.get("type") == "call-process" and isinstance(node.get("process"), str) else []
    return own + [key for value in node.values() for key in _called(value)]


def _bound_port(runner: web.AppRunner, default: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
