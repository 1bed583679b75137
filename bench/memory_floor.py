"""How far a paused execution's Redis bytes can fall while its keys keep the contract's shapes (issue 21, goal 4).

Replays one measured paused execution's five keys under a scratch hash tag on the same server, with every trim
that CONTRACT.md §5 and the seed leave open applied at once, and measures them with `MEMORY USAGE … SAMPLES 0`
as the figure is measured:

- the execution hash without its empty or zero fields (`stoppedAt`, `owner` while passivated, `pauseReason`,
  `pausedDurationMs`) and without what can be derived (`processKey` and `totalNodes` from the definition,
  `completedNodes` from the element records);
- the thread records as fields of the element hash (one key fewer);
- the stack entries without the engine's own derivable fields (`started_at_ms`, `thread_key`);
- each log entry as one msgpack field instead of four.

The seed-shaped stack and memory blobs, the `:state` fields the contract names and a log that is a Redis stream
stay. Also measured: a stream holding one 1-byte entry, the least any per-execution stream costs.
"""

from __future__ import annotations

from typing import Any

import msgpack

from procengine.store.keys import ExecutionKeys, Keys

SCRATCH_ID = 999_999_999
DERIVABLE = {b"processKey", b"totalNodes", b"completedNodes"}
EMPTY = {b"", b"0"}


async def floor_bytes(redis: Any, keys: Keys, execution_id: int) -> dict[str, int]:
    """MEMORY USAGE per key of `execution_id` rewritten with every trim (plus `stream_alone`: one tiny entry)."""
    source, scratch = keys.execution(execution_id), keys.execution(SCRATCH_ID)
    await redis.delete(*scratch.all())
    try:
        await _write_trimmed(redis, source, scratch)
        usage = {
            name: int(await redis.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0") or 0)
            for name, key in zip(("exec", "state", "elements", "threads", "log"), scratch.all()[:5], strict=True)
        }
        await redis.delete(scratch.log)
        await redis.xadd(scratch.log, {b"e": b"x"}, id="1-1")
        await _compact(redis, scratch.log)
        usage["stream_alone"] = int(await redis.execute_command("MEMORY", "USAGE", scratch.log, "SAMPLES", "0"))
        return usage
    finally:
        await redis.delete(*scratch.all())


async def _write_trimmed(redis: Any, source: ExecutionKeys, scratch: ExecutionKeys) -> None:
    execution = await redis.hgetall(source.execution)
    kept = {k: v for k, v in execution.items() if k not in DERIVABLE and (k == b"epoch" or v not in EMPTY)}
    await redis.hset(scratch.execution, mapping=kept)
    records = dict(await redis.hgetall(source.elements))
    records.update({b"@" + k: v for k, v in (await redis.hgetall(source.threads)).items()})
    await redis.hset(scratch.elements, mapping=records)
    state = dict(await redis.hgetall(source.state))
    stack = msgpack.unpackb(state[b"stack"])
    for entry in stack["execution_stack"]:
        entry.pop("started_at_ms", None)
        entry.pop("thread_key", None)
    state[b"stack"] = msgpack.packb(stack)
    await redis.hset(scratch.state, mapping=state)
    for entry_id, fields in await redis.xrange(source.log):
        one = [int(fields[b"at"]), fields[b"event"], fields[b"elementKey"], fields[b"detail"]]
        await redis.xadd(scratch.log, {b"e": msgpack.packb(one)}, id=entry_id)
    await _compact(redis, scratch.log)


async def _compact(redis: Any, key: str) -> None:
    """As commit.lua stores a passivated execution's log: at its exact size (XADD preallocates the newest node)."""
    dumped = await redis.dump(key)
    await redis.delete(key)
    await redis.restore(key, 0, dumped)
