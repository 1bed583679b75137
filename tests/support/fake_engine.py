"""An in-memory stand-in for `NodeService`, just enough to drive the front door.

It keeps tenants apart (another tenant's process or execution is `NotFound`), refuses transitions the
contract forbids (`InvalidTransition`), records every call with its `Caller`, and can be told to raise
any exception on its next call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from procengine.api.filters import ExecutionFilter
from procengine.api.service import Caller
from procengine.api.views import (
    ELEMENTS_PAGE,
    BatchItemError,
    BatchStartItem,
    BatchStartRequest,
    BatchStartResult,
    BreakpointsRequest,
    BreakpointsResult,
    CancelResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointSummary,
    CheckpointView,
    ControlRequest,
    ElementsView,
    ElementView,
    ExecutionList,
    ExecutionStatusView,
    ExecutionSummary,
    ForkRequest,
    LogEntry,
    LogView,
    MigrateRequest,
    MigrateResult,
    MigrationStep,
    PauseResult,
    ProcessList,
    ProcessSummary,
    ProcessView,
    Progress,
    ResumeResult,
    RewindRequest,
    RewindResult,
    SignalResult,
    StartRequest,
    StartResult,
    StateView,
    StatusName,
    SteppedResult,
    SteppedRun,
    StepRequest,
    Timing,
)
from procengine.engine.validation import validate_definition
from procengine.errors import InvalidTransition, NotFound, ProcEngineError, ValidationFailed

NOW = "2024-05-01T12:00:00.000Z"


@dataclass
class FakeExecution:
    execution_id: int
    tenant: str
    process: ProcessView
    status: StatusName = "running"
    variables: dict[str, Any] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    signals: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Call:
    method: str
    caller: Caller | None
    args: tuple[Any, ...]


class FakeEngine:
    def __init__(self) -> None:
        self.processes: dict[int, tuple[str, ProcessView]] = {}
        self.executions: dict[int, FakeExecution] = {}
        self.idempotency: dict[tuple[str, str], int] = {}
        self.calls: list[Call] = []
        self.is_ready = True
        self.raise_next: BaseException | None = None
        self.list_takes_s = 0.0
        """How long `list_processes` takes (a store that is slow, or hangs)."""

    # --- bookkeeping --------------------------------------------------------------------------

    def _record(self, method: str, caller: Caller | None, *args: Any) -> None:
        self.calls.append(Call(method, caller, args))
        if self.raise_next is not None:
            exc, self.raise_next = self.raise_next, None
            raise exc

    def last_call(self) -> Call:
        return self.calls[-1]

    def _execution(self, caller: Caller, execution_id: int) -> FakeExecution:
        execution = self.executions.get(execution_id)
        if execution is None or execution.tenant != caller.tenant:
            raise NotFound(f"execution {execution_id} not found")
        return execution

    def _transition(self, caller: Caller, execution: FakeExecution, to: StatusName, allowed: set[str]) -> None:
        if execution.status not in allowed:
            raise InvalidTransition(f"cannot move an execution that is {execution.status} to {to}", execution.status)
        detail = {"from": execution.status, "to": to, "by": caller.by, "requestID": caller.request_id}
        execution.log.append(LogEntry(id=f"{len(execution.log) + 1}-0", at=NOW, event=to, detail=detail))
        execution.status = to

    # --- processes ----------------------------------------------------------------------------

    async def register_process(self, caller: Caller, document: Any) -> tuple[ProcessSummary, bool]:
        self._record("register_process", caller, document)
        definition = validate_definition(document).definition
        versions = [view for tenant, view in self.processes.values() if tenant == caller.tenant]
        same_key = [view for view in versions if view.key == definition.key]
        if same_key and same_key[-1].definition == definition.canonical():
            latest = same_key[-1]
            return ProcessSummary(processID=latest.processID, key=latest.key, version=latest.version), False
        process_id = len(self.processes) + 1
        view = ProcessView(
            processID=process_id,
            key=definition.key,
            version=len(same_key) + 1,
            name=definition.name,
            tenant=caller.tenant,
            createdAt=NOW,
            definition=definition.canonical(),
        )
        self.processes[process_id] = (caller.tenant, view)
        return ProcessSummary(processID=process_id, key=view.key, version=view.version), True

    async def list_processes(self, caller: Caller) -> ProcessList:
        self._record("list_processes", caller)
        await asyncio.sleep(self.list_takes_s)
        return ProcessList(items=[view for tenant, view in self.processes.values() if tenant == caller.tenant])

    async def get_process(self, caller: Caller, process_id: int) -> ProcessView:
        self._record("get_process", caller, process_id)
        found = self.processes.get(process_id)
        if found is None or found[0] != caller.tenant:
            raise NotFound(f"process {process_id} not found")
        return found[1]

    # --- executions ---------------------------------------------------------------------------

    async def start_execution(self, caller: Caller, request: StartRequest) -> tuple[StartResult, bool]:
        self._record("start_execution", caller, request)
        if request.processID is None and request.processKey is None:
            raise ValidationFailed("start needs a process", ["give processID or processKey"])
        mine = [view for tenant, view in self.processes.values() if tenant == caller.tenant]
        if request.processID is not None:
            candidates = [view for view in mine if view.processID == request.processID]
        else:
            candidates = [view for view in mine if view.key == request.processKey]
        if not candidates:
            raise NotFound("process not found")
        process = candidates[-1]
        if request.idempotencyKey is not None and (caller.tenant, request.idempotencyKey) in self.idempotency:
            first = self.executions[self.idempotency[(caller.tenant, request.idempotencyKey)]]
            return self._start_result(first), False
        execution = FakeExecution(len(self.executions) + 1, caller.tenant, process, variables=dict(request.variables))
        self.executions[execution.execution_id] = execution
        if request.idempotencyKey is not None:
            self.idempotency[(caller.tenant, request.idempotencyKey)] = execution.execution_id
        return self._start_result(execution), True

    async def start_many(self, caller: Caller, request: BatchStartRequest) -> BatchStartResult:
        self._record("start_many", caller, request)
        items = []
        for index, start in enumerate(request.items):
            try:
                result, created = await self.start_execution(caller, start)
            except ProcEngineError as exc:
                error = BatchItemError(code=exc.code, message=exc.message, status=exc.status, details=exc.details)
                items.append(BatchStartItem(index=index, outcome="failed", error=error))
                continue
            outcome = "started" if created else "existing"
            items.append(BatchStartItem(index=index, outcome=outcome, **result.model_dump()))
        return BatchStartResult(
            items=items,
            started=sum(i.outcome == "started" for i in items),
            existing=sum(i.outcome == "existing" for i in items),
            failed=sum(i.outcome == "failed" for i in items),
        )

    @staticmethod
    def _start_result(execution: FakeExecution) -> StartResult:
        return StartResult(
            executionID=execution.execution_id,
            status=execution.status,
            processID=execution.process.processID,
            processVersion=execution.process.version,
        )

    async def list_executions(
        self,
        caller: Caller,
        *,
        status: str | None,
        process_id: int | None,
        limit: int,
        cursor: str | None,
        filters: ExecutionFilter | None = None,
    ) -> ExecutionList:
        self._record("list_executions", caller, status, process_id, limit, cursor)
        before = int(cursor) if cursor is not None else None
        rows = [
            e
            for e in sorted(self.executions.values(), key=lambda e: -e.execution_id)
            if e.tenant == caller.tenant
            and (status is None or e.status == status)
            and (process_id is None or e.process.processID == process_id)
            and (before is None or e.execution_id < before)
        ]
        page = rows[:limit]
        items = [
            ExecutionSummary(
                executionID=e.execution_id,
                processID=e.process.processID,
                processKey=e.process.key,
                processVersion=e.process.version,
                status=e.status,
                startedAt=NOW,
                stoppedAt=None,
            )
            for e in page
        ]
        next_cursor = str(page[-1].execution_id) if len(rows) > limit else None
        return ExecutionList(items=items, nextCursor=next_cursor)

    async def pause(self, caller: Caller, execution_id: int, request: ControlRequest) -> PauseResult:
        self._record("pause", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        self._transition(caller, execution, "paused", {"running"})
        return PauseResult(executionID=execution_id, completedNodes=1, totalNodes=3, pausedAt=NOW)

    async def resume(self, caller: Caller, execution_id: int, request: ControlRequest) -> ResumeResult:
        self._record("resume", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        self._transition(caller, execution, "running", {"paused"})
        return ResumeResult(executionID=execution_id, resumedAt=NOW, pendingNodes=2)

    async def cancel(self, caller: Caller, execution_id: int, request: ControlRequest) -> CancelResult:
        self._record("cancel", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        self._transition(caller, execution, "cancelled", {"running", "paused"})
        return CancelResult(executionID=execution_id, cancelledAt=NOW)

    async def signal(
        self, caller: Caller, execution_id: int, name: str, payload: Any, idempotency_key: str | None = None
    ) -> SignalResult:
        self._record("signal", caller, execution_id, name, payload, idempotency_key)
        execution = self._execution(caller, execution_id)
        if execution.status in ("completed", "failed", "cancelled"):
            raise InvalidTransition(f"cannot signal an execution that is {execution.status}", execution.status)
        execution.signals.append((name, payload))
        return SignalResult(executionID=execution_id, signal=name)

    async def status_json(self, caller: Caller, execution_id: int) -> bytes:
        return (await self.status(caller, execution_id)).model_dump_json().encode()

    async def status(self, caller: Caller, execution_id: int) -> ExecutionStatusView:
        self._record("status", caller, execution_id)
        execution = self._execution(caller, execution_id)
        return ExecutionStatusView(
            executionID=execution_id,
            processID=execution.process.processID,
            processKey=execution.process.key,
            processVersion=execution.process.version,
            status=execution.status,
            isActive=execution.status in ("running", "paused"),
            progress=Progress(totalNodes=3, completedNodes=1, failedNodes=0, percentage=33.33),
            timing=Timing(startedAt=NOW, stoppedAt=None, durationMs=10),
            threads=[],
        )

    async def log(self, caller: Caller, execution_id: int) -> LogView:
        self._record("log", caller, execution_id)
        return LogView(executionID=execution_id, items=self._execution(caller, execution_id).log)

    async def elements(
        self, caller: Caller, execution_id: int, *, limit: int = ELEMENTS_PAGE, cursor: str | None = None
    ) -> ElementsView:
        self._record("elements", caller, execution_id, limit, cursor)
        self._execution(caller, execution_id)
        element = ElementView(
            key="fetch", type="task", threadKey="main", status="completed", attempts=1, startedAt=NOW, stoppedAt=NOW
        )
        return ElementsView(executionID=execution_id, items=[element])

    async def state(self, caller: Caller, execution_id: int) -> StateView:
        self._record("state", caller, execution_id)
        execution = self._execution(caller, execution_id)
        return StateView(
            executionID=execution_id,
            active=execution.status in ("running", "paused"),
            savedAt=NOW,
            stack={"items": []},
            memory={"variables": execution.variables},
        )

    async def checkpoints(self, caller: Caller, execution_id: int, *, limit: int, cursor: str | None) -> CheckpointList:
        self._record("checkpoints", caller, execution_id, limit, cursor)
        self._execution(caller, execution_id)
        return CheckpointList(executionID=execution_id, items=[_kept(1)])

    async def checkpoint(self, caller: Caller, execution_id: int, seq: int) -> CheckpointView:
        self._record("checkpoint", caller, execution_id, seq)
        execution = self._execution(caller, execution_id)
        if seq != 1:
            raise NotFound(f"checkpoint {seq} of execution {execution_id} is not kept")
        memory = {"variables": execution.variables}
        return CheckpointView(**_kept(seq).model_dump(), executionID=execution_id, stack={}, memory=memory)

    async def checkpoint_diff(self, caller: Caller, execution_id: int, a: int, b: int) -> CheckpointDiff:
        self._record("checkpoint_diff", caller, execution_id, a, b)
        for seq in (a, b):
            await self.checkpoint(caller, execution_id, seq)
        empty = {"added": {}, "removed": {}, "changed": {}}
        stack = {"added": [], "removed": [], "changed": []}
        return CheckpointDiff(
            executionID=execution_id, fromSeq=a, toSeq=b, variables=empty, nodeOutputs=empty, stack=stack
        )

    async def step(self, caller: Caller, execution_id: int, request: StepRequest) -> SteppedResult:
        self._record("step", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        self._transition(caller, execution, "paused", {"paused"})
        ran = [SteppedRun(elementKey="fetch", lane=request.lane or "main", outcome="completed")]
        return SteppedResult(executionID=execution_id, status="paused", ran=ran)

    async def set_breakpoints(
        self, caller: Caller, execution_id: int, request: BreakpointsRequest
    ) -> BreakpointsResult:
        self._record("set_breakpoints", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        if execution.status not in ("running", "paused"):
            raise InvalidTransition(
                f"cannot set breakpoints of an execution that is {execution.status}", execution.status
            )
        wanted = [item if isinstance(item, str) else item.model_dump(exclude_none=True) for item in request.pauseBefore]
        return BreakpointsResult(executionID=execution_id, pauseBefore=wanted, alreadyStarted=[])

    async def fork(self, caller: Caller, execution_id: int, request: ForkRequest) -> StartResult:
        self._record("fork", caller, execution_id, request)
        source = self._execution(caller, execution_id)
        if request.checkpoint not in (None, 1):
            raise NotFound(f"checkpoint {request.checkpoint} of execution {execution_id} is not kept")
        forked = StartRequest(processID=source.process.processID, variables=dict(source.variables))
        result, _ = await self.start_execution(caller, forked)
        return result

    async def rewind(self, caller: Caller, execution_id: int, request: RewindRequest) -> RewindResult:
        self._record("rewind", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        self._transition(caller, execution, "paused", {"paused", "failed", "cancelled"})
        if request.checkpoint != 1:
            raise NotFound(f"checkpoint {request.checkpoint} of execution {execution_id} is not kept")
        empty: dict[str, Any] = {"added": {}, "removed": {}, "changed": {}}
        return RewindResult(
            executionID=execution_id, checkpoint=1, rewoundFrom="paused", rewoundAt=NOW, pendingNodes=1, variables=empty
        )

    async def migrate(self, caller: Caller, execution_id: int, request: MigrateRequest) -> MigrateResult:
        """Version 2 of process 1 is the one there is; element `ghost` is a problem (422, or listed on a dry run)."""
        self._record("migrate", caller, execution_id, request)
        execution = self._execution(caller, execution_id)
        if execution.status not in ("paused", "failed"):
            raise InvalidTransition(f"cannot migrate an execution that is {execution.status}", execution.status)
        if request.version != 2:
            raise NotFound(f"process has no version {request.version}")
        problems = [f"mapping: {old!r} names no element of process 'p'" for old in request.mapping if old == "ghost"]
        step = MigrationStep.model_validate(
            {"lane": "main", "from": "w", "to": request.mapping.get("w", "w"), "type": "wait-signal"}
        )
        if problems and not request.dryRun:
            raise ValidationFailed(f"execution {execution_id} cannot be migrated to version 2", problems)
        return MigrateResult(
            executionID=execution_id,
            status=execution.status,
            fromVersion=1,
            toVersion=2,
            fromProcessID=1,
            toProcessID=2,
            plan=[step],
            problems=problems,
            applied=not request.dryRun,
            migratedAt=None if request.dryRun else NOW,
        )

    async def ready(self) -> str | None:
        self._record("ready", None)
        return None if self.is_ready else "the store cannot be reached"

    async def store_answers(self) -> bool:
        return self.is_ready

    def store_silent(self) -> bool:
        return not self.is_ready

    def metrics_text(self) -> tuple[bytes, str]:
        return b"# fake metrics\n", "text/plain; version=0.0.4; charset=utf-8"


def _kept(seq: int) -> CheckpointSummary:
    return CheckpointSummary(seq=seq, savedAt=NOW, elementKey="fetch", lanes=["main"], bytes=120)
