"""The tenant's execution indexes: which sorted sets an execution is in, and how each status change moves it.

An execution is in four sorted sets of its tenant, each scored by its id (newest = highest): all of the
tenant's executions, those in its status, those of its process version, and those of its process version in
its status. A list with any combination of the `status` and `processID` filters reads exactly one of them,
so a page costs O(page) whatever the number of executions.

The edits are `IndexOp`s, which `ExecutionStore.commit` applies inside the execution's own atomic write where
one script may touch both slots (one Redis, Sentinel), and right beside it on a Redis Cluster (another slot);
see docs/architecture.md, "Indexes".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from procengine.statuses import Status
from procengine.store.keys import Keys

STATUSES = tuple(status.value for status in Status)
CHILD_KEY = "childKey"
"""Execution hash field of a call-process's child: the engine's key it was started with (`Keys.child_start`)."""


@dataclass(frozen=True, slots=True)
class IndexOp:
    """One single-key command on a key of another slot than the execution's: ZADD key score member, ZREM key
    member, PEXPIREAT key ms, PERSIST key on a tenant key; XADD key MAXLEN ~ n * field value ... (the status event,
    `ExecutionStore.commit`); HSET key field value, HDEL key field on the tenant's `search` hash (store/search.py);
    SREM key member on a node's `owned` set (passivation, a final write) or the active
    set (a final write). `ExecutionStore.commit` sends the edits of a creation before the script and the others
    after an OK on a Redis Cluster, so an `owned` set may hold more than it should, never less; additions to an
    `owned` set do not go through here (`ExecutionStore.activate` before the write, takeover.lua)."""

    command: Literal["ZADD", "ZREM", "PEXPIREAT", "PERSIST", "XADD", "SREM", "HSET", "HDEL"]
    key: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Indexed:
    """What places an execution in its tenant's indexes."""

    tenant: str
    execution_id: int
    process_id: int


def pick(keys: Keys, tenant: str, status: str | None, process_id: int | None) -> str:
    """The one sorted set that holds exactly the executions a list with these filters shows."""
    if process_id is None:
        return keys.executions(tenant) if status is None else keys.status_index(tenant, status)
    if status is None:
        return keys.process_index(tenant, process_id)
    return keys.process_status_index(tenant, process_id, status)


def created(keys: Keys, at: Indexed, status: str) -> list[IndexOp]:
    """A new execution: into all four of its indexes."""
    member = str(at.execution_id)
    return [
        IndexOp("ZADD", key, (member, member))
        for key in (
            keys.executions(at.tenant),
            keys.status_index(at.tenant, status),
            keys.process_index(at.tenant, at.process_id),
            keys.process_status_index(at.tenant, at.process_id, status),
        )
    ]


def moved(
    keys: Keys,
    at: Indexed,
    source: str,
    target: str,
    *,
    removal_at_ms: int | None = None,
    idempotency_key: str | None = None,
    child_key: str | None = None,
) -> list[IndexOp]:
    """A status change: out of the source status's two indexes, into the target's. For a final status, also
    the note of when its retention ends (`removals`, which the sweeper reads) and the expiry at that moment of
    its idempotency key (a client's) or child key (the engine's, for a call-process's child)."""
    member = str(at.execution_id)
    ops = [
        IndexOp("ZREM", keys.status_index(at.tenant, source), (member,)),
        IndexOp("ZREM", keys.process_status_index(at.tenant, at.process_id, source), (member,)),
        IndexOp("ZADD", keys.status_index(at.tenant, target), (member, member)),
        IndexOp("ZADD", keys.process_status_index(at.tenant, at.process_id, target), (member, member)),
    ]
    if removal_at_ms is not None:
        ops.append(IndexOp("ZADD", keys.removals(at.tenant), (str(removal_at_ms), removal_note(at, target))))
        if idempotency_key is not None:
            ops.append(IndexOp("PEXPIREAT", keys.idempotency(at.tenant, idempotency_key), (str(removal_at_ms),)))
        if child_key is not None:
            ops.append(IndexOp("PEXPIREAT", keys.child_start(at.tenant, child_key), (str(removal_at_ms),)))
    return ops


