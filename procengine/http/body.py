"""Request bodies: bytes -> a value (JSON, or YAML under a YAML content type) -> a pydantic model.

Malformed input is `BadRequest` (400); a value that breaks a model is `ValidationFailed` (422) with every
problem listed as "loc.path: message", and so is one that nests deeper than `--max-nesting-depth` (checked here,
for every body: definitions, variables, signal payloads, patches). A YAML document must hold only what JSON could
have said: no dates, sets, binary or non-string keys, and no aliases that expand past the body limit (a "billion
laughs").
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Final, TypeVar

import yaml
from aiohttp import web
from pydantic import BaseModel

from procengine.api.problems import validate
from procengine.depth import deeper_than
from procengine.errors import BadRequest, ValidationFailed
from procengine.http.context import settings

__all__ = ["YAML_CONTENT_TYPES", "read_any", "read_document", "read_model", "read_optional_model"]

M = TypeVar("M", bound=BaseModel)

YAML_CONTENT_TYPES: Final = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})

# libyaml's parser with PyYAML's safe constructor: as safe as yaml.safe_load, many times faster.
_YAML_LOADER: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Empty:
    """The body was empty (or only whitespace)."""


EMPTY: Final = _Empty()


async def read_model(request: web.Request, model: type[M]) -> M:
    """A required body, validated by `model`."""
    return validate(model, await read_document(request))


async def read_document(request: web.Request) -> Any:
    """A required body as the plain value it holds (for the engine to validate: a process definition)."""
    value = await _read_value(request)
    if value is EMPTY:
        raise BadRequest("a request body is required")
    return value


async def read_optional_model(request: web.Request, model: type[M]) -> M:
    """An optional body: empty or `null` gives the model's defaults."""
    value = await _read_value(request)
    return validate(model, {} if value is EMPTY or value is None else value)


async def read_any(request: web.Request) -> Any:
    """The body as a payload in its own right, any JSON value; an empty body is null."""
    value = await _read_value(request)
    return None if value is EMPTY else value


async def _read_value(request: web.Request) -> Any:
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge, rendered as 413
    if not raw.strip():
        return EMPTY
    limits = settings(request)
    if request.content_type.lower() in YAML_CONTENT_TYPES:
        # The pure-Python part of YAML loading is slow on big bodies: keep it off the event loop.
        return await asyncio.to_thread(parse_yaml, raw, limits.max_body_bytes, limits.max_nesting_depth)
    return parse_json(raw, limits.max_nesting_depth)


def too_deep(limit: int) -> ValidationFailed:
    """The 422 of a body nested deeper than `limit`."""
    return ValidationFailed(
        f"the body nests deeper than {limit} levels",
        [f"body: objects and lists may nest at most {limit} levels deep (--max-nesting-depth)"],
    )


def parse_json(raw: bytes, max_depth: int) -> Any:
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # deeper than the interpreter's stack: far past any limit
        raise too_deep(max_depth) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"malformed JSON: {_first_line(exc)}") from None
    if deeper_than(value, max_depth):
        raise too_deep(max_depth)
    return value


def parse_yaml(raw: bytes, max_nodes: int, max_depth: int) -> Any:
    try:
        value = yaml.load(raw, Loader=_YAML_LOADER)
    except RecursionError:
        raise too_deep(max_depth) from None
    except (yaml.YAMLError, ValueError) as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own stop, at 1000 levels
            raise too_deep(max_depth) from None
        raise BadRequest(f"malformed YAML: {_first_line(exc)}") from None
    # the walk recurses, but never deeper than max_depth (<= 128): it refuses a deeper document as it meets it
    _JsonShape(max_nodes, max_depth).size(value, "", 0)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 would quietly become infinity, which JSON cannot say back
        raise ValueError(f"{text} is out of range")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]


class _JsonShape:
    """Checks that a loaded YAML value is plain JSON, no deeper than the limit, counting nodes as if aliases were
    written out.

    Sizes and heights are memoised per container, so the walk is linear in the document even when its aliases
    would expand it exponentially; it recurses, but refuses a container past the depth limit before going in.
    """

    def __init__(self, max_nodes: int, max_depth: int) -> None:
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.known: dict[int, tuple[int, int]] = {}
        """id of a container -> (its nodes, its height: 1 for a container of scalars)"""
        self.open: set[int] = set()

    def size(self, value: Any, where: str, depth: int) -> int:
        return self._walk(value, where, depth)[0]

    def _walk(self, value: Any, where: str, depth: int) -> tuple[int, int]:
        if value is None or isinstance(value, bool | int | str):
            return 1, 0
        if isinstance(value, float):
            if not math.isfinite(value):
                raise BadRequest(f"malformed YAML: {value} at {where or 'the root'} is not a JSON number")
            return 1, 0
        if not isinstance(value, dict | list):
            kind = type(value).__name__
            raise BadRequest(f"malformed YAML: a {kind} at {where or 'the root'} is not a JSON value; quote it")
        known = self.known.get(id(value))
        if known is not None:
            if depth + known[1] > self.max_depth:  # an alias can put a container deeper than where it was written
                raise too_deep(self.max_depth)
            return known
        if id(value) in self.open:
            raise BadRequest(f"malformed YAML: {where or 'the root'} contains itself")
        if depth >= self.max_depth:
            raise too_deep(self.max_depth)
        self.open.add(id(value))
        total, height = 1, 1
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                raise BadRequest(f"malformed YAML: key {key!r} at {where or 'the root'} is not a string; quote it")
            size, below = self._walk(item, f"{where}.{key}" if where else str(key), depth + 1)
            total += size
            height = max(height, below + 1)
            if total > self.max_nodes:
                raise BadRequest("malformed YAML: aliases expand the document beyond the body limit")
        self.open.discard(id(value))
        self.known[id(value)] = (total, height)
        return total, height
