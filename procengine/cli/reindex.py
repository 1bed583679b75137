"""`procengine reindex`: put every execution in the tenant indexes of its status and process, once, after an
upgrade from a version without them (docs/operations.md).

Executions started before the indexes by status and process existed are only in their tenant's
all-executions index: a list filtered by status or process does not show them until their next status change,
and finished ones have none; executions started before the search indexes (issue 23) are in none of those
(`startedAfter` would not find them). This reads each execution's status and process and puts it where the
engine would have (and out of the other statuses' indexes), and into the search indexes; running it again
changes nothing. Safe beside running nodes: an execution whose status changes while this runs may be left in one
wrong index, which lists skip (they check each row) and a second run puts right.
"""

from __future__ import annotations

from redis.asyncio import Redis

from procengine.cli.inspect import _newest_first, _store, tenants_to_read
from procengine.runtime.clock import parse_iso
from procengine.store.indexes import STATUSES, Indexed, IndexOp, placed
from procengine.store.keys import Keys
from procengine.store.search import ATTRIBUTES_FIELD, SearchEntry, changed

__all__ = ["reindex"]

_FIELDS = ["tenant", "status", "processID", "startedAt", ATTRIBUTES_FIELD, "error"]


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
            edits += _searched(keys, execution_id, row)
            done += 1
        if edits:
            await store.edit_indexes(edits)
    return done


def _searched(keys: Keys, execution_id: int, row: dict[str, str]) -> list[IndexOp]:
    """The search indexes (issue 23): its start time, its attributes, its error type while failed (idempotent)."""
    try:
        started = parse_iso(row.get("startedAt", ""))
    except ValueError:
        return []
    member = str(execution_id)
    ops = [IndexOp("ZADD", keys.started(row["tenant"]), (str(started), member))]
    return ops + changed(keys, row["tenant"], execution_id, SearchEntry({}), SearchEntry.of(row))