def status_change(
    keys: Keys, execution_id: int, fields: Mapping[str, str], source: str, target: str, removal_at_ms: int | None
) -> list[IndexOp]:
    """`moved` for an execution as its hash has it (tenant, processID, idempotencyKey, childKey); [] when the hash
    cannot name its index entries (edited by hand)."""
    tenant, process_id = fields.get("tenant", ""), fields.get("processID", "")
    if not tenant or not (process_id.isascii() and process_id.isdigit()):
        return []
    at = Indexed(tenant, execution_id, int(process_id))
    key, child_key = fields.get("idempotencyKey") or None, fields.get(CHILD_KEY) or None
    return moved(keys, at, source, target, removal_at_ms=removal_at_ms, idempotency_key=key, child_key=child_key)


def revived(keys: Keys, execution_id: int, fields: Mapping[str, str], source: str, target: str) -> list[IndexOp]:
    """A final execution live again (a retry of a failed one): `status_change` out of `source`, and the retention
    its final write started undone: its note in `removals` taken out (the sweeper would take it out of the
    indexes), its idempotency key and child key kept for good again. [] as `status_change`."""
    ops = status_change(keys, execution_id, fields, source, target, None)
    if not ops:
        return []
    at = Indexed(fields["tenant"], execution_id, int(fields["processID"]))
    ops.append(IndexOp("ZREM", keys.removals(at.tenant), (removal_note(at, source),)))
    key, child_key = fields.get("idempotencyKey") or None, fields.get(CHILD_KEY) or None
    if key is not None:
        ops.append(IndexOp("PERSIST", keys.idempotency(at.tenant, key), ()))
    if child_key is not None:
        ops.append(IndexOp("PERSIST", keys.child_start(at.tenant, child_key), ()))
    return ops


def removed(keys: Keys, at: Indexed, status: str | None) -> list[IndexOp]:
    """Out of every index: a start undone (status None: any), or an execution whose retention is over."""
    member = str(at.execution_id)
    statuses = STATUSES if status is None else (status,)
    keys_out = [keys.executions(at.tenant), keys.process_index(at.tenant, at.process_id)]
    for each in statuses:
        keys_out += [keys.status_index(at.tenant, each), keys.process_status_index(at.tenant, at.process_id, each)]
    return [IndexOp("ZREM", key, (member,)) for key in keys_out]


def placed(keys: Keys, at: Indexed, status: str) -> list[IndexOp]:
    """A repair: the execution into the indexes of `status`, and out of every other status's (idempotent)."""
    member = str(at.execution_id)
    away = [
        IndexOp("ZREM", key, (member,))
        for other in STATUSES
        if other != status
        for key in (keys.status_index(at.tenant, other), keys.process_status_index(at.tenant, at.process_id, other))
    ]
    return created(keys, at, status) + away


def owned_remove(keys: Keys, node_id: str, execution_id: int) -> IndexOp:
    """The execution out of the node's `owned` set (the node gives it up, or it is final)."""
    return IndexOp("SREM", keys.owned(node_id), (str(execution_id),))


def deactivated(keys: Keys, node_id: str, execution_id: int) -> list[IndexOp]:
    """A final execution out of the active set and the node's `owned` set ("": none), in its final write
    (`ExecutionStore.deactivate` does the same by itself)."""
    member = (str(execution_id),)
    return [IndexOp("SREM", keys.active, member), *([owned_remove(keys, node_id, execution_id)] if node_id else [])]


def removal_note(at: Indexed, status: str) -> str:
    """The member of `removals`: enough to find every index entry once the execution's keys have expired."""
    return f"{at.execution_id}:{at.process_id}:{status}"


def parse_removal_note(tenant: str, note: str) -> tuple[Indexed, str | None]:
    """The execution a `removals` member names, and its final status (None for a bare id, which names no process
    or status: written before the indexes by status existed)."""
    execution_id, _, rest = note.partition(":")
    process_id, _, status = rest.partition(":")
    if not process_id:
        return Indexed(tenant, int(execution_id), 0), None
    return Indexed(tenant, int(execution_id), int(process_id)), status
