"""Read-only answers, straight from Redis (any node can give them; no actor is activated)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from procengine.actors.snapshot import check_fields
from procengine.api.filters import ExecutionFilter
from procengine.api.rendered import RenderedStatus
from procengine.api.views import (
    ELEMENTS_PAGE,
    ElementsView,
    ElementView,
    ExecutionList,
    ExecutionSummary,
    LogEntry,
    LogView,
    StateView,
)
from procengine.engine.attributes import shown
from procengine.engine.breakpoints import from_field
from procengine.engine.compiled import CompiledProcess
from procengine.engine.state import StackEntry, ThreadProgress, expand_memory_doc
from procengine.engine.stored import seed_memory, seed_stack
from procengine.errors import CodecError, NotFound, StateCorrupted, ValidationFailed
from procengine.node.blocked import Blocked, blocked_on, parse_buffered
from procengine.node.search import Declared, Search
from procengine.statuses import Status
from procengine.store.codec import decode
from procengine.store.executions import ExecutionStore, StoredExecution
from procengine.store.search import ATTRIBUTES_FIELD, decode_attributes
from procengine.store.stored_records import thread_doc

log = logging.getLogger(__name__)

SUMMARY_FIELDS = [
    "status",
    "processID",
    "processKey",
    "processVersion",
    "startedAt",
    "stoppedAt",
    "tenant",
    "parentExecutionID",
]


Compiled = Callable[[str, int], Awaitable[CompiledProcess]]
"""(tenant, processID) -> the compiled definition (the node's catalog, cached)."""
Alive = Callable[[set[str]], Awaitable[set[str]]]
"""Which of these nodes have a live heartbeat (`Ownership.alive`)."""


class Queries:
    def __init__(
        self,
        store: ExecutionStore,
        compiled: Compiled | None = None,
        alive: Alive | None = None,
        declared: Declared | None = None,
    ) -> None:
        """`compiled` and `alive` give the status its `blockedOn` (without them it is always empty); `declared`
        the attributes a list may filter on (without it, none)."""
        self.store = store
        self.compiled = compiled
        self.alive = alive
        self.search = Search(store, declared or _none_declared)

    async def _owned(
        self, tenant: str, execution_id: int, *, with_state: bool = True, state_fields: tuple[str, ...] = ()
    ) -> StoredExecution:
        stored = await self.store.load(execution_id, with_state=with_state, state_fields=state_fields)
        if stored is None or stored.fields.get("tenant") != tenant:
            raise NotFound(f"execution {execution_id} not found")
        return stored

    async def require(self, tenant: str, execution_id: int) -> dict[str, str]:
        """The execution's fields if it is the tenant's, else NotFound."""
        fields = await self.store.fields(execution_id)
        if not fields or fields.get("tenant") != tenant:
            raise NotFound(f"execution {execution_id} not found")
        return fields

    async def status(self, tenant: str, execution_id: int) -> RenderedStatus:
        """The status answer read from Redis: the execution and thread hashes and the stack in one round trip;
        a second one, per lane, for what `blockedOn` needs beyond them (see `blocked.py`)."""
        stored = await self._owned(tenant, execution_id, with_state=False, state_fields=("stack", "savedAt"))
        check_fields(execution_id, stored.fields)  # a hash edited by hand is 409 naming the field, not a 500
        try:
            threads = [thread_doc(key, decode(raw)) for key, raw in stored.threads.items()]
            doc = status_doc(execution_id, stored.fields, threads)
        except (CodecError, KeyError, TypeError, ValueError, RecursionError) as exc:
            why = exc.message if isinstance(exc, CodecError) else repr(exc)[:300]
            raise StateCorrupted(f"execution {execution_id}: a thread record cannot be read: {why}") from None
        doc["blockedOn"] = await self._blocked_on(tenant, execution_id, stored)
        return RenderedStatus.of(doc)

    async def _blocked_on(self, tenant: str, execution_id: int, stored: StoredExecution) -> list[dict[str, Any]]:
        fields = stored.fields
        if self.compiled is None or Status(fields["status"]).is_final:
            return []
        try:
            process = await self.compiled(tenant, int(fields["processID"]))
            stack = stack_entries(stored.state.get("stack"))
        except (
            NotFound,
            StateCorrupted,
            CodecError,
            ValidationFailed,
            ValidationError,
            ValueError,
            RecursionError,
        ) as exc:
            # a stack that cannot be read (resume says so, with 409 STATE_CORRUPTED), a definition gone: the status
            # itself is still worth answering
            log.warning("execution %s: blockedOn left empty: %s", execution_id, exc)
            return []
        blocked = Blocked(process, stack, fields)
        records, children, owner_alive = await asyncio.gather(
            self._records(execution_id, blocked.record_fields()),
            self._child_statuses(blocked.child_ids()),
            self._owner_alive(blocked.owner()),
        )
        saved_at = stored.state.get("savedAt")
        return blocked_on(
            blocked,
            buffered=parse_buffered(fields),
            records=records,
            children=children,
            owner_alive=owner_alive,
            saved_at=saved_at.decode() if saved_at else None,
        )

    async def _records(self, execution_id: int, names: list[str]) -> dict[str, Any]:
        if not names:
            return {}
        try:
            return await self.store.element_records(execution_id, names)
        except CodecError:  # edited by hand: the last error is not known
            return {}

    async def _child_statuses(self, child_ids: list[int]) -> dict[int, str]:
        if not child_ids:
            return {}
        rows = await self.store.many_fields(child_ids, ["status"])
        return {child: row["status"] for child, row in zip(child_ids, rows, strict=True) if "status" in row}

    async def _owner_alive(self, owner: str | None) -> bool:
        if owner is None or self.alive is None:
            return True
        return bool(owner) and owner in await self.alive({owner})

    async def log(self, tenant: str, execution_id: int) -> LogView:
        # the tenant check and the read go out together; nothing is returned unless the check passes
        _, entries = await asyncio.gather(self.require(tenant, execution_id), self.store.log(execution_id))
        return LogView(executionID=execution_id, items=[LogEntry(id=entry_id, **doc) for entry_id, doc in entries])

    async def elements(
        self, tenant: str, execution_id: int, *, limit: int = ELEMENTS_PAGE, cursor: str | None = None
    ) -> ElementsView:
        """A page of the element records (one per element of a thread, and per element of each branch or
        iteration), sorted by `startedAt`, key and path; the cursor is the sort key of the last record shown, so a
        page goes on after it even when records were added in between (a record whose element started again
        moves on, and may be shown once more)."""
        after = _element_cursor(cursor)
        fields, records = await asyncio.gather(self.require(tenant, execution_id), self.store.elements(execution_id))
        try:
            items = [ElementView.model_validate(record) for record in records.values()]
        except ValidationError as exc:
            raise StateCorrupted(f"an element record of execution {execution_id} is malformed: {exc}") from None
        paused_at = fields.get("pausedAt") if fields.get("status") == Status.PAUSED.value else None
        if paused_at:
            # under way when the pause froze it (a delay, a wait, a call): paused, and it stopped running then; its
            # record (written when it started) would claim the pause as running time
            frozen = {"status": "paused", "stoppedAt": paused_at}
            items = [item.model_copy(update=frozen) if item.status == "running" else item for item in items]
        items.sort(key=_element_order)
        if after is not None:
            items = [item for item in items if _element_order(item) > after]
        more = len(items) > limit
        items = items[:limit]
        next_cursor = _element_cursor_of(items[-1]) if more else None
        return ElementsView(executionID=execution_id, items=items, nextCursor=next_cursor)

    async def state(self, tenant: str, execution_id: int) -> StateView:
        stored = await self._owned(tenant, execution_id)
        return StateView(
            executionID=execution_id,
            active=stored.state.get("active", b"0") == b"1",
            savedAt=stored.state["savedAt"].decode() if "savedAt" in stored.state else None,
            stack=seed_stack(_decoded_or_error(stored.state.get("stack"))),
            memory=expand_memory_doc(seed_memory(_decoded_or_error(stored.state.get("memory")))),
            pauseBefore=[breakpoint.to_doc() for breakpoint in from_field(stored.fields)],
        )

    async def list(
        self,
        tenant: str,
        *,
        status: str | None,
        process_id: int | None,
        limit: int,
        cursor: str | None,
        filters: ExecutionFilter | None = None,
    ) -> ExecutionList:
        """A page of the tenant's executions, newest first. With only `status` and `processID` it reads the one
        index that holds exactly what they ask for: O(page) whatever the number of executions; with more filters,
        the most selective index drives and the others are checked in batches (`node/search.py`). The cursor is
        the last id looked at, so a page never repeats one; an execution whose status changes while a client
        pages is shown where it was when its page was read, or not at all. Each row is checked against the
        filters once read (an index that lags behind, an execution whose keys have expired and which the sweeper
        has not yet taken out): such a row is skipped, and the page filled from further on. A filtered page may
        come short (even empty) with a `nextCursor` when its filters match little of what their most selective
        index holds: a page reads a bounded number of ids (`search.BUDGET_PAGES`)."""
        wanted = replace(filters or ExecutionFilter(), status=status, process_id=process_id)
        plan = await self.search.plan(tenant, wanted)
        found = await self.search.scan(plan, after=_cursor(cursor), wanted=limit)
        items: list[ExecutionSummary] = []
        for execution_id, row in found.rows:
            try:
                items.append(_summary(execution_id, row))
            except (KeyError, ValueError) as exc:  # edited by hand: one such execution must not break the list
                log.warning("execution %s left out of a list: its hash cannot be read: %r", execution_id, exc)
        more = found.more and found.last is not None
        return ExecutionList(items=items, nextCursor=str(found.last) if more else None)


async def _none_declared(tenant: str, names: Collection[str]) -> dict[str, str]:
    return {}


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit()):
        raise ValidationFailed("bad cursor", [f"cursor: {cursor!r} is not a cursor this API gave"])
    return int(cursor)


