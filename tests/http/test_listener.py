"""The front door's socket (http/listener.py): slow heads are cut at the deadline, connections over the cap are
refused, and an ordinary request still answers at once while hundreds of slow-loris sockets are open.

Loopback only, bounded: a few hundred sockets, a deadline of half a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from procengine.http import create_app
from procengine.http.listener import GuardedSite
from procengine.settings import Settings
from tests.support.api import BASE
from tests.support.fake_engine import FakeEngine

SLOW_SOCKETS = 300
HEAD_DEADLINE_S = 0.5

Listen = Callable[..., Awaitable[GuardedSite]]


@pytest.fixture
async def listen() -> AsyncIterator[Listen]:
    """Serve the front door (over a fake engine) through a GuardedSite on a free loopback port."""
    runners: list[web.AppRunner] = []

    async def start(**given: object) -> GuardedSite:
        settings = Settings(port=0, **given)  # type: ignore[arg-type]
        runner = web.AppRunner(
            create_app(FakeEngine(), settings), access_log=None, keepalive_timeout=settings.http_keepalive_timeout_s
        )
        await runner.setup()
        runners.append(runner)
        site = GuardedSite(runner, settings)
        await site.start()
        return site

    yield start
    for runner in runners:
        await runner.cleanup()


def port_of(site: GuardedSite) -> int:
    return site.port


async def slow_loris(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has sent a request line and one header, and never finishes its head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    return reader, writer


async def health_ms(port: int) -> float:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.get(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200
            await response.read()
        return (time.perf_counter() - started) * 1000


async def test_an_ordinary_request_answers_at_once_beside_hundreds_of_slow_heads_and_they_are_cut(
    listen: Listen,
) -> None:
    site = await listen(http_header_timeout_s=HEAD_DEADLINE_S)
    port = port_of(site)
    slow = [await slow_loris(port) for _ in range(SLOW_SOCKETS)]
    assert site.guard.open >= SLOW_SOCKETS

    assert await health_ms(port) < 500
    opened = time.monotonic()
    answers = await asyncio.gather(*(asyncio.wait_for(reader.read(), 5) for reader, _ in slow))

    # every slow one got the 408 and its end of file, after the deadline and not much later
    assert all(answer.startswith(b"HTTP/1.1 408 Request Timeout") for answer in answers)
    assert time.monotonic() - opened < HEAD_DEADLINE_S + 3
    assert site.guard.timed_out == SLOW_SOCKETS
    for _, writer in slow:
        writer.close()
    await asyncio.sleep(0)  # let the closes be seen
    assert await health_ms(port) < 500


async def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(listen: Listen) -> None:
    site = await listen(http_header_timeout_s=HEAD_DEADLINE_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(site))

    answer = await asyncio.wait_for(reader.read(), 5)

    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_keep_alive_connection_serves_its_requests_each_under_its_own_deadline(listen: Listen) -> None:
    site = await listen(http_header_timeout_s=HEAD_DEADLINE_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(site))

    for _ in range(3):
        # each head in two pieces, the whole connection older than one deadline: not cut
        writer.write(b"GET /health HTTP/1.1\r\n")
        await asyncio.sleep(HEAD_DEADLINE_S / 3)
        writer.write(b"Host: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Length"))
        await asyncio.wait_for(reader.readexactly(length), 5)
    assert site.guard.timed_out == 0
    writer.close()


async def test_a_slow_body_is_not_cut_by_the_head_deadline(listen: Listen) -> None:
    site = await listen(http_header_timeout_s=HEAD_DEADLINE_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(site))
    body = b'{"reason": "slow but steady"}'
    writer.write(
        f"POST {BASE}/executions/processes/1/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    for chunk in (body[:10], body[10:20], body[20:]):
        await asyncio.sleep(HEAD_DEADLINE_S * 0.6)
        writer.write(chunk)

    answer = await asyncio.wait_for(reader.read(), 5)

    assert not answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert site.guard.timed_out == 0
    writer.close()


async def test_one_connection_over_the_cap_is_answered_503_and_the_others_are_served(listen: Listen) -> None:
    site = await listen(max_connections=5, http_header_timeout_s=30)
    port = port_of(site)
    held = [await slow_loris(port) for _ in range(5)]

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = await asyncio.wait_for(reader.read(), 5)

    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Retry-After: 1" in answer and b'"code":"UNAVAILABLE"' in answer
    assert (site.guard.open, site.guard.refused) == (5, 1)
    writer.close()
    # one of the five finishes its head: it is served; once it is gone, a new connection is taken again
    first_reader, first_writer = held[0]
    first_writer.write(b"Connection: close\r\n\r\n")
    assert (await asyncio.wait_for(first_reader.read(), 5)).startswith(b"HTTP/1.1 200")
    first_writer.close()
    for _ in range(100):
        if site.guard.open < 5:
            break
        await asyncio.sleep(0.01)
    assert await health_ms(port) < 500
    for _, other in held[1:]:
        other.close()


def test_under_uvloop_as_serve_runs_it_requests_are_served_and_slow_heads_cut() -> None:
    # uvloop's transports are not asyncio.Transport instances: an isinstance check there reset every connection
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        settings = Settings(port=0, http_header_timeout_s=HEAD_DEADLINE_S)
        runner = web.AppRunner(create_app(FakeEngine(), settings), access_log=None)
        await runner.setup()
        try:
            site = GuardedSite(runner, settings)
            await site.start()
            reader, writer = await slow_loris(port_of(site))
            assert await health_ms(port_of(site)) < 500
            assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408")
            writer.close()
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
