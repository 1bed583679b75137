"""Redis's errors in our words: what a request met in the store, as the `Unavailable` the front door renders.

Whatever redis-py raises on a request's path (unreachable, timed out, a command refused: out of memory, a
read-only replica, an ACL without the command, a key of the wrong type, a counter at its maximum) is a 503
with the store's own reason, never a 500: the request was fine, the store could not serve it.
"""

from __future__ import annotations

from typing import Final

from redis.exceptions import ConnectionError, RedisClusterException, RedisError, ResponseError, TimeoutError

from procengine.errors import Unavailable

__all__ = ["COUNTER_MAX", "STORE_ERRORS", "StoreError", "counter_failure", "store_failure"]

StoreError = RedisError | RedisClusterException
STORE_ERRORS: Final = (RedisError, RedisClusterException)
"""What redis-py raises when the store fails a command. The cluster client's own errors (no reachable node,
a slot no node covers) derive from RedisClusterException, which is not a RedisError."""

COUNTER_MAX: Final = 2**63 - 1
"""The largest value INCR can reach (a signed 64-bit integer)."""


def store_failure(exc: StoreError) -> Unavailable:
    if isinstance(exc, RedisClusterException):
        return Unavailable(f"the Redis Cluster cannot serve the request: {_reason(exc)}")
    if isinstance(exc, ConnectionError | TimeoutError):  # BusyLoadingError (Redis loading its data) is one too
        return Unavailable("the store cannot be reached; try again")
    if isinstance(exc, ResponseError):
        # redis-py turns some error prefixes into subclasses and drops the prefix ("OOM" -> OutOfMemoryError)
        kind = "" if type(exc) is ResponseError else f" ({type(exc).__name__})"
        return Unavailable(f"the store refused a command{kind}: {_reason(exc)}", retry_after_s=5)
    return Unavailable(f"the store failed: {type(exc).__name__}: {_reason(exc)}", retry_after_s=5)


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


def _reason(exc: StoreError) -> str:
    # redis-py puts a pipeline's failing command in front ("Command # 1 (INCRBY k 1) of pipeline caused error:
    # ('...',)"): keep what Redis said
    text = str(exc.args[-1] if exc.args else exc)
    marker = "of pipeline caused error: "
    if marker in text:
        text = text.split(marker, 1)[1].strip("()',\"")
    return " ".join(text.split())[:300] or type(exc).__name__
