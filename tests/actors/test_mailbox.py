"""The actor's mailbox (actors/mailbox.py): bounded, closable, one reader whose wait is one future."""

from __future__ import annotations

import asyncio

import pytest

from procengine.actors.mailbox import Mailbox
from procengine.errors import MailboxClosed, MailboxFull


async def test_a_waiting_get_gets_what_is_put_later() -> None:
    box: Mailbox[str] = Mailbox(2)
    getting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)  # it waits

    box.put("a")

    assert await asyncio.wait_for(getting, 1) == "a"
    assert box.statistics().delivered == 1


async def test_a_get_given_up_leaves_the_item_for_the_next() -> None:
    box: Mailbox[str] = Mailbox(2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await box.get()

    box.put_internal("a")

    assert await asyncio.wait_for(box.get(), 1) == "a"


async def test_a_second_reader_at_once_is_refused() -> None:
    box: Mailbox[str] = Mailbox(2)
    first = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="one reader"):
        await box.get()

    box.put("a")
    assert await asyncio.wait_for(first, 1) == "a"


def test_full_and_closed_refuse_puts_from_outside_not_from_the_actor() -> None:
    box: Mailbox[str] = Mailbox(1)
    box.put("a")
    with pytest.raises(MailboxFull):
        box.put("b")
    box.put_internal("c")
    box.close()
    with pytest.raises(MailboxClosed):
        box.put("d")
    assert box.statistics().queued == 2
