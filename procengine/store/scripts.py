"""The Lua scripts, read once from the `.lua` files beside this module and registered on a client.

`register_script` gives EVALSHA with a NOSCRIPT fallback, so a restarted Redis is handled for us.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return resources.files("procengine.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def script(redis: Redis, name: str) -> AsyncScript:
    """The script of `lua/<name>.lua`, registered on `redis` (the stores of bulk jobs, schedules and task queues hold
    their own)."""
    return redis.register_script(_source(name))


def as_text(value: object) -> str:
    """A reply's value as text (redis-py gives bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Scripts:
    commit: AsyncScript
    takeover: AsyncScript
    register_process: AsyncScript
    release_key: AsyncScript
    swap_key: AsyncScript
    delete_process: AsyncScript
    deprecate_process: AsyncScript
    search: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(
            commit=redis.register_script(_source("commit")),
            takeover=redis.register_script(_source("takeover")),
            register_process=redis.register_script(_source("register_process")),
            release_key=redis.register_script(_source("release_key")),
            swap_key=redis.register_script(_source("swap_key")),
            delete_process=redis.register_script(_source("delete_process")),
            deprecate_process=redis.register_script(_source("deprecate_process")),
            search=redis.register_script(_source("search")),
        )
