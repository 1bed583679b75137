"""Reads of an execution's checkpoint history: the list commit.lua appends to in the write of each checkpoint.

Each element of `<prefix>:exec:{<id>}:history` is one kept checkpoint, a msgpack array packed by the script:
`[seq, savedAt, elementKey, stack, memory, [thread field, thread record, ...]]`, where `stack`, `memory` and the
thread records are the very values that write stored (the seed-shaped blobs, our compact records); the first
element is the list's counters `[last seq, bytes of the entries]` (kept there, not in the execution hash, whose
size issue 21 measured). An entry that does not have that shape (edited by hand) is left out of what is read,
and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis

from procengine.errors import CodecError
from procengine.store.codec import decode
from procengine.store.failures import translated
from procengine.store.keys import Keys

__all__ = ["HistoryStore", "KeptCheckpoint", "counters", "described", "parse_entry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeptCheckpoint:
    seq: int
    saved_at: str
    element_key: str
    stack: bytes
    memory: bytes
    threads: dict[str, bytes]
    size: int
    """Its bytes in the history list."""


class HistoryStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    @translated
    async def kept(self, execution_id: int) -> list[KeptCheckpoint]:
        """Every kept checkpoint of the execution, oldest first (at most `--history-checkpoints` of them, within
        `--history-bytes`)."""
        raw = await self.redis.lrange(self.keys.execution(execution_id).history, 0, -1)
        kept = []
        for entry in raw[1:] if raw and counters(raw[0]) is not None else raw:
            checkpoint = parse_entry(entry) if isinstance(entry, bytes) else None
            if checkpoint is None:
                log.warning("execution %s: a checkpoint history entry is not one commit.lua writes", execution_id)
                continue
            kept.append(checkpoint)
        return kept


def counters(element: Any) -> tuple[int, int] | None:
    """The list's counters (its first element): (last seq, bytes of the entries), or None if it is not them."""
    if not isinstance(element, bytes) or len(element) > 32:
        return None
    try:
        value: Any = msgpack.unpackb(element)
    except (ValueError, msgpack.UnpackException):
        return None
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        return value[0], value[1]
    return None


def parse_entry(entry: bytes) -> KeptCheckpoint | None:
    """One history entry, or None when it is not what commit.lua packs."""
    try:
        value: Any = msgpack.unpackb(entry, raw=True, strict_map_key=False)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(value, list) or len(value) != 6:
        return None
    seq, saved_at, element_key, stack, memory, threads = value
    if not (isinstance(seq, int) and seq > 0 and isinstance(stack, bytes) and isinstance(memory, bytes)):
        return None
    if not (isinstance(saved_at, bytes) and isinstance(element_key, bytes)):
        return None
    pairs = threads if isinstance(threads, list) else []  # an empty Lua table packs as an empty map or list
    if len(pairs) % 2 or not all(isinstance(part, bytes) for part in pairs):
        return None
    try:
        return KeptCheckpoint(
            seq=seq,
            saved_at=saved_at.decode(),
            element_key=element_key.decode(),
            stack=stack,
            memory=memory,
            threads={pairs[i].decode(): pairs[i + 1] for i in range(0, len(pairs), 2)},
            size=len(entry),
        )
    except UnicodeDecodeError:
        return None


def described(entry: bytes) -> dict[str, Any]:
    """One history entry as `procengine inspect` shows it: its numbers and its stack and memory decoded, as stored
    (or `{"error": …}` for an entry commit.lua did not write)."""
    checkpoint = parse_entry(entry)
    if checkpoint is None:
        return {"error": "not a checkpoint history entry", "bytes": len(entry)}
    doc: dict[str, Any] = {
        "seq": checkpoint.seq,
        "savedAt": checkpoint.saved_at,
        "elementKey": checkpoint.element_key,
        "bytes": checkpoint.size,
    }
    for name, blob in (("stack", checkpoint.stack), ("memory", checkpoint.memory)):
        try:
            doc[name] = decode(blob)
        except CodecError as exc:
            doc[name] = {"error": exc.message}
    return doc
