"""Server-sent events (text/event-stream) parsed from the bytes of a response, as the HTML standard says.

The stream is split into lines here rather than with aiohttp's `readline`, which refuses lines over its
buffer (64 KiB) and knows only `\\n`: an event's data is a log entry whose detail may be long, and the
standard allows `\\r\\n` and `\\r` as line ends. Comment lines (`: keep-alive`, the server's heartbeat) are
skipped; an event without data is not dispatched; an event cut off by the end of the stream is dropped.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "parse_events"]

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type (`message` unless named), its data (lines joined by \\n) and the last
    event id the stream gave (what a reconnecting client sends back as Last-Event-ID)."""

    event: str
    data: str
    id: str | None


class _Builder:
    """The fields of the event being read, and the stream's last event id, which outlives each event."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.event = ""
        self.data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.event = value
        elif field == "id" and "\0" not in value:
            self.last_id = value
        return None  # `retry` and unknown fields: nothing for this client to do

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self.event, self.data
        self.event, self.data = "", []
        if not data:
            return None
        return ServerSentEvent(event=event or "message", data="\n".join(data), id=self.last_id)


async def parse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream given as chunks of bytes, cut anywhere (inside a line or a UTF-8 character)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    builder = _Builder()
    pending = ""
    first = True
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        pending += text
        # a \r at the end may be the first half of \r\n: keep it until the next chunk says
        held = "\r" if pending.endswith("\r") else ""
        *lines, pending = _LINE_END.split(pending[: len(pending) - len(held)])
        pending += held
        for line in lines:
            event = builder.feed(line)
            if event is not None:
                yield event
    pending += decoder.decode(b"", final=True)
    if pending.endswith("\r"):  # the stream's last line end was a lone \r
        for line in _LINE_END.split(pending)[:-1]:
            event = builder.feed(line)
            if event is not None:
                yield event
