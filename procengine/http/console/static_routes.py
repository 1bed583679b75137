"""The web console's static files: `GET /` (the page) and `GET /console/{file}` (its ES modules, styles, icon).

The files are the regular files directly in `static/`, read once when the routes are added and served from
memory: a name in the URL is only ever looked up in that table, so there is no directory listing and no path
that could leave the directory (`..`, `%2e%2e`, `a/b` and dot files are simply not in it; 404).

Every answer carries a Content-Security-Policy that allows nothing inline and nothing from elsewhere, plus the
usual framing, sniffing and referrer headers. The page talks to the API under the base path with the caller's
bearer token; these routes themselves need none (they sit outside the base path, like `/health`) and are not in
the OpenAPI document, which describes the API only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["CONSOLE_PATHS", "SECURITY_HEADERS", "STATIC_DIR", "add_console_routes", "load_static"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_CONTENT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

INDEX: Final = "index.html"
CONSOLE_PATHS: Final = ("/", "/console/{file}")
"""The console's routes (GET and HEAD each): the only ones the app serves that the OpenAPI document leaves out."""


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """The servable files of `directory` by name: regular files of a known type, not hidden, not in subfolders."""
    files: dict[str, StaticFile] = {}
    if not directory.is_dir():
        return files
    for path in sorted(directory.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix.lower())
        if content_type is None or path.name.startswith(".") or path.is_symlink() or not path.is_file():
            continue
        body = path.read_bytes()
        files[path.name] = StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return files


_STATIC_KEY: Final[web.AppKey[dict[str, StaticFile]]] = web.AppKey("console_static")


def add_console_routes(app: web.Application, directory: Path = STATIC_DIR) -> None:
    """Serve the console on `app`: `GET /` and `GET /console/{file}` (HEAD too), straight on the router."""
    app[_STATIC_KEY] = load_static(directory)
    index, file = CONSOLE_PATHS
    app.router.add_get(index, _index)
    app.router.add_get(file, _file)


async def _index(request: web.Request) -> web.Response:
    return _serve(request, INDEX)


async def _file(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["file"])


def _serve(request: web.Request, name: str) -> web.Response:
    found: StaticFile | None = request.app[_STATIC_KEY].get(name)
    if found is None:
        raise web.HTTPNotFound()
    headers = {**SECURITY_HEADERS, "ETag": found.etag, "Cache-Control": "no-cache"}
    if found.etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = found.content_type
    return web.Response(body=found.body, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