def _element_order(record: ElementView) -> tuple[str, str, str]:
    return (record.startedAt or "", record.key, record.path or "")


def _element_cursor_of(record: ElementView) -> str:
    """The opaque cursor after `record`: its sort key, as URL-safe base64 of JSON."""
    return base64.urlsafe_b64encode(json.dumps(_element_order(record)).encode()).decode().rstrip("=")


def _element_cursor(cursor: str | None) -> tuple[str, str, str] | None:
    if cursor is None or cursor == "":
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: made up of nested brackets
        decoded = None
    if not (isinstance(decoded, list) and len(decoded) == 3 and all(isinstance(part, str) for part in decoded)):
        raise ValidationFailed("bad cursor", [f"cursor: {cursor[:50]!r} is not a cursor this API gave"])
    return (decoded[0], decoded[1], decoded[2])


def _summary(execution_id: int, row: dict[str, str]) -> ExecutionSummary:
    return ExecutionSummary(
        executionID=execution_id,
        processID=int(row["processID"]),
        processKey=row.get("processKey", ""),
        processVersion=int(row.get("processVersion", 0)),
        status=Status(row["status"]).value,
        startedAt=row["startedAt"],
        stoppedAt=row.get("stoppedAt") or None,
        parentExecutionID=int(row["parentExecutionID"]) if row.get("parentExecutionID") else None,
        attributes=shown(decode_attributes(row.get(ATTRIBUTES_FIELD))),
    )


