"""The console's static files as the front door serves them: types, security headers, no listing, no traversal.

No browser here (see test_console_browser.py): the front door over a fake engine, on aiohttp's test server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from procengine.http import create_app
from procengine.http.console.static_routes import SECURITY_HEADERS, STATIC_DIR, load_static
from procengine.settings import Settings
from tests.support.api import BASE
from tests.support.fake_engine import FakeEngine

Client = TestClient[web.Request, web.Application]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'"
)


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    clients: list[Client] = []

    async def make(**settings: Any) -> Client:
        client = TestClient(TestServer(create_app(FakeEngine(), Settings(**settings))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


def assert_secure(headers: Any) -> None:
    assert headers["Content-Security-Policy"].startswith(CSP)
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value


async def test_the_page_is_served_at_the_root_with_the_security_headers(client: Client) -> None:
    response = await client.get("/")

    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_secure(response.headers)
    page = await response.text()
    assert '<script type="module" src="/console/console.js"></script>' in page
    assert '<link rel="stylesheet" href="/console/console.css">' in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_the_files_have_their_types_and_the_security_headers(
    client: Client, name: str, content_type: str
) -> None:
    response = await client.get(f"/console/{name}")

    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert_secure(response.headers)
    assert await response.read() == (STATIC_DIR / name).read_bytes()


async def test_head_answers_without_a_body(client: Client) -> None:
    response = await client.head("/console/console.js")

    assert response.status == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert await response.read() == b""


async def test_a_known_etag_is_answered_304(client: Client) -> None:
    first = await client.get("/console/console.css")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"

    again = await client.get("/console/console.css", headers={"If-None-Match": f'W/"nope", {etag}'})

    assert again.status == 304
    assert await again.read() == b""
    assert_secure(again.headers)
    other = await client.get("/console/console.css", headers={"If-None-Match": '"other"'})
    assert other.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console",
        "/console/nope.js",
        "/console/static_routes.py",
        "/console/__init__.py",
        "/console/../static_routes.py",
        "/console/..%2Fstatic_routes.py",
        "/console/%2e%2e%2fstatic_routes.py",
        "/console/..%5cstatic_routes.py",
        "/console/static/console.js",
        "/console/%2Fetc%2Fpasswd",
        "/static/console.js",
        "/index.html",
    ],
)
async def test_no_listing_and_no_way_out_of_the_directory(client: Client, path: str) -> None:
    response = await client.get(path)

    assert response.status == 404, path
    body = await response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "path",
    [
        "/console/../static_routes.py",
        "/console/../../app.py",
        "/console/..%2Fstatic_routes.py",
        "/console/.%2E/static_routes.py",
        "/console/%2E%2E%2F%2E%2E%2Fapp.py",
        "/console/..\\static_routes.py",
        "/console/./../__init__.py",
    ],
)
async def test_raw_paths_with_dot_segments_reach_nothing(client: Client, path: str) -> None:
    """Sent as written (a client would resolve the dot segments first): what the server makes of them."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] in (b"400", b"404"), (path, status_line)
    assert b"def add_console_routes" not in rest
    assert b"import" not in rest


async def test_other_methods_are_refused(client: Client) -> None:
    response = await client.post("/", data=b"x")

    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"


async def test_the_console_needs_no_token_but_the_api_does(make_client: Callable[..., Awaitable[Client]]) -> None:
    client = await make_client(api_tokens={"tok": "acme"})

    page = await client.get("/")
    script = await client.get("/console/console.js")
    api = await client.get(BASE + "/statuses")

    assert page.status == 200
    assert script.status == 200
    assert api.status == 401


async def test_the_console_is_not_in_the_openapi_document(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()

    assert "/" not in document["paths"]
    assert not [path for path in document["paths"] if path.startswith("/console")]


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.problems.append("a <style> element")
        if tag == "script" and not names.get("src"):
            self.problems.append("an inline <script>")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"a style attribute on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"an {name} attribute on <{tag}>")
            if name in ("src", "href") and value and value.startswith("/console/"):
                self.references.append(value.removeprefix("/console/"))
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"a javascript: URL on <{tag}>")


def test_the_page_needs_nothing_inline_and_everything_it_names_is_served() -> None:
    markup = _Markup()
    markup.feed((STATIC_DIR / "index.html").read_text())

    assert markup.problems == []
    assert set(markup.references) == {"console.js", "console.css", "favicon.svg"}
    assert set(markup.references) <= set(load_static())


def test_the_script_builds_the_page_without_html_strings_or_inline_styles() -> None:
    # every module of the console, read as one script without its comments: the rules hold for all of it, and
    # what must be there is there in code (the entry module's overview comment names Last-Event-ID too)
    modules = sorted(STATIC_DIR.glob("*.js"))
    assert len(modules) > 1
    script = "\n".join(re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M) for path in modules)

    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert forbidden not in script, forbidden
    assert not re.search(r"setAttribute\(\s*['\"]style", script)
    assert "EventSource" not in script  # streams go through fetch()
    assert "Last-Event-ID" in script
    assert "sessionStorage" in script


IMPORT = re.compile(r"^import \{[^}]*\} from '\./([a-z]+\.js)';$", re.MULTILINE)
MAX_MODULE_LINES = 400


def imports_of(script: str) -> list[str]:
    """The modules a module imports: static imports of a sibling only (same origin, the flat `/console/` folder)."""
    statements = [line for line in script.splitlines() if re.match(r"\s*import\b", line)]
    assert len(statements) == len(IMPORT.findall(script)), statements  # no other kind of import
    assert "import(" not in script  # nor a dynamic one
    return IMPORT.findall(script)


async def test_every_module_the_page_loads_is_served_as_javascript(client: Client) -> None:
    page = await (await client.get("/")).text()
    (entry,) = re.findall(r'<script type="module" src="/console/([a-z]+\.js)"></script>', page)
    served: dict[str, str] = {}
    waiting = [entry]
    while waiting:
        name = waiting.pop()
        if name in served:
            continue
        response = await client.get(f"/console/{name}")
        assert response.status == 200, name
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8", name  # nosniff: it must be
        assert_secure(response.headers)
        served[name] = await response.text()
        waiting.extend(imports_of(served[name]))

    assert entry == "console.js"
    assert set(served) == {path.name for path in STATIC_DIR.glob("*.js")}  # every module is loaded, none is left over
    assert len(served) > 1


def test_no_module_is_over_400_lines() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in STATIC_DIR.glob("*.js")}

    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def test_no_module_builds_the_page_from_html_strings_or_inline_styles() -> None:
    scripts = {path.name: path.read_text() for path in STATIC_DIR.glob("*.js")}

    for name, script in scripts.items():
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert forbidden not in script, (name, forbidden)
        assert not re.search(r"setAttribute\(\s*['\"]style", script), name
        assert "EventSource" not in script.replace("EventSource cannot", ""), name  # streams go through fetch()
    assert "headers['Last-Event-ID'] = this.lastId" in scripts["streams.js"]
    assert "sessionStorage.getItem(TOKEN_KEY)" in scripts["api.js"]
    assert {name for name, script in scripts.items() if "await fetch(" in script} == {"api.js", "streams.js"}


def test_only_plain_files_of_known_types_are_served(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("1")
    (tmp_path / "notes.md").write_text("not served")
    (tmp_path / ".hidden.js").write_text("not served")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.js").write_text("not served")
    (tmp_path / "link.js").symlink_to(tmp_path / "app.js")

    files = load_static(tmp_path)

    assert set(files) == {"app.js"}
    assert files["app.js"].content_type == "text/javascript; charset=utf-8"
    assert load_static(tmp_path / "missing") == {}
