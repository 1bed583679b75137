"""The server-sent events parser: lines cut anywhere, every line end the standard allows, comments, ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from procengine.client.sse import ServerSentEvent, parse_events


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _parsed(*parts: bytes) -> list[ServerSentEvent]:
    return [event async for event in parse_events(_chunks(*parts))]


STREAM = (
    b": keep-alive\n\n"
    b'id: 1-0\nevent: started\ndata: {"a": "\xc3\xa9"}\n\n'
    b"data: first line\ndata: second line\n\n"
    b"id: 2-0\nevent: completed\ndata:no space\n\n"
)
EXPECTED = [
    ServerSentEvent(event="started", data='{"a": "é"}', id="1-0"),
    ServerSentEvent(event="message", data="first line\nsecond line", id="1-0"),  # the last id stays
    ServerSentEvent(event="completed", data="no space", id="2-0"),
]


async def test_events_comments_and_ids() -> None:
    assert await _parsed(STREAM) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7])
async def test_chunks_cut_anywhere_even_inside_a_character(size: int) -> None:
    parts = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert await _parsed(*parts) == EXPECTED


@pytest.mark.parametrize("end", [b"\r\n", b"\r"])
async def test_every_line_end_of_the_standard(end: bytes) -> None:
    stream = STREAM.replace(b"\n", end)
    assert await _parsed(stream) == EXPECTED
    assert await _parsed(*[stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


async def test_an_event_without_data_or_cut_off_by_the_end_is_not_given() -> None:
    events = await _parsed(b"\xef\xbb\xbfid: 5-0\nevent: nothing\n\n", b"data: whole\n\n", b"data: cut off\n")
    assert events == [ServerSentEvent(event="message", data="whole", id="5-0")]
