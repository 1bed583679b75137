"""How many bytes a value takes in a msgpack snapshot, measured without encoding it.

`packed_size` gives exactly `len(codec.encode(value))` (a test holds the two together), but stops walking
as soon as the total passes a limit: a 100 MB string is over at once (its length says so), and a value of
millions of small items costs only the limit's worth of walking. With `max_nodes` it also stops after that many
items (`TooManyNodes`), so that a caller on the event loop can hand a big value to a thread instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any, Final

from procengine.errors import CodecError, TooManyNodes
from procengine.store.codec import encode

__all__ = ["MAX_DEPTH", "bounded_size", "packed_size"]

MAX_DEPTH: Final = 1024
"""msgpack's own nesting limit (DEFAULT_RECURSE_LIMIT): a container deeper than this cannot be encoded."""


def packed_size(value: Any, limit: int, max_nodes: int | None = None) -> int | None:
    """The size of `value` as the codec encodes it, or None once it is over `limit`; CodecError if the codec
    could not encode it at all."""
    total = 0
    nodes_left = -1 if max_nodes is None else max_nodes
    # an explicit stack of iterators, one per open container: no recursion limit, and a container's items are
    # looked at one by one, so a walk that stops early never touched the rest
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        nodes_left -= 1
        if nodes_left == -1:  # only reached when max_nodes was given (None starts below zero)
            raise TooManyNodes
        if item is None or item is True or item is False:
            total += 1
        elif isinstance(item, int):
            total += _int_size(item)
        elif isinstance(item, float):
            total += 9
        elif isinstance(item, str):
            if len(item) > limit:  # UTF-8 takes at least a byte a character: over, without encoding it
                return None
            n = len(item) if item.isascii() else _utf8_length(item)
            total += n + (1 if n < 32 else 2 if n < 2**8 else 3 if n < 2**16 else 5)
        elif isinstance(item, bytes | bytearray | memoryview):
            n = item.nbytes if isinstance(item, memoryview) else len(item)
            total += n + (2 if n < 2**8 else 3 if n < 2**16 else 5)
        elif isinstance(item, list | tuple | dict):
            if len(stack) - 1 > MAX_DEPTH:  # this container's depth (the top value's is 0)
                raise CodecError("value cannot be stored: nested too deeply")
            n = len(item)
            total += 1 if n < 16 else 3 if n < 2**16 else 5
            stack.append(iter(item) if not isinstance(item, dict) else chain.from_iterable(item.items()))
        else:
            raise CodecError(f"value cannot be stored: can not serialize {type(item).__name__!r} object")
        if total > limit:
            return None
    return total


_END: Final = object()

_WALKED_NODES: Final = 2_000
"""Up to this many items the walk is as quick as encoding; past it the codec itself is much quicker."""


def bounded_size(value: Any, limit: int) -> int | None:
    """`packed_size` for a value whose size its source bounds (a request body, a CEL result over a memory within
    its limit): a small one is walked, a big one encoded by the codec (C, fifty times quicker than the walk).
    Not for a task's output, whose size nothing bounds: see `actors/attempt.py`."""
    kind = type(value)
    if kind is int or kind is str or kind is bool or kind is float or value is None:  # a set-variable's usual value
        size = _scalar_size(value, limit)
        return size if size is not None and size <= limit else None
    try:
        return packed_size(value, limit, max_nodes=_WALKED_NODES)
    except TooManyNodes:
        size = len(encode(value))
        return size if size <= limit else None


def _scalar_size(value: Any, limit: int) -> int | None:
    """`packed_size` of None, a bool, an int, a float or a str, without its walk (None: a str over `limit`)."""
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, int):
        return _int_size(value)
    if isinstance(value, float):
        return 9
    if len(value) > limit:
        return None
    n = len(value) if value.isascii() else _utf8_length(value)
    return n + (1 if n < 32 else 2 if n < 2**8 else 3 if n < 2**16 else 5)


def _utf8_length(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise CodecError(f"value cannot be stored: {exc}") from None


def _int_size(value: int) -> int:
    if value >= 0:
        if value < 128:
            return 1
        if value < 2**8:
            return 2
        if value < 2**16:
            return 3
        if value < 2**32:
            return 5
        if value < 2**64:
            return 9
    else:
        if value >= -32:
            return 1
        if value >= -(2**7):
            return 2
        if value >= -(2**15):
            return 3
        if value >= -(2**31):
            return 5
        if value >= -(2**63):
            return 9
    raise CodecError("value cannot be stored: integer out of range")
