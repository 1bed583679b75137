"""The node's time travel (issue 22): the checkpoint history reads `GET …/{id}/checkpoints`, `…/checkpoints/{seq}`
and `…/checkpoints/{a}/diff/{b}`, from the history list commit.lua keeps (`store/history.py`: reads only, which need
no actor and no owner and answer the same from any node), and `POST …/{id}/rewind`, a command of the execution's
actor (`actors/rewind.py`), reached like any command (`Node._ask`: activated here, a failed or cancelled one's too,
or forwarded to the node that drives it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from procengine.actors.actor import ExecutionActor
from procengine.actors.messages import Command
from procengine.actors.snapshot import load_state
from procengine.api.service import Caller
from procengine.api.views import (
    BreakpointsRequest,
    BreakpointsResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointSummary,
    CheckpointView,
    ForkRequest,
    RewindRequest,
    RewindResult,
    StartRequest,
    StartResult,
    SteppedResult,
    StepRequest,
)
from procengine.engine.compiled import CompiledProcess
from procengine.engine.diff import checkpoint_diff
from procengine.engine.interpreter import Interpreter
from procengine.engine.merge_patch import applied
from procengine.engine.state import ExecutionState, expand_memory_doc
from procengine.engine.stored import seed_memory, seed_stack
from procengine.errors import CodecError, NotFound, StateCorrupted
from procengine.store.codec import decode
from procengine.store.executions import Commit, LogRecord, StoredExecution
from procengine.store.history import HistoryStore, KeptCheckpoint
from procengine.store.processes import StoredProcess

__all__ = ["Fork", "TimeTravel"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Fork:
    """A new execution started from a kept checkpoint of another (`Node._new_execution`)."""

    source: int
    checkpoint: int
    state: ExecutionState
    paused: bool
    patch: dict[str, Any] | None
    """The merge patch given and what it changed ({before, after}), for the `started` entry."""
    reason: str | None


class TimeTravel:
    """Mixed into `Node`, which provides `history`, `queries` (whose `require` is the tenant check) and `_ask`."""

    history: HistoryStore

    if TYPE_CHECKING:
        from procengine.node.queries import Queries

        queries: Queries

        async def _ask(self, execution_id: int, command: Command, result: type[M], *, forward: bool = True) -> M: ...

        def _check_patch(self, patch: dict[str, Any]) -> None: ...

        def _check_variables(self, variables: dict[str, Any], process: CompiledProcess) -> None: ...

        async def _admit_start(self, tenant: str, starts: int = 1) -> int: ...

        async def _create(
            self,
            caller: Caller,
            execution_id: int,
            first_thread: int,
            stored: StoredProcess,
            process: CompiledProcess,
            request: StartRequest,
            parent: int | None,
            depth: int,
            child_key: str | None = None,
            *,
            fork: Fork | None = None,
        ) -> ExecutionActor: ...

        from procengine.node.catalog import Catalog
        from procengine.node.registry import Registry
        from procengine.runtime.clock import Clock
        from procengine.store.executions import ExecutionStore
        from procengine.store.health import StoreHealth

        catalog: Catalog
        registry: Registry
        store: ExecutionStore
        health: StoreHealth
        clock: Clock

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

    async def fork(self, caller: Caller, execution_id: int, request: ForkRequest) -> StartResult:
        """A new execution of the same process version, from kept checkpoint `request.checkpoint` of this one (its
        latest if None), variables merge-patched, running unless `request.paused`; each log names the other."""
        fields = await self.queries.require(caller.tenant, execution_id)
        kept = await self.history.kept(execution_id)
        if not kept:
            raise NotFound(f"execution {execution_id} keeps no checkpoint to fork from (--history-checkpoints)")
        found = kept[-1] if request.checkpoint is None else _find(kept, execution_id, request.checkpoint)
        process_id = int(fields["processID"])
        stored = await self.catalog.resolve(caller.tenant, process_id, None)
        process = await self.catalog.compiled(caller.tenant, process_id)
        blobs = {"stack": found.stack, "memory": found.memory}
        try:
            state = load_state(StoredExecution(fields=fields, state=blobs, threads=found.threads), process)
        except StateCorrupted as exc:
            why = f"checkpoint {found.seq} of execution {execution_id} cannot be used: {exc.message}"
            raise StateCorrupted(why) from None
        patch = None
        if request.variables is not None:
            self._check_patch(request.variables)
            state.memory.variables, changes = applied(state.memory.variables, request.variables)
            patch = changes
        self._check_variables(state.memory.variables, process)
        for entry in state.stack:  # its own children, started anew: the source's are not the fork's
            if entry.child_id is not None:
                entry.child_id = entry.started_at_ms = None
            entry.at_breakpoint = False
        interpreter = Interpreter(process)
        now = self.clock.now_ms()
        if request.paused:
            interpreter.freeze_timers(state, now)
        else:
            interpreter.thaw_timers(state, now)
            state.paused_at_node = None
        await self._admit_start(caller.tenant)
        new_id, first_thread = await self.store.allocate_ids(len(process.threads))
        self.health.issued(new_id)
        for index, thread in enumerate(process.threads):
            state.threads[thread.key].thread_execution_id = first_thread + index
        fork = Fork(execution_id, found.seq, state, request.paused, patch, request.reason)
        request_of_start = StartRequest(processID=process_id)
        actor = await self._create(caller, new_id, first_thread, stored, process, request_of_start, None, 0, fork=fork)
        self.registry.spawn(actor)
        told = {"executionID": new_id, "checkpoint": found.seq, "by": caller.by, "requestId": caller.request_id}
        if request.reason is not None:
            told["reason"] = request.reason
        await self.store.commit(execution_id, Commit(log=[LogRecord(now, "forked", None, told)]), epoch=None, expect="")
        return StartResult(
            executionID=new_id,
            status="paused" if request.paused else "running",
            processID=process_id,
            processVersion=stored.version,
        )

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
