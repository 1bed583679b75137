"""The type of `redis_server_factory` (tests/conftest.py), for the tests that take their own redis-server."""

from __future__ import annotations

from collections.abc import Callable

from procengine.store.embedded import RedisServer

RedisServerFactory = Callable[..., RedisServer]
"""`make(*extra_args)`: a started redis-server of the test's own; `extra_args` as `RedisServer` takes them."""
