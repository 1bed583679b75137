"""A feed holds its event-stream slot from when it is opened until it is closed, read or not: a client that
goes away before its stream started gives the slot back too."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.errors import Unavailable
from procengine.node.feeds import Feeds


async def test_a_feed_never_read_gives_its_slot_back_when_closed_and_only_once() -> None:
    store: Any = object()  # never touched: the feed is not read
    feeds = Feeds(store, limit=1, block_ms=100, draining=lambda: False)

    first = feeds.log(1, "0-0")
    with pytest.raises(Unavailable, match="--max-event-streams"):
        feeds.status("t", "0-0")
    await first.aclose()
    await first.aclose()

    assert feeds.open == 0
    second = feeds.status("t", "0-0")  # the slot is free again
    await second.aclose()
    assert feeds.open == 0
