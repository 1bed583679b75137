"""Where the API commands write: the answer to stdout (its data as JSON with `--json`, else text for people),
problems to stderr, one line each, after `procengine: error:`."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console, RenderableType

from procengine.client.errors import InvalidTransition, ProcEngineClientError, Unavailable, ValidationError

__all__ = ["Output"]


class Output:
    """stdout and stderr of one command; `as_json` says which form the answer takes."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        # markup off: ids, paths (main/import[7]) and messages are printed as they are, never read as styles
        # soft_wrap: a line of text stays one line whatever the width (for grep), only tables fit the width
        self.console = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)

    def show(self, data: BaseModel | Any, text: RenderableType) -> None:
        """The answer: `data` as indented JSON with --json, else `text`."""
        if self.as_json:
            self.json(data)
        else:
            self.console.print(text)

    def json(self, data: BaseModel | Any, *, indent: int | None = 2) -> None:
        """`data` (a model or plain JSON data) as JSON on stdout: indented, or on one line (`indent=None`, one
        document a line for streams)."""
        plain = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
        separators = (",", ": ") if indent is not None else (",", ":")
        sys.stdout.write(json.dumps(plain, indent=indent, separators=separators, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def fail(self, message: str, *more: str) -> None:
        """A problem on stderr: `procengine: error: <message>` and an indented line for each of `more`."""
        lines = [f"procengine: error: {message}", *(f"  {line}" for line in more)]
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    def error(self, exc: ProcEngineClientError) -> None:
        """An error answer: with --json, its `error` object as one JSON line on stderr (what the server said, for
        scripts); else the message and what the details add."""
        if self.as_json:
            error: dict[str, Any] = {"code": exc.code, "status": exc.status, "message": exc.message}
            if exc.details is not None:
                error["details"] = exc.details
            if isinstance(exc, InvalidTransition):
                error["currentStatus"] = exc.current_status
            sys.stderr.write(json.dumps({"error": error}, ensure_ascii=False) + "\n")
            sys.stderr.flush()
            return
        more: list[str] = []
        if isinstance(exc, ValidationError):
            more = [f"- {problem}" for problem in exc.problems]
        elif isinstance(exc, InvalidTransition) and exc.current_status:
            more = [f"current status: {exc.current_status}"]
        elif isinstance(exc, Unavailable) and exc.retry_after is not None:
            more = [f"the server says: retry after {exc.retry_after:g} s"]
        self.fail(f"{exc.message} ({exc.code})" if exc.status else exc.message, *more)
