"""The store probe tells a silent Redis from a process that is only slow to hear it (store/probe.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis

from procengine.store.connection import connect
from procengine.store.embedded import RedisServer
from procengine.store.probe import StoreProbe


class _Server:
    """A stand-in for redis.asyncio.Redis whose PING answers after `delay_s`, or never."""

    def __init__(self, delay_s: float | None) -> None:
        self.delay_s = delay_s

    async def ping(self) -> bool:
        if self.delay_s is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(self.delay_s)
        return True


def _probe(server: _Server, timeout_s: float = 0.2) -> StoreProbe:
    return StoreProbe(cast(Redis, server), timeout_s=timeout_s, keep_s=0.0)


async def test_a_redis_that_never_answers_is_silent_within_the_timeout() -> None:
    probe = _probe(_Server(delay_s=None))
    started = time.monotonic()
    assert not await probe.answers()
    assert probe.silent
    assert time.monotonic() - started < 1.0


async def test_an_answer_within_the_timeout_is_heard() -> None:
    probe = _probe(_Server(delay_s=0.01))
    assert await probe.answers()
    assert not probe.silent


async def test_a_busy_loop_does_not_take_an_answer_it_has_not_read_for_silence() -> None:
    # given a Redis that answers within 30 ms, and a loop busy with its own work for twice the probe's timeout
    probe = _probe(_Server(delay_s=0.03), timeout_s=0.2)

    async def hog() -> None:
        await asyncio.sleep(0)
        spin_until = time.thread_time() + 0.4  # the loop is busy (a large batch): nothing else on it runs meanwhile
        while time.thread_time() < spin_until:
            pass

    hogging: asyncio.Task[Any] = asyncio.create_task(hog())
    # when the probe asks while the loop is blocked
    answered = await probe.answers()
    await hogging
    # then the loop's own work does not count as silence: the answer is read, Redis is not called silent
    assert answered
    assert not probe.silent


async def test_a_process_the_machine_did_not_run_does_not_take_that_time_for_silence() -> None:
    # given a Redis that answers within 30 ms, and a loop thread that gets no CPU for twice the probe's timeout
    # (a crowded machine: a blocking sleep spends wall time and no CPU time, as a descheduled thread does)
    probe = _probe(_Server(delay_s=0.03), timeout_s=0.2)

    async def descheduled() -> None:
        await asyncio.sleep(0)
        time.sleep(0.4)  # noqa: ASYNC251 - the point: the loop's thread runs nothing, as if not scheduled

    stalling: asyncio.Task[Any] = asyncio.create_task(descheduled())
    # when the probe asks across that stall
    answered = await probe.answers()
    await stalling
    # then the stall counts as one poll at most: the answer is read on the next ones, Redis is not called silent
    assert answered
    assert not probe.silent


async def test_a_pool_whose_every_connection_is_busy_does_not_delay_the_ping(redis_server: RedisServer) -> None:
    # given a client whose pool has two connections, and a probe that took one at its start
    client = connect(redis_server.url, timeout_s=5.0, retries=0)
    pool = cast(BlockingConnectionPool, client.connection_pool)
    pool.max_connections = 2
    probe = StoreProbe(client, timeout_s=0.2, keep_s=0.0)
    await probe.open()
    # when every other connection is out, held by slow work (a batch of starts), so a command waits for a free one
    held = await pool.get_connection()
    try:
        started = time.monotonic()
        answered = await probe.answers()
        # then the PING goes over the probe's own connection: answered at once, Redis is not called silent
        assert answered
        assert time.monotonic() - started < 0.2
    finally:
        await pool.release(held)
        await probe.aclose()
        await client.aclose()
