"""Where the client connects and as whom: arguments first, then PROCENGINE_URL and PROCENGINE_TOKEN, then the
default of `procengine serve` (http://127.0.0.1:8080, no token)."""

from __future__ import annotations

import os
from typing import Final

__all__ = ["BASE_PATH", "DEFAULT_URL", "TOKEN_ENV", "URL_ENV", "resolve_token", "resolve_url"]

BASE_PATH: Final = "/api/v1/process-engine"
DEFAULT_URL: Final = "http://127.0.0.1:8080"
URL_ENV: Final = "PROCENGINE_URL"
TOKEN_ENV: Final = "PROCENGINE_TOKEN"


def resolve_url(url: str | None = None) -> str:
    """The server's root URL, without a trailing slash. The API's base path may be given too (it is what
    people copy from docs/api.md) and is taken off: the client adds it, and the probes live outside it."""
    chosen = (url or os.environ.get(URL_ENV) or DEFAULT_URL).strip().rstrip("/")
    if "://" not in chosen:
        chosen = "http://" + chosen
    return chosen.removesuffix(BASE_PATH).rstrip("/")


def resolve_token(token: str | None = None) -> str | None:
    """The bearer token: the argument, else PROCENGINE_TOKEN; None (send no Authorization) when empty."""
    chosen = token if token is not None else os.environ.get(TOKEN_ENV, "")
    return chosen.strip() or None
