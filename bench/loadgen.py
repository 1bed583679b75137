"""The load generator: a small HTTP/1.1 keep-alive client on asyncio streams, bounded in time and in
connections, loopback only.

Why not aiohttp's client: on a 2-core machine the client shares the CPU with the server and Redis, and
aiohttp's client costs several times more CPU per request than this one, so it would cap the bare
baseline first and flatter the ratio. The same client, at the same concurrency (or the same request
rate), drives procengine and the bare aiohttp app.

Two shapes:
- `closed_loop`: N connections, each sends its next request when the previous answer arrives; gives
  throughput.
- `open_loop`: operations are scheduled at a fixed rate whatever the answers do; latency is measured
  from the scheduled time (so a slow server's queueing shows, no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.common import BASE, HOST


class HttpError(Exception):
    pass


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host_header: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.host_header = host_header

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        parts = urlsplit(base_url)
        if parts.hostname != HOST:
            raise ValueError(f"loopback only: {base_url}")
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20)
        return cls(reader, writer, f"{parts.hostname}:{parts.port}".encode())

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), path.encode(), self.host_header)
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        elif method != "GET":
            head += b"Content-Length: 0\r\n"
        self.writer.write(head + b"\r\n" + (body or b""))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = -1
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                raise HttpError("chunked answers are not supported by this client")
        if length < 0:
            raise HttpError("answer without Content-Length")
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class Client:
    """A few helpers over one connection, for setup work (registering, starting executions)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, base_url: str) -> Client:
        return cls(await Connection.open(base_url))

    async def call(self, method: str, path: str, doc: Any = None, expect: tuple[int, ...] = (200, 201, 202)) -> Any:
        body = None if doc is None else json.dumps(doc).encode()
        status, payload = await self.conn.request(method, path, body)
        if status not in expect:
            raise HttpError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload)["data"] if payload else None

    async def close(self) -> None:
        await self.conn.close()


async def pool(base_url: str, size: int) -> list[Client]:
    return list(await asyncio.gather(*(Client.open(base_url) for _ in range(size))))