def stack_entries(blob: bytes | None) -> list[StackEntry]:
    """The entries of a stored stack snapshot (none without one); StateCorrupted or CodecError if malformed."""
    if not blob:
        return []
    doc = decode(blob)
    if not isinstance(doc, dict) or not isinstance(doc.get("execution_stack"), list):
        raise StateCorrupted("stack snapshot is not in the expected shape")
    return [StackEntry.from_doc(entry) for entry in doc["execution_stack"]]


def _decoded_or_error(blob: bytes | None) -> dict[str, Any] | None:
    if not blob:
        return None
    try:
        value = decode(blob)
    except CodecError as exc:
        return {"error": exc.message}
    return value if isinstance(value, dict) else {"error": "not a map"}


def status_doc(execution_id: int, fields: Mapping[str, str], thread_records: Iterable[Any]) -> dict[str, Any]:
    """Everything of the status answer but the duration, from the execution hash and the thread records.

    It changes only when the execution is written, so a live actor keeps it between writes. The completed and
    failed nodes are the sums of the threads' (the hash has no failedNodes but in executions written before; a hash
    without thread records, edited by hand, is read from its fields)."""
    status = Status(fields["status"])
    threads = sorted((ThreadProgress.from_doc(record) for record in thread_records), key=lambda t: t.process_thread_id)
    total = int(fields.get("totalNodes", 0))
    if threads:
        completed = sum(t.completed_nodes for t in threads)
        failed = sum(t.failed_nodes for t in threads)
    else:
        completed, failed = int(fields.get("completedNodes", 0)), int(fields.get("failedNodes", 0))
    if status is Status.COMPLETED or total == 0:
        percentage = 100.0 if status is Status.COMPLETED else 0.0
    else:
        percentage = min(round(completed / total * 100, 2), 100.0)
    return {
        "executionID": execution_id,
        "processID": int(fields["processID"]),
        "processKey": fields.get("processKey", ""),
        "processVersion": int(fields.get("processVersion", 0)),
        "status": status.value,
        "isActive": status.is_active,
        "progress": {
            "totalNodes": total,
            "completedNodes": completed,
            "failedNodes": failed,
            "percentage": percentage,
        },
        "timing": {
            "startedAt": fields["startedAt"],
            "stoppedAt": fields.get("stoppedAt") or None,
            "pausedAt": fields.get("pausedAt") or None,
            "pausedDurationMs": int(fields.get("pausedDurationMs") or 0),  # the ended pauses; RenderedStatus
        },  # adds the pause under way at each read
        "threads": [
            {
                "threadExecutionID": t.thread_execution_id,
                "processThreadID": t.process_thread_id,
                "threadKey": t.thread_key,
                # a thread of a paused execution is paused, whatever its record said when it was last written
                "status": "paused" if status is Status.PAUSED and t.status == "running" else t.status,
                "completedNodes": t.completed_nodes,
                "totalNodes": t.total_nodes,
            }
            for t in threads
        ],
        "error": json.loads(fields["error"]) if fields.get("error") else None,
        "parentExecutionID": int(fields["parentExecutionID"]) if fields.get("parentExecutionID") else None,
        "children": json.loads(fields["children"]) if fields.get("children") else [],
        "attributes": shown(decode_attributes(fields.get(ATTRIBUTES_FIELD))),
    }
