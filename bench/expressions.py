"""Hostile CEL against a real `procengine serve` (issue 17, items 1 and 2): what the node answers, whether it lives.

    .venv/bin/python -m bench.expressions            # this checkout
    /work/main/.venv/bin/python -m bench.expressions # (from /work/main) the code before the fix

Starts a redis-server (from PATH) and one node per case; prints one line per case: the HTTP status of the
registration, of the start, whether the node still answers /health, and the slowest /health while the
execution ran. Not part of `python -m bench`: it is a regression check with figures, not a throughput figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from procengine.http.spec import BASE_PATH as BASE

TEN = "[" + ", ".join(str(i) for i in range(10)) + "]"
CASES = {
    "chain-40000": "+".join(["1"] * 40_000),
    "chain-20000": "+".join(["1"] * 20_000),
    "parens-100000": "(" * 100_000 + "1" + ")" * 100_000,
    "six-nested-maps": f"{TEN}.map(a, {TEN}.map(b, {TEN}.map(c, {TEN}.map(d, {TEN}.map(e, {TEN}.map(f, a))))))",
    "three-nested-maps-100": "l.map(a, l.map(b, l.map(c, a + b + c))).size()",
    "map-of-big-strings": "l.map(a, s + s).size()",
}
VARIABLES = {
    "three-nested-maps-100": {"l": list(range(100))},
    "map-of-big-strings": {"l": list(range(1000)), "s": "x" * 100_000},  # within the cost estimate: 1,000^2
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _redis() -> Any:
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.3)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait()


@contextlib.asynccontextmanager
async def _node(redis_url: str, prefix: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "procengine", "serve", "--redis-url", redis_url, "--prefix", prefix, "--port", "0",
        "--log-level", "ERROR", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=os.getcwd(),
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    try:
        yield process, line.strip().split("serving on ")[1]
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _case(session: aiohttp.ClientSession, redis_url: str, name: str, source: str) -> str:
    definition = {
        "key": name,
        "threads": [{"key": "main", "elements": [{"key": "calc", "type": "set-variable", "set": {"x": source}}]}],
    }
    async with _node(redis_url, name) as (process, url):
        result = [name, f"{len(source):,} chars"]
        try:
            async with session.post(url + BASE + "/processes", json=definition) as answer:
                body = await answer.json(content_type=None)
                result.append(f"register {answer.status}")
                if answer.status == 422:
                    result.append("..." + body["error"]["details"][0][-90:])
        except aiohttp.ClientError as exc:
            result.append(f"register: {type(exc).__name__}")
        if result[-1].startswith("register 201"):
            start = {"processKey": name, "variables": VARIABLES.get(name, {})}
            began = time.monotonic()
            slowest = 0.0
            sent = time.monotonic()
            try:
                async with session.post(url + BASE + "/executions/processes", json=start) as answer:
                    result.append(f"start {answer.status}")
                    execution = (await answer.json())["data"]["executionID"]
                status = "running"
                while status == "running" and time.monotonic() - began < 60:
                    sent = time.monotonic()
                    async with session.get(url + "/health") as health:
                        await health.read()
                    slowest = max(slowest, time.monotonic() - sent)
                    path = f"{BASE}/executions/processes/{execution}/status"
                    async with session.get(url + path) as answer:
                        status = (await answer.json())["data"]["status"]
                    await asyncio.sleep(0.02)
                result.append(f"execution {status} after {time.monotonic() - began:.2f} s")
                result.append(f"slowest /health {slowest * 1000:.0f} ms")
            except (aiohttp.ClientError, KeyError) as exc:
                result.append(f"start: {type(exc).__name__}")
            except TimeoutError:
                result.append(f"/health unanswered for {time.monotonic() - sent:.0f} s (the client gave up)")
        await asyncio.sleep(0.5)
        alive = process.returncode is None
        if alive:
            try:
                async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(total=25)) as health:
                    alive = health.status == 200
            except (aiohttp.ClientError, TimeoutError):
                alive = False
        result.append("node alive" if alive else f"NODE DEAD (exit {process.returncode})")
        return " | ".join(result)


async def main() -> None:
    only = sys.argv[1:] or list(CASES)
    with _redis() as redis_url:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            for name in only:
                print(await _case(session, redis_url, name, CASES[name]), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