async def close_all(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def fan_out(clients: list[Client], items: list[Any], work: Callable[[Client, Any], Awaitable[Any]]) -> list[Any]:
    """Do `work(client, item)` for every item, one item at a time per client; results in item order."""
    results: list[Any] = [None] * len(items)
    next_index = 0

    async def worker(client: Client) -> None:
        nonlocal next_index
        while next_index < len(items):
            i = next_index
            next_index += 1
            results[i] = await work(client, items[i])

    await asyncio.gather(*(worker(c) for c in clients))
    return results


# --- measured runs ----------------------------------------------------------------------------------

Request = tuple[str, str, bytes | None]


@dataclass
class Run:
    seconds: float
    ok: int = 0
    errors: int = 0
    latencies_s: dict[str, list[float]] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    response_bytes: int = 0
    late_starts: int = 0
    """open loop: operations that had to wait for a connection because every one was busy."""
    start_lag_s: list[float] = field(default_factory=list)
    """open loop: how late the client's loop started each operation (timer granularity, client load)."""
    timeline: list[tuple[float, str, float]] = field(default_factory=list)
    """(time since the start, label, latency) of every recorded request."""

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def record(self, label: str, status: int, latency_s: float, payload: bytes) -> None:
        if 200 <= status < 300:
            self.ok += 1
            self.latencies_s.setdefault(label, []).append(latency_s)
            self.timeline.append((time.perf_counter(), label, latency_s))
            self.response_bytes = len(payload)
        else:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{label}: {status} {payload[:200]!r}")


async def closed_loop(
    base_url: str,
    connections: int,
    seconds: float,
    next_request: Callable[[int], Request],
    warmup_s: float = 1.0,
    during: AbstractContextManager[Any] | None = None,
) -> Run:
    """`connections` connections send back-to-back requests for warm-up + `seconds`; counts the measured part.
    `during` (e.g. a CpuMeter) is entered and left around the measured window."""
    conns = list(await asyncio.gather(*(Connection.open(base_url) for _ in range(connections))))
    run = Run(seconds=seconds)
    measuring = False
    stop = False
    counter = 0

    async def worker(conn: Connection) -> None:
        nonlocal counter
        while not stop:
            method, path, body = next_request(counter)
            counter += 1
            started = time.perf_counter()
            try:
                status, payload = await conn.request(method, path, body)
            except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
                if measuring:
                    run.errors += 1
                    if len(run.error_samples) < 5:
                        run.error_samples.append(repr(exc))
                return
            if measuring:
                run.record(method, status, time.perf_counter() - started, payload)

    tasks = [asyncio.create_task(worker(c)) for c in conns]
    try:
        await asyncio.sleep(warmup_s)
        with during or contextlib.nullcontext():
            measuring = True
            began = time.perf_counter()
            await asyncio.sleep(seconds)
            measuring = False
            run.seconds = time.perf_counter() - began
        stop = True
        await asyncio.wait(tasks, timeout=10)
    finally:
        stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    return run


Operation = list[tuple[str, Request]]
"""Labelled requests sent one after the other on one connection (e.g. pause then resume of one execution)."""


async def open_loop(
    base_url: str,
    rate_per_s: float,
    seconds: float,
    next_operation: Callable[[int], Operation],
    connections: int = 32,
    warmup_s: float = 1.0,
    during: AbstractContextManager[Any] | None = None,
) -> Run:
    """Start one operation every 1/rate seconds for warm-up + `seconds`. Each request's latency runs from the
    moment it was due: the first request of an operation is due at the operation's scheduled time, the next
    one when the previous answered. Only operations scheduled after the warm-up are recorded."""
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in await asyncio.gather(*(Connection.open(base_url) for _ in range(connections))):
        free.put_nowait(conn)
    run = Run(seconds=seconds)
    interval = 1.0 / rate_per_s
    in_flight: set[asyncio.Task[None]] = set()
    begin = time.perf_counter() + 0.05
    measure_from = begin + warmup_s
    end = measure_from + seconds

    async def operate(index: int, due: float, measured: bool) -> None:
        # Latency runs from when the operation could start: the scheduled time, or later if this client's own
        # event loop woke up late (timer granularity, its own work); not a server's fault. Waiting for a free
        # connection (every one busy with earlier, slow answers) does count.
        started = time.perf_counter()
        if measured:
            run.start_lag_s.append(started - due)
        due = started
        if free.empty():
            run.late_starts += measured
        conn = await free.get()
        try:
            for label, (method, path, body) in next_operation(index):
                status, payload = await conn.request(method, path, body)
                done = time.perf_counter()
                if measured:
                    run.record(label, status, done - due, payload)
                due = done
        except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
            if measured:
                run.errors += 1
                if len(run.error_samples) < 5:
                    run.error_samples.append(repr(exc))
            await conn.close()
            conn = await Connection.open(base_url)
        finally:
            free.put_nowait(conn)

    index = 0
    meter = during or contextlib.nullcontext()
    metering = False
    try:
        while True:
            if not metering and time.perf_counter() >= measure_from:
                meter.__enter__()
                metering = True
            due = begin + index * interval
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(operate(index, due, due >= measure_from))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            index += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)
        if metering:
            meter.__exit__(None, None, None)
    finally:
        for task in list(in_flight):
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        conns = []
        while not free.empty():
            conns.append(free.get_nowait())
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    return run


# --- setting the scene ------------------------------------------------------------------------------


async def register(client: Client, definition: dict[str, Any]) -> int:
    summary = await client.call("POST", BASE + "/processes", definition)
    return int(summary["processID"])


async def start_executions(
    clients: list[Client], process_id: int, count: int, variables: dict[str, Any] | None = None
) -> list[int]:
    """Start `count` executions over the front door (what a user does), `len(clients)` at a time."""

    async def start(client: Client, _: int) -> int:
        doc = {"processID": process_id, "variables": variables or {}}
        return int((await client.call("POST", BASE + "/executions/processes", doc))["executionID"])

    return await fan_out(clients, list(range(count)), start)


def path(execution_id: int, verb: str) -> str:
    return f"{BASE}/executions/processes/{execution_id}/{verb}"
