"""The node's time travel (issue 22): the checkpoint history reads `GET …/{id}/checkpoints`, `…/checkpoints/{seq}`
and `…/checkpoints/{a}/diff/{b}`, from the history list commit.lua keeps (`store/history.py`: reads only, which need
no actor and no owner and answer the same from any node), and `POST …/{id}/rewind`, a command of the execution's
actor (`actors/rewind.py`), reached like any command (`Node._ask`: activated here, a failed or cancelled one's too,
or forwarded to the node that drives it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from procengine.actors.messages import Command
from procengine.api.service import Caller
from procengine.api.views import (
    BreakpointsRequest,
    BreakpointsResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointSummary,
    CheckpointView,
    RewindRequest,
    RewindResult,
    SteppedResult,
    StepRequest,
)
from procengine.engine.diff import checkpoint_diff
from procengine.engine.state import expand_memory_doc
from procengine.engine.stored import seed_memory, seed_stack
from procengine.errors import CodecError, NotFound
from procengine.store.codec import decode
from procengine.store.history import HistoryStore, KeptCheckpoint

__all__ = ["TimeTravel"]

M = TypeVar("M", bound=BaseModel)


class TimeTravel:
    """Mixed into `Node`, which provides `history`, `queries` (whose `require` is the tenant check) and `_ask`."""

    history: HistoryStore

    if TYPE_CHECKING:
        from procengine.node.queries import Queries

        queries: Queries

        async def _ask(self, execution_id: int, command: Command, result: type[M], *, forward: bool = True) -> M: ...

        def _check_patch(self, patch: dict[str, Any]) -> None: ...

    async def set_breakpoints(
        self, caller: Caller, execution_id: int, request: BreakpointsRequest
    ) -> BreakpointsResult:
        """Where a running or paused execution's lanes pause before an element (the whole set); exact about the runs
        that had begun (`actors/breakpoints.py`)."""
        wanted = [item if isinstance(item, str) else item.model_dump(exclude_none=True) for item in request.pauseBefore]
        command = Command("breakpoints", caller, request.reason, payload=wanted)
        return await self._ask(execution_id, command, BreakpointsResult)

    async def step(self, caller: Caller, execution_id: int, request: StepRequest) -> SteppedResult:
        """A paused execution runs the next element of each lane (or of `request.lane`) and pauses again."""
        command = Command("advance", caller, request.reason, lane=request.lane)
        return await self._ask(execution_id, command, SteppedResult)

    async def rewind(self, caller: Caller, execution_id: int, request: RewindRequest) -> RewindResult:
        """A paused, failed or cancelled execution back to kept checkpoint `request.checkpoint`, paused there."""
        if request.variables is not None:
            self._check_patch(request.variables)
        command = Command("rewind", caller, request.reason, patch=request.variables, checkpoint=request.checkpoint)
        return await self._ask(execution_id, command, RewindResult)

    async def checkpoints(self, caller: Caller, execution_id: int, *, limit: int, cursor: str | None) -> CheckpointList:
        """A page of the kept checkpoints, newest first; the cursor is the last seq shown."""
        kept = await self._kept(caller, execution_id)
        below = _cursor(cursor)
        newest_first = [c for c in reversed(kept) if below is None or c.seq < below]
        page = newest_first[:limit]
        more = len(newest_first) > limit
        return CheckpointList(
            executionID=execution_id,
            items=[_summary(c, _stack(c)) for c in page],
            nextCursor=str(page[-1].seq) if more else None,
        )

    async def checkpoint(self, caller: Caller, execution_id: int, seq: int) -> CheckpointView:
        found = _find(await self._kept(caller, execution_id), execution_id, seq)
        stack = _stack(found)
        summary = _summary(found, stack)
        return CheckpointView(**summary.model_dump(), executionID=execution_id, stack=stack, memory=_memory(found))

    async def checkpoint_diff(self, caller: Caller, execution_id: int, a: int, b: int) -> CheckpointDiff:
        kept = await self._kept(caller, execution_id)
        first, second = _find(kept, execution_id, a), _find(kept, execution_id, b)
        diff = checkpoint_diff(_stack(first), _memory(first), _stack(second), _memory(second))
        return CheckpointDiff(executionID=execution_id, fromSeq=a, toSeq=b, **diff)

    async def _kept(self, caller: Caller, execution_id: int) -> list[KeptCheckpoint]:
        await self.queries.require(caller.tenant, execution_id)
        return await self.history.kept(execution_id)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19:
        return 0  # names no checkpoint: an empty page (as a list's unknown cursor)
    return int(cursor)


def _find(kept: list[KeptCheckpoint], execution_id: int, seq: int) -> KeptCheckpoint:
    for checkpoint in kept:
        if checkpoint.seq == seq:
            return checkpoint
    raise NotFound(f"checkpoint {seq} of execution {execution_id} is not kept (GET …/{execution_id}/checkpoints)")


def _decoded(blob: bytes) -> dict[str, Any] | None:
    try:
        value = decode(blob)
    except CodecError as exc:
        return {"error": exc.message}
    return value if isinstance(value, dict) else {"error": "not a map"}


def _stack(checkpoint: KeptCheckpoint) -> dict[str, Any] | None:
    stack: dict[str, Any] | None = seed_stack(_decoded(checkpoint.stack))
    return stack


def _memory(checkpoint: KeptCheckpoint) -> dict[str, Any] | None:
    memory: dict[str, Any] | None = expand_memory_doc(seed_memory(_decoded(checkpoint.memory)))
    return memory


def _summary(checkpoint: KeptCheckpoint, stack: dict[str, Any] | None) -> CheckpointSummary:
    entries = stack.get("execution_stack") if stack else None
    lanes = sorted(
        {str(e.get("path") or e.get("thread_key")) for e in entries if isinstance(e, dict)}
        if isinstance(entries, list)
        else set()
    )
    return CheckpointSummary(
        seq=checkpoint.seq,
        savedAt=checkpoint.saved_at,
        elementKey=checkpoint.element_key or None,
        lanes=lanes,
        bytes=checkpoint.size,
    )
