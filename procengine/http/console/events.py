"""Event streams as server-sent events (text/event-stream), readable with curl, EventSource or the client.

    GET .../executions/processes/{id}/events   the execution's log entries as they are written, from its first
                                               (or after Last-Event-ID); ends after its final transition
    GET .../executions/events                  the tenant's executions' status changes, from now (or after
                                               Last-Event-ID)

Each event is `id: <stream entry id>`, `event: <log event, or "status">`, `data: <JSON>`. While nothing
happens a comment line goes out every few seconds, so a client that has gone is noticed: its stream ends and
frees what it held (one blocking Redis read at a time, no buffer: each write waits for the client).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, Protocol

from aiohttp import web

from procengine.api.feeds import Feed
from procengine.errors import ValidationFailed
from procengine.http.context import STREAMING_KEY, caller, engine
from procengine.http.params import EVENT_ID_PATTERN, EventsQuery, execution_id, read_query

__all__ = ["LAST_EVENT_ID_HEADER", "execution_events", "status_events"]

LAST_EVENT_ID_HEADER: Final = "Last-Event-ID"
_EVENT_ID: Final = re.compile(EVENT_ID_PATTERN)
HEARTBEAT = b": keep-alive\n\n"


async def execution_events(request: web.Request) -> web.StreamResponse:
    feed = await engine(request).log_feed(caller(request), execution_id(request), _after(request))
    return await _stream(request, feed, lambda entry: entry.event)


async def status_events(request: web.Request) -> web.StreamResponse:
    feed = await engine(request).status_feed(caller(request), _after(request))
    return await _stream(request, feed, lambda _: "status")


def _after(request: web.Request) -> str | None:
    """Where to go on from: the Last-Event-ID header an EventSource sends when it reconnects, else `?after=`.

    Both are checked, empty values included (an EventSource sends no header rather than an empty one), so that
    only an id the API gave reaches Redis, which would refuse another once the stream has begun."""
    query = read_query(request, EventsQuery)
    given = request.headers.getall(LAST_EVENT_ID_HEADER, [])
    if not given:
        return query.after
    if len(given) > 1:
        problem = f"given {len(given)} times; give it once"
    elif not _EVENT_ID.fullmatch(given[0]):
        problem = f"{given[0][:50]!r} is not an event id this API gave"
    else:
        return given[0]
    raise ValidationFailed("bad event id", [f"{LAST_EVENT_ID_HEADER}: {problem}"])


async def _stream(request: web.Request, feed: Feed[Any], name: Callable[[Any], str]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    try:
        request[STREAMING_KEY] = True
        await response.prepare(request)
        async for batch in feed:
            if batch is None:
                await response.write(HEARTBEAT)
                continue
            await response.write(b"".join(_event(item, name(item)) for item in batch))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    finally:
        await feed.aclose()  # gives its slot back, also when it was never read
    return response


class _Event(Protocol):
    id: str

    def model_dump_json(self) -> str: ...


def _event(item: _Event, event: str) -> bytes:
    return f"id: {item.id}\nevent: {event}\ndata: {item.model_dump_json()}\n\n".encode()
