"""The http task against a real local server: what it returns, how it fails, and where it refuses to go.

Each failure is checked through `run_attempt`, the engine's own reading of a handler's exception, so the tests
pin what `catch` and the retry policy see: the error type and whether the attempt may be retried.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from procengine.actors.attempt import Attempt, run_attempt
from procengine.engine.outcomes import RunTask
from procengine.engine.state import StackEntry
from procengine.tasks import http as http_task
from procengine.tasks.http import AllowEntry, http_handler, parse_allow_entry
from procengine.tasks.registry import Handler, TaskContext

Lookup = Callable[[str, int], Awaitable[list[Any]]]


@dataclass
class Upstream:
    """A local aiohttp server and what it was asked."""

    server: TestServer
    hits: Counter[str]

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def allow(self) -> list[str]:
        return [f"127.0.0.1:{self.port}"]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def redirect(self, to: str, *, path: str = "/redirect") -> str:
        return str(URL(self.url(path)).with_query(to=to))


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    hits: Counter[str] = Counter()
    release = asyncio.Event()

    @web.middleware
    async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        hits[request.path] += 1
        return await handler(request)

    async def json_doc(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"}, headers={"X-Thing": "1"})

    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        token = request.headers.get("X-Token")
        return web.json_response({"method": request.method, "json": body, "token": token, "type": request.content_type})

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"authorization": request.headers.get("Authorization"), "host": request.host})

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain words")

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "no such order"}, status=404)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503, text="try later")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 2048)

    async def big_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: chunked, so only reading tells the size
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"y" * 512)
        await response.write_eof()
        return response

    async def redirect(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def loop(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/loop"})

    app = web.Application(middlewares=[count])
    app.router.add_get("/json", json_doc)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/text", text)
    app.router.add_get("/missing", missing)
    app.router.add_get("/broken", broken)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/big-stream", big_stream)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/loop", loop)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Upstream(server, hits)
    finally:
        release.set()
        await server.close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[list[str]]]]:
    """Names under .invalid answered from a table: each lookup takes the next answer (the last one repeats), so a
    test can change a name's address between lookups the way a rebinding DNS server would."""
    answers: dict[str, list[list[str]]] = {}
    real_lookup: Lookup = http_task._lookup

    async def lookup(host: str, port: int) -> list[Any]:
        if host not in answers:
            return await real_lookup(host, port)
        queue = answers[host]
        return [ip_address(a) for a in (queue.pop(0) if len(queue) > 1 else queue[0])]

    monkeypatch.setattr(http_task, "_lookup", lookup)
    yield answers


async def attempt(handler: Handler, task_input: dict[str, Any]) -> Attempt:
    """One attempt of an `http` task, read the way the engine reads it."""
    step = RunTask(StackEntry(1, "call", "task", 1, "main"), "http", task_input, None)
    return await run_attempt(handler, step, TaskContext(1, "call", 1), 16 * 1024 * 1024)


async def test_a_get_returns_the_status_lowercase_headers_and_the_parsed_json(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.url("/json")})

    assert result.ok, result.value
    assert result.value["status"] == 200
    assert result.value["body"] == {"hello": "world"}
    assert result.value["headers"]["x-thing"] == "1"
    assert result.value["headers"]["content-type"].startswith("application/json")


async def test_a_post_sends_the_json_body_and_the_headers(upstream: Upstream) -> None:
    task_input = {"method": "post", "url": upstream.url("/echo"), "headers": {"X-Token": "t1"}, "json": {"n": [1, 2]}}

    result = await attempt(http_handler(upstream.allow), task_input)

    assert result.ok, result.value
    assert result.value["body"] == {"method": "POST", "json": {"n": [1, 2]}, "token": "t1", "type": "application/json"}


async def test_a_text_response_is_text_and_a_head_has_an_empty_body(upstream: Upstream) -> None:
    handler = http_handler(upstream.allow)

    text = await attempt(handler, {"url": upstream.url("/text")})
    head = await attempt(handler, {"method": "HEAD", "url": upstream.url("/text")})

    assert text.ok and text.value["body"] == "plain words"
    assert head.ok and (head.value["status"], head.value["body"]) == (200, "")


async def test_a_4xx_fails_as_HttpError_which_is_not_retried(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.url("/missing")})

    assert (result.ok, result.error_type, result.retry) == (False, "HttpError", False)
    assert "404 Not Found" in result.value and "no such order" in result.value


async def test_a_5xx_fails_as_HttpServerError_which_is_retried(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.url("/broken")})

    assert (result.ok, result.error_type, result.retry) == (False, "HttpServerError", True)
    assert "503" in result.value and "try later" in result.value


