"""`procengine reindex`: put every execution in the tenant indexes of its status and process, once, after an
upgrade from a version without them (docs/operations.md).

Executions started before the indexes by status and process existed are only in their tenant's
all-executions index: a list filtered by status or process does not show them until their next status change,
and finished ones have none. This reads each execution's status and process and puts it where the engine would
have (and out of the other statuses' indexes); running it again changes nothing. Safe beside running nodes: an
execution whose status changes while this runs may be left in one wrong index, which lists skip (they check
each row) and a second run puts right.
"""

from __future__ import annotations

from redis.asyncio import Redis

from procengine.cli.inspect import _newest_first, _store, tenants_to_read
from procengine.store.indexes import STATUSES, Indexed, IndexOp, placed
from procengine.store.keys import Keys

__all__ = ["reindex"]

_FIELDS = ["tenant", "status", "processID"]


async def reindex(redis: Redis, keys: Keys, tenant: str | None = None) -> int:
    """Index every execution of `tenant` (else of every tenant) by its status and process; how many."""
    store = _store(redis, keys)
    done = 0
    async for ids in _newest_first(store, await tenants_to_read(redis, keys, tenant), set(), 500):
        edits: list[IndexOp] = []
        for execution_id, row in zip(ids, await store.many_fields(ids, _FIELDS), strict=True):
            status, process = row.get("status", ""), row.get("processID", "")
            if status not in STATUSES or not (process.isascii() and process.isdigit()) or not row.get("tenant"):
                continue  # gone, or a hash edited by hand: nothing to index it by
            edits += placed(keys, Indexed(row["tenant"], execution_id, int(process)), status)
            done += 1
        if edits:
            await store.edit_indexes(edits)
    return done
