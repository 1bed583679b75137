"""The front door's listening socket, with the two limits aiohttp leaves to a proxy: a deadline for a request's
head, and a cap on open connections.

Without them, a client that opens many connections and sends one header line every few seconds ("slow loris")
holds each of them for aiohttp's keep-alive timeout, an hour: 20,000 such sockets made a node unreachable for a
minute and took its memory from 80 to 282 MiB (issue 17).

- **Head deadline** (`--http-header-timeout-s`): from the moment a connection opens, or the first byte of its next
  request, the request line and headers must be complete within the deadline; else the connection gets a 408 and
  is closed. A request's body is not under this deadline (the body limit bounds it; a proxy bounds its time).
- **Idle keep-alive** (`--http-keepalive-timeout-s`, passed to `web.AppRunner` as aiohttp's `keepalive_timeout`):
  a connection with no request in flight is closed after this.
- **Connection cap** (`--max-connections`): one connection more than the cap is answered 503 at once and closed,
  so that the connections a node already serves, and its memory, are not pushed over the edge.

Each connection's aiohttp protocol is wrapped (composition: aiohttp's `RequestHandler` is built by its `Server`,
which takes no class to use); the wrapper passes every event through and reads two counters of the handler to
know whether a request's head is in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Final, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from procengine.settings import Settings

__all__ = ["ConnectionGuard", "GuardedSite"]

log = logging.getLogger(__name__)


def _plain_answer(status: int, reason: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer in the error envelope, written on a socket aiohttp never sees a request on."""
    body = json.dumps({"success": False, "error": {"code": code, "message": message}}, separators=(",", ":"))
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


_TOO_SLOW: Final = _plain_answer(408, "Request Timeout", "REQUEST_TIMEOUT", "the request's head took too long")
_TOO_MANY: Final = _plain_answer(
    503, "Service Unavailable", "UNAVAILABLE", "this node has as many connections as it takes; retry", retry_after=1
)
_WARN_EVERY_S: Final = 10.0


class ConnectionGuard:
    """The protocol factory of the listening socket: counts open connections, refuses those over the cap, and
    gives each one a head deadline."""

    def __init__(self, server: web.Server, *, max_connections: int, header_timeout_s: float) -> None:
        self.server = server
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open = 0
        """Connections open now (those refused over the cap not counted)."""
        self.refused = 0
        """Connections answered 503 because the cap was reached, since start."""
        self.timed_out = 0
        """Connections closed because their request's head was not in by the deadline, since start."""
        self._warned_at = -_WARN_EVERY_S

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.max_connections:
            self.refused += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "connection cap reached: %d open (--max-connections); new ones answered 503 (%d so far)",
                    self.open,
                    self.refused,
                )
            return _Refused()
        return _Guarded(self, self.server())


class _Refused(asyncio.Protocol):
    """A connection over the cap: a 503 and closed, before reading anything."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # no isinstance: uvloop's transports are not asyncio's
        transport.write(_TOO_MANY)
        transport.close()  # after what was written is flushed


class _Guarded(asyncio.Protocol):
    """aiohttp's handler of one connection, with the head deadline and the count around it."""

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.heads_before = 0
        """How many requests' heads the handler had parsed when the deadline was set."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self.guard.open += 1
        self._arm()  # a connection that sends nothing is a slow head too
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        idle = self.deadline is None and not self.inner._request_in_progress and not self.inner._messages
        if idle and data:
            self._arm()  # the first byte of the next request's head
        self.inner.data_received(data)
        if self.deadline is not None and self.inner._request_count > self.heads_before:
            self._disarm()

    def eof_received(self) -> None:
        self.inner.eof_received()  # None: the transport closes its end

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.open -= 1
        self.transport = None
        self.inner.connection_lost(exc)

    def _arm(self) -> None:
        self.heads_before = self.inner._request_count
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(self.guard.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expired(self) -> None:
        self.deadline = None
        if self.transport is None or self.inner._request_count > self.heads_before:
            return
        self.guard.timed_out += 1
        self.transport.write(_TOO_SLOW)
        self.inner.force_close()  # closes the transport once the 408 is flushed; connection_lost follows


class GuardedSite(web.BaseSite):
    """aiohttp's `TCPSite`, listening through a `ConnectionGuard`."""

    __slots__ = ("_host", "_port", "guard")

    def __init__(self, runner: web.AppRunner, settings: Settings) -> None:
        super().__init__(runner)
        self._host = settings.host
        self._port = settings.port
        assert runner.server is not None  # BaseSite refused a runner that was not set up
        self.guard = ConnectionGuard(
            runner.server,
            max_connections=settings.max_connections,
            header_timeout_s=settings.http_header_timeout_s,
        )

    @property
    def port(self) -> int:
        """The port it listens on (the one the system gave for port 0), once started."""
        if self._server is not None:
            for sock in getattr(self._server, "sockets", ()):
                return int(sock.getsockname()[1])
        return self._port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        await super().start()  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.guard, self._host, self._port, backlog=self._backlog)
