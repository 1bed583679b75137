"""A bulk operation's commands put straight into the mailboxes of the actors this node drives, a window of them
waiting at once, each answered through its own reply: what `Node._ask` does for one request (the same command, so
the same fenced, audited transition by the actor), without an asyncio task, a deadline and an activation per item.
The bulk pause of 10,000 is bound by the node's CPU (docs/performance.md, "Issue 23"), and that per-item machinery
was a sixth of it.

Only what `_ask` would deliver here at once is delivered: a live actor of the caller's tenant (another tenant's
execution is never touched: it goes the whole way and is refused there as not found), running, whose mailbox takes
the request. Everything else — no live actor here (activated here, or driven by another node: forwarded), a full or
closed mailbox, an actor that stopped before it answered — is left out of the answer, for the caller to send the
whole way (`apply_item`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import Any

from procengine.actors.messages import Command, Request
from procengine.errors import MailboxClosed, MailboxFull, Unavailable
from procengine.node.registry import Registry
from procengine.statuses import Status

__all__ = ["ask_local"]


async def ask_local(
    registry: Registry, ids: Iterable[int], command: Command, *, window: int, deadline_s: float
) -> dict[int, Any]:
    """executionID -> the actor's answer (its result, or the ProcEngineError it raised) for each of `ids` it was
    delivered to and answered within `deadline_s`; at most `window` wait at once. A request not answered by the
    deadline is cancelled, so its actor never applies it afterwards (as `_ask`'s)."""
    loop = asyncio.get_running_loop()
    answers: dict[int, Any] = {}
    waiting: dict[int, asyncio.Future[Any]] = {}
    todo = iter(ids)
    all_answered = loop.create_future()
    tenant = command.caller.tenant
    closed = False

    def send() -> None:
        if closed:
            return
        for execution_id in todo:
            actor = registry.get(execution_id)
            if actor is None or actor.tenant != tenant or actor.status is not Status.RUNNING:
                continue
            reply: asyncio.Future[Any] = loop.create_future()
            try:
                actor.mailbox.put(Request(command, reply))
            except (MailboxClosed, MailboxFull):
                continue
            waiting[execution_id] = reply
            reply.add_done_callback(functools.partial(answered, execution_id))
            if len(waiting) >= window:
                return
        if not waiting and not all_answered.done():
            all_answered.set_result(None)

    def answered(execution_id: int, reply: asyncio.Future[Any]) -> None:
        waiting.pop(execution_id, None)
        if not reply.cancelled():
            error = reply.exception()
            if not isinstance(error, Unavailable):  # the actor stopped (or is busy): the whole way, again
                answers[execution_id] = error if error is not None else reply.result()
        send()

    send()
    try:
        async with asyncio.timeout(deadline_s):
            await all_answered
    except TimeoutError:
        pass  # what was not answered goes the whole way
    finally:  # timed out or cancelled: nothing more is sent, and what was not answered is not applied later
        closed = True
        for reply in list(waiting.values()):
            reply.cancel()
    return answers