async def test_the_status_of_a_failed_response_is_on_the_exception(upstream: Upstream) -> None:
    with pytest.raises(http_task.HttpError) as raised:
        await http_handler(upstream.allow)({"url": upstream.url("/missing")}, TaskContext(1, "call", 1))

    assert raised.value.status == 404


async def test_no_response_within_timeoutMs_fails_as_Timeout_which_is_retried(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.url("/slow"), "timeoutMs": 50})

    assert (result.ok, result.error_type, result.retry) == (False, "Timeout", True)
    assert "within 50 ms" in result.value


async def test_a_refused_connection_fails_as_HttpConnectionError_which_is_retried() -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]

        result = await attempt(http_handler([f"127.0.0.1:{port}"]), {"url": f"http://127.0.0.1:{port}/"})

    assert (result.ok, result.error_type, result.retry) == (False, "HttpConnectionError", True)


async def test_a_host_that_is_not_allowed_is_refused_before_any_request(upstream: Upstream) -> None:
    result = await attempt(http_handler([]), {"url": upstream.url("/json")})

    assert (result.ok, result.error_type, result.retry) == (False, "HttpNotAllowed", False)
    assert f"--http-allow 127.0.0.1:{upstream.port}" in result.value
    assert not upstream.hits


async def test_an_entry_without_a_port_allows_only_the_default_port(upstream: Upstream) -> None:
    result = await attempt(http_handler(["127.0.0.1"]), {"url": upstream.url("/json")})

    assert (result.error_type, result.retry) == ("HttpNotAllowed", False)
    assert not upstream.hits


async def test_a_redirect_within_the_allowed_host_is_followed(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.redirect("/json")})

    assert result.ok, result.value
    assert result.value["body"] == {"hello": "world"}
    assert upstream.hits == Counter({"/redirect": 1, "/json": 1})


async def test_a_303_after_a_post_is_followed_with_a_get_and_no_body(upstream: Upstream) -> None:
    url = str(URL(upstream.url("/redirect")).with_query(to="/echo", status="303"))

    result = await attempt(http_handler(upstream.allow), {"method": "POST", "url": url, "json": {"a": 1}})

    assert result.ok, result.value
    assert result.value["body"]["method"] == "GET" and result.value["body"]["json"] is None


async def test_a_redirect_to_a_host_that_is_not_allowed_is_refused(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.redirect("http://elsewhere.invalid/x")})

    assert (result.error_type, result.retry) == ("HttpNotAllowed", False)
    assert "a redirect to http://elsewhere.invalid/x" in result.value
    assert "--http-allow elsewhere.invalid:80" in result.value


async def test_a_redirect_to_the_metadata_address_is_refused_even_when_it_is_allowed(upstream: Upstream) -> None:
    handler = http_handler([*upstream.allow, "169.254.169.254"])

    result = await attempt(handler, {"url": upstream.redirect("http://169.254.169.254/latest/meta-data/")})

    assert (result.error_type, result.retry) == ("HttpNotAllowed", False)
    assert "metadata" in result.value


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    upstream: Upstream, fake_dns: dict[str, list[list[str]]]
) -> None:
    fake_dns["other.invalid"] = [["127.0.0.1"]]
    handler = http_handler([*upstream.allow, f"other.invalid:{upstream.port}"])
    headers = {"Authorization": "Bearer secret"}

    same = await attempt(handler, {"url": upstream.redirect("/whoami"), "headers": headers})
    to_other = upstream.redirect(upstream.url("/whoami", "other.invalid"))
    other = await attempt(handler, {"url": to_other, "headers": headers})

    assert same.ok and same.value["body"]["authorization"] == "Bearer secret"
    assert other.ok and other.value["body"] == {"authorization": None, "host": f"other.invalid:{upstream.port}"}


async def test_a_redirect_loop_fails_as_HttpTooManyRedirects(upstream: Upstream) -> None:
    result = await attempt(http_handler(upstream.allow), {"url": upstream.url("/loop")})

    assert (result.error_type, result.retry) == ("HttpTooManyRedirects", False)
    assert upstream.hits["/loop"] == http_task.MAX_REDIRECTS + 1


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/", "data:,x"])
async def test_a_redirect_to_a_scheme_other_than_http_is_HttpNotAllowed(upstream: Upstream, target: str) -> None:
    # before: file:///... failed as ValueError (URL.origin() of a URL without a host), not as the rules' refusal
    result = await attempt(http_handler(upstream.allow), {"url": upstream.redirect(target)})

    assert (result.error_type, result.retry) == ("HttpNotAllowed", False), result.value
    assert f"a redirect to {target}" in result.value


