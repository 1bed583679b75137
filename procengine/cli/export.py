"""`procengine export --finished-before T`: finished executions as JSON lines, read straight from Redis, for
archiving them before their retention ends (docs/operations.md).

One line per execution that is completed, failed or cancelled and stopped before T, newest first: its status,
process, timing, error, parent and children, variables, element records and whole log. Nothing is changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from procengine.cli.inspect import _decoded, _newest_first, _store, tenants_to_read
from procengine.engine.state import expand_memory_doc
from procengine.runtime.clock import parse_iso
from procengine.statuses import Status
from procengine.store.keys import Keys

__all__ = ["export_finished"]

_FIELDS = ["status", "stoppedAt"]
_FINAL = {status.value for status in Status if status.is_final}


async def export_finished(
    redis: Redis, keys: Keys, before_ms: int, write: Callable[[str], object], tenant: str | None = None
) -> int:
    """Write one JSON line per finished execution (of `tenant`, else of all) that stopped before `before_ms`;
    how many."""
    store = _store(redis, keys)
    written = 0
    async for ids in _newest_first(store, await tenants_to_read(redis, keys, tenant), set(), 500):
        rows = await store.many_fields(ids, _FIELDS)
        for execution_id, row in zip(ids, rows, strict=True):
            stopped = row.get("stoppedAt")
            if row.get("status") not in _FINAL or not stopped or parse_iso(stopped) >= before_ms:
                continue
            document = await _document(redis, keys, execution_id)
            if document is not None:  # gone between the two reads: its retention ended just now
                write(json.dumps(document, separators=(",", ":"), default=str) + "\n")
                written += 1
    return written


async def _document(redis: Redis, keys: Keys, execution_id: int) -> dict[str, Any] | None:
    store = _store(redis, keys)
    stored = await store.load(execution_id)
    if stored is None:
        return None
    fields = dict(stored.fields)
    memory = expand_memory_doc(_decoded(stored.state["memory"])) if stored.state.get("memory") else None
    return {
        "executionID": execution_id,
        "tenant": fields.get("tenant"),
        "processID": _int(fields.get("processID")),
        "processKey": fields.get("processKey"),
        "processVersion": _int(fields.get("processVersion")),
        "status": fields.get("status"),
        "startedAt": fields.get("startedAt"),
        "stoppedAt": fields.get("stoppedAt"),
        "error": json.loads(fields["error"]) if fields.get("error") else None,
        "parentExecutionID": _int(fields.get("parentExecutionID")),
        "children": json.loads(fields["children"]) if fields.get("children") else [],
        "variables": memory.get("variables") if isinstance(memory, dict) else None,
        "elements": list((await store.elements(execution_id)).values()),
        "log": [{"id": entry_id, **entry} for entry_id, entry in await store.log(execution_id)],
    }


def _int(text: str | None) -> int | None:
    return int(text) if text else None
