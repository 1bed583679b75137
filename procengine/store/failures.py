"""Redis's errors in our words, at the store's edge: the only place outside which redis-py's exceptions are unknown.

Whatever redis-py raises (unreachable, timed out, a command refused: out of memory, a read-only replica, an ACL
without the command, a key of the wrong type, a counter at its maximum) leaves the store as a `StoreFailed`, an
`Unavailable`: a 503 with the store's own reason, never a 500 — the request was fine, the store could not serve it.
The store's methods are `@translated`; the few callers that still hold the Redis client themselves (the node's
routing, control channel, heartbeat and idempotency claims; the CLI's inspect, export and reindex) run their
commands under `store_errors()`.

    redis-py                                  ours                 the client is told
    ConnectionError, TimeoutError             StoreUnreachable     the store cannot be reached; try again
    RedisClusterException (no node, no slot)  StoreUnreachable     the Redis Cluster cannot serve the request: ...
    InvalidResponse (not a Redis)             StoreUnreachable     the store failed: InvalidResponse: ...
    NoPermissionError (ACL)                   StoreDenied          the store refused a command (...): ...
    ResponseError and the rest of its kind    StoreRefused         the store refused a command: ...
    any other RedisError (DataError, ...)     StoreFailed          the store failed: DataError: ...

`str()` of each is what redis-py said (for logs and the CLI); `.message` is what a client may see (no host names).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Final, ParamSpec, TypeVar

from redis.exceptions import (
    ConnectionError,
    InvalidResponse,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TimeoutError,
)

from procengine.errors import StoreDenied, StoreFailed, StoreRefused, StoreUnreachable, Unavailable

__all__ = ["COUNTER_MAX", "counter_failure", "store_errors", "store_failure", "translated"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_DriverError = RedisError | RedisClusterException
_DRIVER_ERRORS: Final = (RedisError, RedisClusterException)
"""What redis-py raises when the store fails a command. The cluster client's own errors (no reachable node,
a slot no node covers) derive from RedisClusterException, which is not a RedisError."""

COUNTER_MAX: Final = 2**63 - 1
"""The largest value INCR can reach (a signed 64-bit integer)."""


def store_failure(exc: _DriverError) -> StoreFailed:
    """redis-py's exception as ours (see the table above)."""
    said = str(exc) or type(exc).__name__
    if isinstance(exc, RedisClusterException):
        return StoreUnreachable(f"the Redis Cluster cannot serve the request: {_reason(exc)}", reason=said)
    if isinstance(exc, ConnectionError | TimeoutError):  # BusyLoadingError (Redis loading its data) is one too
        return StoreUnreachable("the store cannot be reached; try again", reason=said)
    if isinstance(exc, ResponseError):
        # redis-py turns some error prefixes into subclasses and drops the prefix ("OOM" -> OutOfMemoryError)
        kind = "" if type(exc) is ResponseError else f" ({type(exc).__name__})"
        refused = StoreDenied if isinstance(exc, NoPermissionError) else StoreRefused
        return refused(f"the store refused a command{kind}: {_reason(exc)}", reason=said, retry_after_s=5)
    failed = StoreUnreachable if isinstance(exc, InvalidResponse) else StoreFailed  # InvalidResponse: not RESP
    return failed(f"the store failed: {type(exc).__name__}: {_reason(exc)}", reason=said, retry_after_s=5)


def translated(method: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """A coroutine function of the store whose Redis failures leave it as `StoreFailed`."""

    @functools.wraps(method)
    async def translating(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except _DRIVER_ERRORS as exc:
            raise store_failure(exc) from exc

    return translating


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """`with store_errors():` around Redis commands (awaited inside it too): their failures raise `StoreFailed`."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        raise store_failure(exc) from exc


def counter_failure(exc: ResponseError, *counters: str) -> Unavailable:
    """An id counter that INCR cannot move past 2^63-1 ("increment or decrement would overflow") said so that
    an operator knows what ran out; any other refusal as `store_failure` says it."""
    if "would overflow" not in str(exc):
        return store_failure(exc)
    named = [counter for counter in counters if f" {counter} " in str(exc)] or list(counters)  # a pipeline names it
    return Unavailable(
        f"no new id can be given: the counter {' or '.join(named)} is at its maximum ({COUNTER_MAX}); "
        "an operator must set it back to the highest id in use",
        retry_after_s=None,
    )


def _reason(exc: _DriverError) -> str:
    # redis-py puts a pipeline's failing command in front ("Command # 1 (INCRBY k 1) of pipeline caused error:
    # ('...',)"): keep what Redis said
    text = str(exc.args[-1] if exc.args else exc)
    marker = "of pipeline caused error: "
    if marker in text:
        text = text.split(marker, 1)[1].strip("()',\"")
    return " ".join(text.split())[:300] or type(exc).__name__
