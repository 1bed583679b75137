"""Requests for an execution that another live node drives, carried to that node's actor through Redis alone.

    requester                                    owner
    XADD <p>:node:{owner}:inbox  request   ->   XREAD its inbox, hand the request to the actor
    BLPOP <p>:reply:{token}                <-   LPUSH <p>:reply:{token}  the actor's answer (or its error)

The answer is the actor's own: the same result or the same error (409 with the current status, 413, ...).
Every request carries a deadline by the Redis clock: the inbox entry's id (the server's time when it was
added) plus the time the requester waits. The transition the request asks for is written by commit.lua only
before that deadline (`not_after_ms`), so a request whose requester has given up (503, Retry-After) never
takes effect afterwards. docs/architecture.md argues the design: the owner dying mid-request, a lost answer,
a requester that gives up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from redis.asyncio import Redis

from procengine.actors.messages import Command
from procengine.errors import CodecError, ProcEngineError, StoreFailed, Unavailable, from_wire, to_wire
from procengine.runtime.cancellation import check_cancelled
from procengine.store.codec import decode, encode
from procengine.store.failures import store_errors, translated
from procengine.store.keys import Keys

__all__ = ["Handler", "Router"]

log = logging.getLogger(__name__)

INBOX_MAXLEN: Final = 10_000
INBOX_TTL_MS: Final = 60_000
"""A dead node's inbox goes away on its own; every request renews the TTL of its owner's."""
REPLY_TTL_MS: Final = 60_000
"""An answer nobody popped (its requester gave up) goes away on its own."""


Handler = Callable[[int, Command], Awaitable[dict[str, Any]]]
"""What the owner does with a forwarded command: the actor's answer as JSON data; raises ProcEngineError."""


class Router:
    def __init__(self, redis: Redis, keys: Keys, node_id: str, redis_timeout_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.node_id = node_id
        # blocking reads in slices shorter than the client's socket timeout, which would otherwise cut them
        self._slice_s = max(min(redis_timeout_s / 2, 1.0), 0.05)
        self.serving = asyncio.Event()
        """Set while this node reads its inbox (tests wait on it)."""

    # --- the requester's side ---------------------------------------------------------------------

    @translated
    async def forward(self, owner: str, execution_id: int, command: Command, wait_s: float) -> dict[str, Any]:
        """The owner's answer (JSON data) to `command`; its error raised as ours; Unavailable (Retry-After) if
        no answer came within `wait_s`, in which case the command will never take effect."""
        reply = self.keys.reply(uuid.uuid4().hex)
        wait_ms = int(wait_s * 1000)
        request = {"execution": execution_id, "command": command.to_wire(), "reply": reply, "waitMs": wait_ms}
        inbox = self.keys.inbox(owner)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(inbox, {"request": encode(request)}, maxlen=INBOX_MAXLEN, approximate=True)
            pipe.pexpire(inbox, INBOX_TTL_MS)
            await pipe.execute()
        # BLPOP's timeout runs on the server's clock from a moment after the XADD: by the time it says "no
        # answer", the deadline (the XADD's time + wait) has passed there too, and the command cannot take effect
        answer = await self._pop(reply, wait_s + 1.0)
        if answer is None:
            raise Unavailable(
                f"execution {execution_id}: its owner, node {owner}, did not answer within {wait_s:.0f} s; the "
                "request was not applied; try again",
                retry_after_s=1,
            )
        if "error" in answer:
            raise from_wire(answer["error"])
        result: dict[str, Any] = answer["result"]
        return result

    async def _pop(self, key: str, wait_s: float) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            check_cancelled()
            popped: Any = await self.redis.blpop([key], timeout=min(left, self._slice_s))
            if popped is not None:
                answer: dict[str, Any] = decode(popped[1])
                return answer
        return None

    # --- the owner's side -------------------------------------------------------------------------

    async def serve_forever(self, handle: Handler, max_backoff_s: float = 5.0) -> None:
        """Read this node's inbox and answer each request (each in its own task, all owned here) until
        cancelled; a lost connection is retried with backoff, from where reading stopped."""
        last_id = "0-0"
        backoff = 0.05
        async with asyncio.TaskGroup() as requests:
            while True:
                check_cancelled()
                try:
                    self.serving.set()
                    while True:
                        check_cancelled()  # redis-py may absorb a cancel that lands during the blocking read
                        last_id = await self._read(last_id, handle, requests)
                        backoff = 0.05
                except (StoreFailed, OSError) as exc:
                    check_cancelled()
                    self.serving.clear()
                    log.warning("node %s: inbox read failed (%s); again in %.2f s", self.node_id, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, max_backoff_s)

    @translated
    async def _read(self, last_id: str, handle: Handler, requests: asyncio.TaskGroup) -> str:
        block_ms = int(self._slice_s * 1000)
        found: Any = await self.redis.xread({self.keys.inbox(self.node_id): last_id}, count=100, block=block_ms)
        for _, entries in found or []:
            for entry_id, fields in entries:
                last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                requests.create_task(self._answer(last_id, fields, handle))
        return last_id

    async def _answer(self, entry_id: str, fields: dict[bytes, bytes], handle: Handler) -> None:
        """Hand one request to `handle` and push what it answered; never raises (a task of the inbox's group)."""
        try:
            request = decode(fields.get(b"request"))
            reply = str(request["reply"])
            execution_id = int(request["execution"])
            not_after_ms = int(entry_id.split("-", 1)[0]) + int(request["waitMs"])
            command = Command.from_wire(request["command"], not_after_ms)
        except (CodecError, KeyError, TypeError, ValueError) as exc:
            log.warning("node %s: inbox entry %s dropped: %r", self.node_id, entry_id, exc)
            return
        try:
            answer: dict[str, Any] = {"result": await handle(execution_id, command)}
        except ProcEngineError as exc:
            answer = {"error": to_wire(exc)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the actor's own failure: the requester gets a 503, this node logs it
            log.exception("node %s: forwarded %s of %s failed", self.node_id, command.verb, execution_id)
            answer = {"error": to_wire(Unavailable(f"execution {execution_id}: its owner failed: {exc!r}"))}
        try:
            with store_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.lpush(reply, encode(answer))
                    pipe.pexpire(reply, REPLY_TTL_MS)
                    await pipe.execute()
        except (StoreFailed, OSError) as exc:  # the requester times out and answers 503: logged, not fatal
            log.warning("node %s: answer to %s of %s lost: %s", self.node_id, command.verb, execution_id, exc)
