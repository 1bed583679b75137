"""Reads and writes of execution keys. Every write that changes an execution goes through commit.lua,
checked against the writer's fencing epoch and the expected status."""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from procengine.runtime.clock import iso
from procengine.store import search
from procengine.store.batching import ScriptBatcher
from procengine.store.codec import decode, encode, encode_for_lua
from procengine.store.failures import counter_failure, translated
from procengine.store.indexes import Indexed, IndexOp, parse_removal_note, removed
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts
from procengine.store.stored_records import detail_doc, element_doc, stored_detail, stored_element, stored_thread

Scalar = str | int | float | bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status change for the tenant's status-events stream (`ExecutionStore.announce`), carried by the write that
    makes it."""

    tenant: str
    status: str
    process_key: str


@dataclass(frozen=True, slots=True)
class HistoryBounds:
    """How much checkpoint history each execution keeps (`--history-checkpoints`, `--history-bytes`)."""

    entries: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LogRecord:
    at_ms: int
    event: str
    element_key: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Commit:
    """One atomic write: fields of the execution, state, element and thread hashes, and log entries."""

    execution: dict[str, Scalar] = field(default_factory=dict)
    state: dict[str, Scalar] = field(default_factory=dict)
    state_delete: list[str] = field(default_factory=list)
    elements: dict[str, Any] = field(default_factory=dict)
    threads: dict[str, Any] = field(default_factory=dict)
    log: list[LogRecord] = field(default_factory=list)
    compact_log: bool = False
    """Rewrite a short log stream at its exact size (on passivation: XADD gives a stream's newest node 4 KiB
    up front, which a paused execution would otherwise keep)."""
    expire_ms: int | None = None
    """Remove every key of the execution this long after the write (the final write's retention)."""
    persist: bool = False
    """Keep every key of the execution for good again: the retention a final write set is undone (a retry)."""
    index: list[IndexOp] = field(default_factory=list)
    """Edits of the tenant's indexes that go with this write (a creation or a status change)."""
    announce: StatusChange | None = None
    """The status change to add to the tenant's status-events stream: inside the script where it may touch the
    tenant's keys (one server, Sentinel), else right after an OK write (a notice: losing one loses no state)."""


class Outcome(Enum):
    OK = "OK"
    FENCED = "FENCED"
    CONFLICT = "CONFLICT"
    MISSING = "MISSING"
    EXPIRED = "EXPIRED"
    """Not applied: the write's deadline (`not_after_ms`) had passed by the server's clock."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    outcome: Outcome
    status: str
    """The status (for takeover CONFLICT: the owner) found before the write."""
    epoch: int
    crashes: int = 0
    """Takeover OK: how many nodes in a row stopped while the execution ran, without progress since (CRASHES)."""


NEW = "-"
CRASHES = "crashes"
"""Execution hash field: adoptions of the running execution from another node since it last made progress (bumped
by takeover.lua, put back to 0 by the actor's first write that shows progress)."""
"""`expect` value for a commit that creates the execution."""
BUFFERED_SIGNALS = "bufferedSignals"
"""Execution hash field: JSON {signal name: how many wait for a wait-signal to take them}, absent when none. Kept
by every checkpoint that writes the memory (`records.snapshot_commit`), so that a status read need not decode
the memory snapshot to say how many signals a waiting lane has."""
PAUSED_BY = "pausedBy"
"""Execution hash field, while paused: who paused it (the tenant, `control`, `execution N` for a child)."""
PAUSE_REASON = "pauseReason"
"""Execution hash field, while paused: the reason the pause was asked with ("" for none)."""
PAUSED_BY_BULK = "pausedByBulk"
"""Execution hash field, written by every pause of a running execution: the bulk operation (job id) whose item it
was, "" for any other pause; a bulk pause's undo resumes only what it still holds paused (node/bulk_items.py)."""


@dataclass(frozen=True, slots=True)
class StoredExecution:
    fields: dict[str, str]
    state: dict[str, bytes]
    threads: dict[str, bytes]

    @property
    def status(self) -> str:
        return self.fields.get("status", "")

    @property
    def epoch(self) -> int:
        return int(self.fields.get("epoch", "0") or 0)


class ExecutionStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        log_maxlen: int,
        *,
        replicas: int = 0,
        replica_timeout_ms: int = 1000,
        indexes_in_script: bool = True,
        node_id: str = "",
        history: HistoryBounds | None = None,
    ) -> None:
        """`indexes_in_script`: the index edits go inside commit.lua (one Redis, Sentinel); False on a Redis
        Cluster, where the tenant's keys are in another slot than the execution's and are written beside it.
        `node_id`: the node this store writes for; `activate` and `deactivate` keep its `owned` set ("": none).
        `history`: how many checkpoints (and bytes of them) each execution keeps in its history list (None: none)."""
        self.redis = redis
        self.node_id = node_id
        self.indexes_in_script = indexes_in_script
        self.keys = keys
        self.scripts = scripts
        self.log_maxlen = log_maxlen
        self.history = history if history is not None and history.entries > 0 and history.bytes > 0 else None
        self._token_prefix = f"{uuid.uuid4().hex[:12]}:"
        self._tokens = itertools.count(1)
        self._commits = ScriptBatcher(
            redis,
            scripts.commit,
            replicas=replicas,
            replica_timeout_ms=replica_timeout_ms,
            wrote=_applied,  # FENCED, CONFLICT, EXPIRED wrote nothing: their answer stands
        )

    async def aclose(self) -> None:
        """Wait for the writes already submitted (group commit)."""
        await self._commits.aclose()

    @translated
    async def allocate_ids(self, threads: int) -> tuple[int, int]:
        """An execution id and `threads` thread ids, in one round trip: (executionID, first threadID)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(self.keys.sequence("execution"))
            pipe.incrby(self.keys.sequence("thread"), threads)
            try:
                execution_id, last_thread = await pipe.execute()
            except ResponseError as exc:
                raise counter_failure(exc, self.keys.sequence("execution"), self.keys.sequence("thread")) from None
        return int(execution_id), int(last_thread) - threads + 1

    @translated
    async def allocate_many(self, threads: list[int]) -> list[tuple[int, int]]:
        """Ids for `len(threads)` executions, the i-th with `threads[i]` thread ids, in one round trip (a batch of
        starts): [(executionID, first threadID)], consecutive."""
        if not threads:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(self.keys.sequence("execution"), len(threads))
            pipe.incrby(self.keys.sequence("thread"), sum(threads))
            try:
                last_execution, last_thread = await pipe.execute()
            except ResponseError as exc:
                raise counter_failure(exc, self.keys.sequence("execution"), self.keys.sequence("thread")) from None
        execution_id, thread_id = int(last_execution) - len(threads) + 1, int(last_thread) - sum(threads) + 1
        ids = []
        for count in threads:
            ids.append((execution_id, thread_id))
            execution_id, thread_id = execution_id + 1, thread_id + count
        return ids

    @translated
    async def commit(
        self, execution_id: int, commit: Commit, *, epoch: int | None, expect: str, not_after_ms: int | None = None
    ) -> WriteResult:
        """`expect`: comma-separated statuses, "" for any, NEW for a creation. `not_after_ms`: a deadline by the
        Redis server's clock (epoch ms) after which the write is not applied (EXPIRED)."""
        writes = [
            _pairs(commit.execution),
            _pairs(commit.state),
            commit.state_delete,
            [part for name, record in commit.elements.items() for part in (name, encode(stored_element(name, record)))],
            [part for name, record in commit.threads.items() for part in (name, encode(stored_thread(name, record)))],
            [[str(e.at_ms), e.event, e.element_key or "", encode(stored_detail(e.detail))] for e in commit.log],
            1 if commit.compact_log else 0,
            -1 if commit.persist else commit.expire_ms or 0,
        ]
        keys = self.keys.execution(execution_id).all()
        beside: list[IndexOp] = []
        edits: list[IndexOp] = []
        if self.indexes_in_script:
            edits = commit.index
            if commit.announce is not None:
                edits = [*edits, self._status_event(execution_id, commit.announce)]
            keys += [op.key for op in edits]
        else:
            beside = commit.index
        if self.history is not None and "stack" in commit.state and "memory" in commit.state:
            writes.append([[op.command, *op.args] for op in edits])
            writes.append([self.history.entries, self.history.bytes, _last_element(commit)])
        elif edits:
            writes.append([[op.command, *op.args] for op in edits])
        if beside and expect == NEW:
            await self.edit_indexes(beside)  # before the execution exists: it can never be there yet unfindable
        args: list[Scalar] = [
            "" if epoch is None else str(epoch),
            expect,
            self.log_maxlen,
            f"{self._token_prefix}{next(self._tokens)}",
            encode_for_lua(writes),
            "" if not_after_ms is None else str(not_after_ms),
        ]
        result = _result(await self._commits.call(keys, args))
        if beside and expect != NEW and result.outcome is Outcome.OK:
            await self.edit_indexes(beside)
        if commit.announce is not None and not self.indexes_in_script and result.outcome is Outcome.OK:
            event = commit.announce
            try:
                await self.announce(event.tenant, execution_id, event.status, event.process_key)
            except Exception as exc:  # StoreFailed: a notice beside the write, which stands
                log.warning("execution %s: status change not announced: %s", execution_id, exc)
        return result

    def _status_event(self, execution_id: int, event: StatusChange) -> IndexOp:
        """`announce`'s XADD as an edit of commit.lua."""
        fields = ("executionID", str(execution_id), "status", event.status, "processKey", event.process_key)
        args = ("MAXLEN", "~", str(STATUS_EVENTS_MAXLEN), "*", *fields)
        return IndexOp("XADD", self.keys.status_events(event.tenant), args)

    @translated
    async def takeover(
        self,
        execution_id: int,
        *,
        owner: str,
        expected_owner: str,
        expected_epoch: int,
        log: LogRecord | None,
        expected_commit: str | None = None,
    ) -> WriteResult:
        """Become the owner if owner and epoch are as expected and, with `expected_commit` (the `lastCommit` of
        the state the caller loaded), no write has landed since: else CONFLICT."""
        keys = self.keys.execution(execution_id)
        args: list[Scalar] = [owner, expected_owner, str(expected_epoch), self.log_maxlen]
        if log is None:
            args += ["", "", ""]
        else:
            args += [str(log.at_ms), log.event, encode(stored_detail(log.detail))]
        args.append(str(execution_id))
        if expected_commit is not None:
            args.append(expected_commit)
        script_keys = [keys.execution, keys.log]
        if self.indexes_in_script:  # the owners' `owned` sets move in the same script
            script_keys += [self.keys.owned(expected_owner), self.keys.owned(owner)]
        elif owner:  # on a Cluster they are in other slots: into the new owner's before, out of the old's after
            await self.redis.sadd(self.keys.owned(owner), str(execution_id))
        reply = await self.scripts.takeover(keys=script_keys, args=args)
        result = _result(reply[:3])
        moved = expected_owner not in ("", owner)  # a take-back of its own stays in its set
        if not self.indexes_in_script and moved and result.outcome is Outcome.OK:
            await self.redis.srem(self.keys.owned(expected_owner), str(execution_id))
        return replace(result, crashes=_number(reply[3])) if len(reply) > 3 else result

    @translated
    async def fields(self, execution_id: int) -> dict[str, str]:
        raw: Any = await self.redis.hgetall(self.keys.execution(execution_id).execution)
        return {k.decode(): v.decode() for k, v in raw.items()}

    @translated
    async def load(
        self, execution_id: int, *, with_state: bool = True, state_fields: tuple[str, ...] = ()
    ) -> StoredExecution | None:
        """The execution hash, its threads and (unless `with_state` is False: a status read) its state; without
        the state, only the `state_fields` of it (a status read takes the stack, never the memory)."""
        keys = self.keys.execution(execution_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.execution)
            pipe.hgetall(keys.threads)
            if with_state:
                pipe.hgetall(keys.state)
            elif state_fields:
                pipe.hmget(keys.state, list(state_fields))
            raw_fields, raw_threads, *raw_state = await pipe.execute()
        if not raw_fields:
            return None
        state: dict[str, bytes] = {}
        if with_state:
            state = {k.decode(): v for k, v in raw_state[0].items()}
        elif state_fields:
            state = {name: v for name, v in zip(state_fields, raw_state[0], strict=True) if v is not None}
        return StoredExecution(
            fields={k.decode(): v.decode() for k, v in raw_fields.items()},
            state=state,
            threads={k.decode(): v for k, v in raw_threads.items()},
        )

    @translated
    async def elements(self, execution_id: int) -> dict[str, Any]:
        raw: Any = await self.redis.hgetall(self.keys.execution(execution_id).elements)
        return {k.decode(): element_doc(k.decode(), decode(v)) for k, v in raw.items()}

    @translated
    async def element_records(self, execution_id: int, names: list[str]) -> dict[str, Any]:
        """The element records of these names that exist, decoded (CodecError if one does not decode)."""
        raw: Any = await self.redis.hmget(self.keys.execution(execution_id).elements, names)
        return {
            name: element_doc(name, decode(value)) for name, value in zip(names, raw, strict=True) if value is not None
        }

    @translated
    async def log(self, execution_id: int, count: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Log entries oldest first: (stream id, {at, event, elementKey, detail})."""
        raw: Any = await self.redis.xrange(self.keys.execution(execution_id).log, count=count)
        return [_log_entry(entry_id, values) for entry_id, values in raw]

    @translated
    async def log_after(
        self, execution_id: int, after: str, *, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Log entries after the stream id `after`, waiting up to `block_ms` for one ([] if none came)."""
        raw = await self.redis.xread({self.keys.execution(execution_id).log: after}, count=count, block=block_ms)
        return [_log_entry(entry_id, values) for entry_id, values in _stream_entries(raw)]

    @translated
    async def announce(self, tenant: str, execution_id: int, status: str, process_key: str) -> None:
        """Add a status change to the tenant's status-events stream: a notice for watchers (the console), written
        beside the execution's own atomic write, not in it (another slot); losing one loses no state."""
        await self.redis.xadd(
            self.keys.status_events(tenant),
            {"executionID": execution_id, "status": status, "processKey": process_key},
            maxlen=STATUS_EVENTS_MAXLEN,
            approximate=True,
        )

    @translated
    @translated
    async def last_status_event(self, tenant: str) -> str:
        """The id of the tenant's newest status event ("0-0" if none): where a feed "from now" starts, so that an
        event added between two of its reads is not missed, as XREAD's "$" would."""
        newest: Any = await self.redis.xrevrange(self.keys.status_events(tenant), count=1)
        return _text_id(newest[0][0]) if newest else "0-0"

    @translated
    async def status_events_after(
        self, tenant: str, after: str, *, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """The tenant's status changes after the stream id `after` ("$": from now), waiting up to `block_ms`."""
        raw = await self.redis.xread({self.keys.status_events(tenant): after}, count=count, block=block_ms)
        found = []
        for entry_id, values in _stream_entries(raw):
            fields = {k.decode(): v.decode() for k, v in values.items()}
            found.append(
                (
                    _text_id(entry_id),
                    {
                        "executionID": int(fields["executionID"]),
                        "status": fields["status"],
                        "processKey": fields.get("processKey", ""),
                    },
                )
            )
        return found

    # --- indexes ------------------------------------------------------------------------------

    @translated
    async def edit_indexes(self, edits: list[IndexOp], *, inactive: int | None = None) -> None:
        """Apply index edits by themselves (single-key commands on the tenant's slot), and take `inactive` out of
        the active set and this node's `owned` set, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for op in edits:
                pipe.execute_command(op.command, op.key, *op.args)
            if inactive is not None:
                pipe.srem(self.keys.active, str(inactive))
                if self.node_id:
                    pipe.srem(self.keys.owned(self.node_id), str(inactive))
            await pipe.execute()

    @translated
    async def activate(self, *execution_ids: int) -> None:
        """Into the active set (nodes of earlier versions scan it) and this node's `owned` set (read if this node
        dies), before the write that makes them running under this node (a creation, a retry): one round trip for
        any number."""
        if not execution_ids:
            return
        members = [str(execution_id) for execution_id in execution_ids]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.keys.active, *members)
            if self.node_id:
                pipe.sadd(self.keys.owned(self.node_id), *members)
            await pipe.execute()

    @translated
    async def unindex(self, at: Indexed) -> None:
        """Undo a start that failed: out of the active set and of every index it may have been put in."""
        entries = await self._search_entries(at.tenant, [at.execution_id])
        edits = removed(self.keys, at, None) + search.removed(self.keys, at.tenant, at.execution_id, entries[0])
        await self.edit_indexes(edits, inactive=at.execution_id)

    async def _search_entries(self, tenant: str, execution_ids: list[int]) -> list[search.SearchEntry]:
        """What of the search indexes each execution is in, by the tenant's `search` hash."""
        raw: list[Any] = await self.redis.hmget(self.keys.search(tenant), [str(i) for i in execution_ids])
        return [search.SearchEntry.from_field(value.decode() if isinstance(value, bytes) else value) for value in raw]

    @translated
    async def release_key(self, key: str, value: str) -> None:
        """Delete `key` if it still holds `value` (compare-and-delete)."""
        await self.scripts.release_key(keys=[key], args=[value])

    @translated
    async def swap_key(self, key: str, value: str, new: str) -> bool:
        """Set `key` to `new`, keeping its TTL, if it still holds `value` (compare-and-set); whether it did."""
        return bool(await self.scripts.swap_key(keys=[key], args=[value, new]))

    @translated
    async def sweep(self, tenant: str, now_ms: int, count: int) -> int:
        """Take the executions whose retention is over out of the tenant's indexes (their keys expired by
        themselves); how many."""
        due: Any = await self.redis.zrangebyscore(self.keys.removals(tenant), "-inf", now_ms, 0, count)
        if due:
            edits = [IndexOp("ZREM", self.keys.removals(tenant), tuple(note.decode() for note in due))]
            notes = [parse_removal_note(tenant, note.decode()) for note in due]
            entries = await self._search_entries(tenant, [at.execution_id for at, _ in notes])
            for (at, status), entry in zip(notes, entries, strict=True):
                edits += removed(self.keys, at, status)
                edits += search.removed(self.keys, tenant, at.execution_id, entry)
            await self.edit_indexes(edits)
        return len(due)

    @translated
    async def deactivate(self, *execution_ids: int) -> None:
        """Drop final executions from the active set and this node's `owned` set, after their final write (one
        round trip for any number)."""
        if not execution_ids:
            return
        members = [str(execution_id) for execution_id in execution_ids]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.srem(self.keys.active, *members)
            if self.node_id:
                pipe.srem(self.keys.owned(self.node_id), *members)
            await pipe.execute()

    @translated
    async def active_ids(self) -> list[int]:
        members: list[bytes] = [m async for m in self.redis.sscan_iter(self.keys.active, count=1000)]
        return [int(member) for member in members]

    @translated
    async def owned_ids(self, node_id: str) -> list[int]:
        """The members of a node's `owned` set (SSCAN: a member may come twice, as SSCAN allows)."""
        members: list[bytes] = [m async for m in self.redis.sscan_iter(self.keys.owned(node_id), count=1000)]
        return [int(member) for member in members if member.isdigit()]

    @translated
    async def disown(self, node_id: str, *execution_ids: int) -> None:
        """Out of a node's `owned` set (what its reader found final, gone, or owned by another node)."""
        if execution_ids:
            await self.redis.srem(self.keys.owned(node_id), *(str(execution_id) for execution_id in execution_ids))

    @translated
    async def own(self, node_id: str, *execution_ids: int) -> None:
        """Into a node's `owned` set (put back what a concurrent change made its own again)."""
        if execution_ids:
            await self.redis.sadd(self.keys.owned(node_id), *(str(execution_id) for execution_id in execution_ids))

    @translated
    async def page(self, index: str, before: int | None, count: int) -> list[int]:
        """Execution ids in one index (`indexes.pick`), newest first, strictly older than `before`."""
        top: str = f"({before}" if before is not None else "+inf"
        raw: Any = await self.redis.zrevrangebyscore(index, top, "-inf", start=0, num=count)
        return [int(member) for member in raw]

    @translated
    async def many_fields(self, execution_ids: list[int], names: list[str]) -> list[dict[str, str]]:
        """Selected fields of several executions in one round trip ({} for a missing one)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for execution_id in execution_ids:
                pipe.hmget(self.keys.execution(execution_id).execution, names)
            rows = await pipe.execute()
        return [
            {name: value.decode() for name, value in zip(names, row, strict=True) if value is not None} for row in rows
        ]


STATUS_EVENTS_MAXLEN = 10_000


def _log_entry(entry_id: Any, values: Any) -> tuple[str, dict[str, Any]]:
    fields = {k.decode(): v for k, v in values.items()}
    return (
        _text_id(entry_id),
        {
            "at": log_time(fields.get("at", b"").decode()),
            "event": fields.get("event", b"").decode(),
            "elementKey": fields.get("elementKey", b"").decode() or None,
            "detail": detail_doc(decode(fields["detail"])) if fields.get("detail") else {},
        },
    )


def _text_id(entry_id: Any) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _stream_entries(raw: Any) -> list[tuple[Any, Any]]:
    """The entries of an XREAD: RESP2 gives [[key, [(id, fields), ...]], ...], RESP3 {key: [[(id, fields), ...]]}."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return [entry for groups in raw.values() for group in groups for entry in group]
    return [entry for _, entries in raw for entry in entries]


def stored_fields(mapping: dict[str, Scalar]) -> dict[str, str]:
    """Hash fields as Redis gives them back (every value a string), for a copy kept in memory."""
    return {name: value if isinstance(value, str) else _text(value) for name, value in mapping.items()}


def _text(value: Scalar) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(mapping: dict[str, Scalar]) -> list[str | bytes]:
    """Field/value pairs for HSET inside Lua, every value a string (Lua numbers lose digits)."""
    return [
        part for name, value in mapping.items() for part in (name, value if isinstance(value, bytes) else str(value))
    ]


def _applied(reply: Any) -> bool:
    """A commit.lua reply that says it wrote (the group commit fails only those when no replica has them)."""
    return isinstance(reply, list) and _result(reply).outcome is Outcome.OK


def _result(reply: list[Any]) -> WriteResult:
    outcome, status, epoch = (part.decode() if isinstance(part, bytes) else str(part) for part in reply)
    # an epoch edited by hand into something else than a number reads as 0: no writer holds that epoch
    return WriteResult(Outcome(outcome), status, _number(epoch))


def _number(part: Any) -> int:
    text = part.decode() if isinstance(part, bytes) else str(part)
    return int(text) if text.isascii() and text.isdigit() else 0


def log_time(text: str) -> str:
    """A log entry's `at` as ISO-8601: stored as epoch milliseconds (entries written by earlier versions hold
    ISO-8601 already)."""
    return iso(int(text)) if text.isdigit() else text


def _last_element(commit: Commit) -> str:
    """The element a checkpoint follows: the last one its log names ("" for a write of no element's: a pause)."""
    for record in reversed(commit.log):
        if record.element_key and record.event.startswith("element-"):  # not a breakpoint's: before its element
            return record.element_key
    return ""