@pytest.mark.parametrize("status", ["301", "302", "303", "307", "308"])
@pytest.mark.parametrize("location", ["http://[::1", "", "   "])
async def test_a_redirect_whose_Location_is_missing_or_not_a_URL_fails_as_HttpBadRedirect(
    upstream: Upstream, status: str, location: str
) -> None:
    # before: the task succeeded with {"status": 302, ...}, as if the redirect were the answer
    url = str(URL(upstream.url("/redirect")).with_query(to=location, status=status))

    result = await attempt(http_handler(upstream.allow), {"url": url})

    assert (result.error_type, result.retry) == ("HttpBadRedirect", False), result.value
    assert f"{status} redirect" in result.value


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.10.1/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
async def test_link_local_metadata_multicast_and_unspecified_addresses_are_refused_even_when_allowed(url: str) -> None:
    host = URL(url).raw_host
    assert host is not None

    result = await attempt(http_handler([f"[{host}]" if ":" in host else host]), {"url": url, "timeoutMs": 2000})

    assert (result.error_type, result.retry) == ("HttpNotAllowed", False)
    assert "never reachable" in result.value


async def test_an_allowed_name_is_refused_when_any_of_its_addresses_is_forbidden(
    fake_dns: dict[str, list[list[str]]],
) -> None:
    fake_dns["mixed.invalid"] = [["127.0.0.1", "169.254.169.254"]]

    result = await attempt(http_handler(["mixed.invalid"]), {"url": "http://mixed.invalid/"})

    assert (result.error_type, result.retry) == ("HttpNotAllowed", False)
    assert "mixed.invalid is at 169.254.169.254" in result.value


async def test_the_connection_goes_to_the_checked_address_whatever_dns_says_later(
    upstream: Upstream, fake_dns: dict[str, list[list[str]]]
) -> None:
    fake_dns["rebind.invalid"] = [["127.0.0.1"], ["169.254.169.254"]]

    result = await attempt(
        http_handler([f"rebind.invalid:{upstream.port}"]), {"url": upstream.url("/whoami", "rebind.invalid")}
    )

    assert result.ok, result.value
    assert result.value["body"]["host"] == f"rebind.invalid:{upstream.port}"
    assert fake_dns["rebind.invalid"] == [["169.254.169.254"]]  # looked up once: by the check, not by aiohttp


@pytest.mark.parametrize("path", ["/big", "/big-stream"])
async def test_a_body_over_the_cap_fails_as_HttpResponseTooLarge(upstream: Upstream, path: str) -> None:
    result = await attempt(http_handler(upstream.allow, max_body_bytes=1024), {"url": upstream.url(path)})

    assert (result.error_type, result.retry) == ("HttpResponseTooLarge", False)
    assert "1024 bytes" in result.value


@pytest.mark.parametrize(
    "task_input",
    [
        {},
        {"url": 42},
        {"url": "ftp://127.0.0.1/file"},
        {"url": "/relative"},
        {"url": "http://127.0.0.1/", "method": "TRACE"},
        {"url": "http://127.0.0.1/", "headers": {"X-N": 1}},
        {"url": "http://127.0.0.1/", "headers": {"X-A": "a\r\nX-B: b"}},
        {"url": "http://127.0.0.1/", "timeoutMs": 0},
        {"url": "http://127.0.0.1/", "timeoutMs": True},
        {"url": "http://127.0.0.1/", "body": "typo for json"},
    ],
)
async def test_input_that_does_not_describe_a_request_fails_as_HttpBadInput(task_input: dict[str, Any]) -> None:
    result = await attempt(http_handler(["127.0.0.1"]), task_input)

    assert (result.error_type, result.retry) == ("HttpBadInput", False)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("api.example.com", AllowEntry("api.example.com", None)),
        ("API.Example.com.:8443", AllowEntry("api.example.com", 8443)),
        ("127.0.0.1:8080", AllowEntry("127.0.0.1", 8080)),
        ("[::1]:8080", AllowEntry("::1", 8080)),
        ("[0:0::1]", AllowEntry("::1", None)),
        ("::1", AllowEntry("::1", None)),
        ("bücher.example", AllowEntry("xn--bcher-kva.example", None)),
    ],
)
def test_allow_entries_are_parsed_into_one_spelling(entry: str, expected: AllowEntry) -> None:
    assert parse_allow_entry(entry) == expected


@pytest.mark.parametrize("entry", ["", "host:", "host:http", "host:0", "host:70000", "[::1", "http://host", "a@b"])
def test_a_malformed_allow_entry_is_a_value_error(entry: str) -> None:
    with pytest.raises(ValueError, match="--http-allow"):
        http_handler([entry])


def test_the_public_api() -> None:
    assert set(http_task.__all__) == {
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
    }
