"""The built-in `http` task: one outbound request, to where the operator says requests may go.

Definitions are written by tenants, so a task that makes requests is a way into the node's network (SSRF).
Every URL, the first and each redirect target, passes the same checks before anything is sent:

- its host and port match a `--http-allow host[:port]` entry (none by default). An entry without a port
  allows the scheme's default port only (80 for http, 443 for https): allowing a web API does not open the
  other services on that host;
- the host is resolved here, and refused if ANY address is link-local (169.254.0.0/16, fe80::/10), a cloud
  metadata address, multicast or unspecified, also when written inside an IPv6 address (::ffff:a.b.c.d,
  64:ff9b::/96, 6to4). Loopback and private addresses are reachable when their host is allowed;
- the connection goes to exactly the checked addresses (aiohttp asks a resolver that only knows them), so a DNS
  answer that changes between the check and the connect (rebinding) cannot move the request;
- redirects are not followed by aiohttp but here, at most `MAX_REDIRECTS`, each target checked again.

Failures (the failure's type is the class name, which `catch` names):

HttpTaskError               root, never raised itself
├── HttpBadInput            the input does not describe a request        not retried
├── HttpNotAllowed          a URL or address the rules refuse            not retried
├── HttpTooManyRedirects    more than MAX_REDIRECTS redirects            not retried
├── HttpBadRedirect         a redirect without a Location one can follow not retried
├── HttpResponseTooLarge    a body over the cap                          not retried
├── HttpConnectionError     no connection, or it broke; DNS failure      retried
└── HttpStatusError         (status: int)
    ├── HttpError           a 4xx response                               not retried
    └── HttpServerError     a 5xx response                               retried
Timeout                     no complete response within timeoutMs        retried
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, ClassVar, Final

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from procengine.runtime.tracing import inject
from procengine.tasks.registry import Handler, TaskContext, TaskFailed

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "AllowEntry",
    "HttpBadInput",
    "HttpBadRedirect",
    "HttpConnectionError",
    "HttpError",
    "HttpNotAllowed",
    "HttpResponseTooLarge",
    "HttpServerError",
    "HttpStatusError",
    "HttpTaskError",
    "HttpTooManyRedirects",
    "Timeout",
    "http_handler",
    "parse_allow_entry",
]

MAX_REDIRECTS: Final = 5
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
"""The default cap on a response body (after decompression): the output goes into the execution's memory."""

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_INPUT_FIELDS: Final = frozenset({"method", "url", "headers", "json", "timeoutMs"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
"""Dropped when a redirect leaves the origin: a token meant for one host is not handed to another."""
_ERROR_SNIPPET_BYTES: Final = 300
_CHUNK_BYTES: Final = 64 * 1024

_METADATA_ADDRESSES: Final = frozenset(ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
_THIS_NETWORK: Final = IPv4Network("0.0.0.0/8")
"""Linux connects 0.x.x.x to the local host; none of it is a real destination."""
_NAT64: Final = IPv6Network("64:ff9b::/96")

_IPAddress = IPv4Address | IPv6Address


class HttpTaskError(TaskFailed):
    """Root of the http task's failures."""


class HttpBadInput(HttpTaskError):
    """The task's input does not describe a request; the same input would fail again."""

    retryable: ClassVar[bool] = False


class HttpNotAllowed(HttpTaskError):
    """The URL's host or one of its addresses is not one the http task may reach."""

    retryable: ClassVar[bool] = False


class HttpTooManyRedirects(HttpTaskError):
    """The redirects went on past MAX_REDIRECTS (most likely a loop)."""

    retryable: ClassVar[bool] = False


class HttpBadRedirect(HttpTaskError):
    """A redirect (301, 302, 303, 307, 308) whose Location is missing or not a URL: nothing to follow, and the
    redirect is not the answer the task asked for."""

    retryable: ClassVar[bool] = False


class HttpResponseTooLarge(HttpTaskError):
    """The response body is over the cap; asking again would return the same body."""

    retryable: ClassVar[bool] = False


class HttpConnectionError(HttpTaskError):
    """The host could not be resolved or reached, or the connection broke: worth another attempt."""


class HttpStatusError(HttpTaskError):
    """A response with an error status, kept in `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpError(HttpStatusError):
    """A 4xx response: the request itself is wrong, so the same request would be refused again."""

    retryable: ClassVar[bool] = False


class HttpServerError(HttpStatusError):
    """A 5xx response: the server's trouble, which may pass."""


class Timeout(TaskFailed):
    """No complete response in time. Named like the engine's own element timeout, so one `catch` covers both;
    not a TimeoutError, which the engine would take for its own."""


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One `--http-allow` entry: a host (lowercase, IP literals in canonical form) and a port, or None for the
    scheme's default port."""

    host: str
    port: int | None

    def allows(self, host: str, port: int, scheme: str) -> bool:
        return host == self.host and port == (self.port if self.port is not None else _DEFAULT_PORTS[scheme])


def parse_allow_entry(entry: str) -> AllowEntry:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; ValueError for anything else, so a
    mistyped flag stops the server at startup instead of refusing requests later."""
    text = entry.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"--http-allow {entry!r}: expected [ipv6] or [ipv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    port: int | None = None
    if port_text or text.endswith(":"):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"--http-allow {entry!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    if not host or any(c in host for c in "/?#@ "):
        raise ValueError(f"--http-allow {entry!r}: expected host or host:port")
    return AllowEntry(_canonical_host(host), port)


def _canonical_host(host: str) -> str:
    """The one spelling of a host that entries and URLs are compared in: IP literals normalised, names in
    lowercase IDNA without the trailing dot."""
    bare = host.strip("[]")
    try:
        return str(ip_address(bare))
    except ValueError:
        pass
    raw = URL.build(scheme="http", host=bare.rstrip(".").lower()).raw_host
    return raw or bare


def http_handler(allow: Collection[str], *, timeout_s: float = 30.0, max_body_bytes: int = MAX_BODY_BYTES) -> Handler:
    """The `http` task handler, reaching only the hosts in `allow` (`--http-allow` entries).

    Input: `url` (http or https), `method` (GET by default), `headers` (strings), `json` (the body, sent as
    JSON), `timeoutMs` (for the whole exchange, redirects included; `timeout_s` when absent).
    Output: `{"status", "headers" (lowercase names), "body"}`, the body parsed when the response says it is JSON
    (and parses), else text. 4xx and 5xx responses fail the task (HttpError, HttpServerError)."""
    entries = frozenset(parse_allow_entry(entry) for entry in allow)

    async def http(task_input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        request = _parse_request(task_input, timeout_s)
        try:
            async with asyncio.timeout(request.timeout_s):
                return await _exchange(request, entries, max_body_bytes)
        except TimeoutError:
            # also aiohttp's own read and connect timeouts, which subclass TimeoutError
            ms = round(request.timeout_s * 1000)
            raise Timeout(f"{request.method} {_display(request.url)}: no complete response within {ms} ms") from None

    return http


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: URL
    headers: dict[str, str]
    body: Any
    timeout_s: float


def _parse_request(task_input: Mapping[str, Any], default_timeout_s: float) -> _Request:
    unknown = sorted(set(task_input) - _INPUT_FIELDS)
    if unknown:
        raise HttpBadInput(
            f"unknown input {', '.join(unknown)} (the http task takes {', '.join(sorted(_INPUT_FIELDS))})"
        )
    method = task_input.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise HttpBadInput(f"`method` must be one of {', '.join(sorted(_METHODS))}, got {method!r}")
    return _Request(
        method.upper(),
        _parse_url(task_input.get("url")),
        _traced(_parse_headers(task_input.get("headers"))),
        task_input.get("json"),
        _parse_timeout(task_input.get("timeoutMs"), default_timeout_s),
    )


def _parse_url(value: Any) -> URL:
    if not isinstance(value, str):
        raise HttpBadInput(f"`url` must be a string, got {value!r}")
    try:
        url = URL(value)
    except ValueError as exc:
        raise HttpBadInput(f"`url` {value!r} is not a URL: {exc}") from None
    if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
        raise HttpBadInput(f"`url` must be an absolute http or https URL, got {value!r}")
    return url.with_fragment(None)


def _parse_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise HttpBadInput(f"`headers` must be a map of strings to strings, got {value!r}")
    if any(c in k or c in v for k, v in value.items() for c in "\r\n"):
        raise HttpBadInput("`headers` must not hold line breaks")
    return dict(value)


def _traced(headers: dict[str, str]) -> dict[str, str]:
    """The headers with the W3C trace context of the attempt's span (`traceparent`, `tracestate`) when tracing is on,
    unless the input names its own."""
    trace = inject()
    if trace and not any(name.lower() in trace for name in headers):
        headers.update(trace)
    return headers


def _parse_timeout(value: Any, default_s: float) -> float:
    if value is None:
        return default_s
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise HttpBadInput(f"`timeoutMs` must be a positive number, got {value!r}")
    return float(value) / 1000


async def _exchange(request: _Request, entries: frozenset[AllowEntry], max_body_bytes: int) -> dict[str, Any]:
    """Send the request, following redirects here so each target is checked before it is contacted."""
    resolver = _PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    method, url, headers, body = request.method, request.url, request.headers, request.body
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # a proxy from the environment would connect to hosts nobody checked
        timeout=aiohttp.ClientTimeout(total=None),  # the deadline is the caller's asyncio.timeout
    ) as session:
        for hops in range(MAX_REDIRECTS + 1):
            resolver.pin(url.raw_host or "", await _checked_addresses(url, entries, redirected=hops > 0))
            try:
                async with session.request(method, url, headers=headers, json=body, allow_redirects=False) as response:
                    target = _redirect_target(response, method, url)
                    if target is None:
                        return await _result(response, method, url, max_body_bytes)
                    status = response.status
            except aiohttp.ClientError as exc:
                raise HttpConnectionError(f"{method} {_display(url)}: {exc}") from exc
            if _becomes_get(status, method):
                method, body = "GET", None
            # not URL.origin(): it raises ValueError for a target such as file:///..., which the check at the top
            # of the next hop refuses as HttpNotAllowed like any other URL
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            url = target
    raise HttpTooManyRedirects(f"{request.method} {_display(request.url)}: more than {MAX_REDIRECTS} redirects")


def _becomes_get(status: int, method: str) -> bool:
    """What browsers do, and so what servers expect: 303 means "now GET this", and 301/302 after a POST too."""
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


async def _checked_addresses(url: URL, entries: frozenset[AllowEntry], *, redirected: bool) -> list[_IPAddress]:
    """The addresses `url` may be reached at, or HttpNotAllowed naming the reason and the flag that allows it."""
    what = "a redirect to " if redirected else ""
    if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
        raise HttpNotAllowed(f"{what}{_display(url)} is not an http or https URL")
    host, port = _canonical_host(url.raw_host), url.port or _DEFAULT_PORTS[url.scheme]
    if not any(entry.allows(host, port, url.scheme) for entry in entries):
        flag_value = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise HttpNotAllowed(
            f"{what}{_display(url)}: {flag_value} is not allowed; start the server with --http-allow {flag_value}"
        )
    addresses = await _lookup(url.raw_host, port)
    for address in addresses:
        reason = _refusal(address)
        if reason:
            raise HttpNotAllowed(f"{what}{_display(url)}: {host} is at {address}, {reason}, never reachable by http")
    return addresses


async def _lookup(host: str, port: int) -> list[_IPAddress]:
    """Every address of `host` (itself when it is an IP literal)."""
    try:
        return [ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HttpConnectionError(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(ip_address(info[4][0]) for info in infos))


def _refusal(address: _IPAddress) -> str | None:
    """Why an address is never reachable, whatever the allow list says; None when it may be."""
    for candidate in (address, *_embedded_ipv4(address)):
        if candidate in _METADATA_ADDRESSES:
            return "a cloud metadata address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_unspecified or candidate in _THIS_NETWORK:
            return "an unspecified address"
    return None


def _embedded_ipv4(address: _IPAddress) -> list[IPv4Address]:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), which the network may deliver to."""
    if isinstance(address, IPv4Address):
        return []
    embedded = [address.ipv4_mapped, address.sixtofour]
    if address in _NAT64:
        embedded.append(IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in embedded if a is not None]


class _PinnedResolver(AbstractResolver):
    """What aiohttp asks for a host's addresses: it answers only with the addresses checked for that host, so the
    connection goes where the check looked and nowhere else. (IP literals do not reach a resolver.)"""

    def __init__(self) -> None:
        self._pinned: dict[str, list[_IPAddress]] = {}

    def pin(self, host: str, addresses: list[_IPAddress]) -> None:
        self._pinned[host.rstrip(".").lower()] = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._pinned.get(host.rstrip(".").lower())
        if addresses is None:
            raise HttpNotAllowed(f"{host} was not checked before the connection")
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family in (socket.AF_UNSPEC, address_family):
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=str(address),
                        port=port,
                        family=address_family,
                        proto=0,
                        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    )
                )
        if not results:
            raise OSError(f"{host} has no {family.name} address")
        return results

    async def close(self) -> None:
        pass


def _redirect_target(response: aiohttp.ClientResponse, method: str, url: URL) -> URL | None:
    """Where a redirect points (relative locations resolved against `url`); None for any other response;
    HttpBadRedirect for a redirect whose Location is missing or is not a URL."""
    if response.status not in _REDIRECT_STATUSES:
        return None
    location = response.headers.get(hdrs.LOCATION, "").strip()
    where = f"{method} {_display(url)}: {response.status} redirect"
    if not location:
        raise HttpBadRedirect(f"{where} without a Location")
    try:
        target = url.join(URL(location)).with_fragment(None)
    except (ValueError, TypeError) as exc:
        raise HttpBadRedirect(f"{where} to {location[:200]!r}, which is not a URL: {exc}") from None
    return target  # a target that is not http(s) is refused by the allow-list check, as HttpNotAllowed


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.raw_host, url.port


async def _result(response: aiohttp.ClientResponse, method: str, url: URL, max_body_bytes: int) -> dict[str, Any]:
    """The output for a final response, or the failure for an error status."""
    status = response.status
    if status >= 400:
        snippet = (await response.content.read(_ERROR_SNIPPET_BYTES)).decode("utf-8", "replace").strip()
        message = f"{method} {_display(url)}: {status} {response.reason or ''}".rstrip() + (
            f": {snippet}" if snippet else ""
        )
        raise (HttpError if status < 500 else HttpServerError)(status, message)
    raw = await _read_capped(response, method, url, max_body_bytes)
    return {"status": status, "headers": _response_headers(response), "body": _decode_body(response, raw)}


async def _read_capped(response: aiohttp.ClientResponse, method: str, url: URL, max_body_bytes: int) -> bytes:
    """The body, read no further than the cap: a declared length over it fails before reading, a stream that
    grows past it (chunked, or a small compressed body that inflates) fails as soon as it does."""
    too_large = f"{method} {_display(url)}: the response body is over the {max_body_bytes} bytes the http task reads"
    if response.content_length is not None and response.content_length > max_body_bytes:
        raise HttpResponseTooLarge(too_large)
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) > max_body_bytes:
            raise HttpResponseTooLarge(too_large)
    return bytes(body)


def _response_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Lowercase names; a repeated header's values joined with ", " as HTTP allows."""
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _decode_body(response: aiohttp.ClientResponse, raw: bytes) -> Any:
    try:
        text = raw.decode(response.charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", "replace")
    content_type = response.content_type
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text  # says JSON but is not: the text is still worth having
    return text


def _display(url: URL) -> str:
    """The URL for messages, without credentials or a query that may hold a token."""
    if url.raw_host:  # yarl refuses with_user on a URL without a host (file:///..., data:...): nothing to drop
        url = url.with_user(None)
    return str(url.with_query(None).with_fragment(None))
