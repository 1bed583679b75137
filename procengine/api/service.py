"""The engine as the front door (and the control channel) sees it.

`procengine.node.node.Node` implements this; the HTTP layer depends only on the protocol, so
its tests can use a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from procengine.api.bulk_views import (
    BulkCreated,
    BulkDryRun,
    BulkItems,
    BulkJobList,
    BulkJobView,
    BulkRequest,
    BulkSteerRequest,
)
from procengine.api.feeds import Feed
from procengine.api.filters import ExecutionFilter
from procengine.api.process_views import ProcessDeleted, ProcessPatch
from procengine.api.schedule_views import (
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleList,
    SchedulePatch,
    ScheduleRequest,
    ScheduleSteer,
    ScheduleTriggered,
    ScheduleView,
)
from procengine.api.task_views import (
    ExtendResult,
    FetchRequest,
    FetchResult,
    QueueList,
    SettleResult,
    TaskCompleteRequest,
    TaskExtendRequest,
    TaskFailRequest,
)
from procengine.api.views import (
    ELEMENTS_PAGE,
    BatchStartRequest,
    BatchStartResult,
    BreakpointsRequest,
    BreakpointsResult,
    CancelResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointView,
    CompleteRequest,
    ControlRequest,
    ElementPolicyRequest,
    ElementRetryRequest,
    ElementsView,
    ExecutionList,
    ExecutionStatusView,
    FailRequest,
    ForkRequest,
    LogEntry,
    LogView,
    MigrateRequest,
    MigrateResult,
    MoveRequest,
    PauseResult,
    ProcessList,
    ProcessSummary,
    ProcessView,
    ResumeResult,
    RetryRequest,
    RetryResult,
    RewindRequest,
    RewindResult,
    RunNowRequest,
    SignalResult,
    SkipRequest,
    StartRequest,
    StartResult,
    StateView,
    StatusEvent,
    SteppedResult,
    StepRequest,
    StepResult,
    VariablesResult,
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the tenant whose data is visible, who to name in the log, and the request id."""

    tenant: str
    by: str
    request_id: str
    bulk: int | None = None
    """The bulk operation (job id) this request is an item of: named in the audit entry it writes."""
    traceparent: str | None = None
    """The request's W3C `traceparent` (checked: None when it sent none or a malformed one): a start keeps it as
    the execution's trace context; a control request's span links to it (runtime/tracing.py)."""
    tracestate: str | None = None
    """The request's W3C `tracestate`, kept only beside a `traceparent`."""

    @property
    def trace(self) -> dict[str, str] | None:
        """The request's trace context as a carrier of W3C headers; None when it sent none."""
        if self.traceparent is None:
            return None
        if self.tracestate:
            return {"traceparent": self.traceparent, "tracestate": self.tracestate}
        return {"traceparent": self.traceparent}


class NodeService(Protocol):
    async def register_process(self, caller: Caller, document: Any) -> tuple[ProcessSummary, bool]:
        """Register a definition document (parsed JSON or YAML): ValidationFailed lists every problem; the bool is
        True when a new version was created (201), False if identical to the latest (200)."""
        ...

    async def list_processes(self, caller: Caller) -> ProcessList: ...

    async def get_process(self, caller: Caller, process_id: int) -> ProcessView: ...

    async def deprecate_process(self, caller: Caller, process_id: int, request: ProcessPatch) -> ProcessView:
        """Mark a version deprecated (its starts are refused: ProcessDeprecated) or not; NotFound if there is none."""
        ...

    async def delete_process(self, caller: Caller, process_id: int, reason: str | None = None) -> ProcessDeleted:
        """Delete a version that no stored execution uses (ProcessInUse otherwise, with how many); its key's latest
        becomes the highest version left; its number is never given again."""
        ...

    async def start_execution(self, caller: Caller, request: StartRequest) -> tuple[StartResult, bool]:
        """Start; the bool is True when created (201), False when the idempotency key matched (200)."""
        ...

    async def start_many(self, caller: Caller, request: BatchStartRequest) -> BatchStartResult:
        """Start each item of a batch as `start_execution` would: an outcome for each (started, existing, or
        failed with the error it would have had alone), in the request's order."""
        ...

    async def list_executions(
        self,
        caller: Caller,
        *,
        status: str | None,
        process_id: int | None,
        limit: int,
        cursor: str | None,
        filters: ExecutionFilter | None = None,
    ) -> ExecutionList: ...

    async def pause(self, caller: Caller, execution_id: int, request: ControlRequest) -> PauseResult: ...

    async def resume(self, caller: Caller, execution_id: int, request: ControlRequest) -> ResumeResult: ...

    async def cancel(self, caller: Caller, execution_id: int, request: ControlRequest) -> CancelResult: ...

    async def retry(self, caller: Caller, execution_id: int, request: RetryRequest) -> RetryResult:
        """A failed execution goes on from what failed (same id), its variables merge-patched in the same write."""
        ...

    async def edit_variables(
        self, caller: Caller, execution_id: int, patch: Any, reason: str | None = None
    ) -> VariablesResult:
        """Merge-patch a paused execution's variables (`patch` as the body gave it: 422 unless an object)."""
        ...

    async def retry_element(
        self, caller: Caller, execution_id: int, element_key: str, request: ElementRetryRequest
    ) -> StepResult:
        """An element of a paused or failed execution's stack starts again (attempt 1); the execution is paused."""
        ...

    async def skip_element(
        self, caller: Caller, execution_id: int, element_key: str, request: SkipRequest
    ) -> StepResult:
        """The element is recorded skipped and its `next` followed; the execution is paused."""
        ...

    async def complete_element(
        self, caller: Caller, execution_id: int, element_key: str, request: CompleteRequest
    ) -> StepResult:
        """A pending task completes as if its handler had returned `output`; the execution is paused."""
        ...

    async def fail_element(
        self, caller: Caller, execution_id: int, element_key: str, request: FailRequest
    ) -> StepResult:
        """The element fails with the error and type given: a catch takes it (paused), or the execution fails."""
        ...

    async def change_policy(
        self, caller: Caller, execution_id: int, element_key: str, request: ElementPolicyRequest
    ) -> StepResult:
        """A pending task's retry policy and/or timeout, for this run of it (running or paused)."""
        ...

    async def move(self, caller: Caller, execution_id: int, request: MoveRequest) -> StepResult:
        """A lane of a paused or failed execution is put before another element of its thread or branch."""
        ...

    async def run_now(self, caller: Caller, execution_id: int, element_key: str, request: RunNowRequest) -> StepResult:
        """A running execution's element waiting on a retry backoff or a delay goes on at once."""
        ...

    async def signal(
        self, caller: Caller, execution_id: int, name: str, payload: Any, idempotency_key: str | None = None
    ) -> SignalResult:
        """Deliver a signal; with an `idempotency_key` already delivered to this execution, deliver nothing and
        answer as the first time."""
        ...

    async def status(self, caller: Caller, execution_id: int) -> ExecutionStatusView: ...

    async def status_json(self, caller: Caller, execution_id: int) -> bytes:
        """The same answer as `status`, as its JSON: the front door's hot read, rendered without a model."""
        ...

    async def log(self, caller: Caller, execution_id: int) -> LogView: ...

    async def elements(
        self, caller: Caller, execution_id: int, *, limit: int = ELEMENTS_PAGE, cursor: str | None = None
    ) -> ElementsView:
        """A page of the element records, by `startedAt`, key and path (`cursor`: a `nextCursor` given before)."""
        ...

    async def state(self, caller: Caller, execution_id: int) -> StateView: ...

    async def checkpoints(self, caller: Caller, execution_id: int, *, limit: int, cursor: str | None) -> CheckpointList:
        """A page of the execution's kept checkpoints, newest first (`cursor`: a `nextCursor` given before)."""
        ...

    async def checkpoint(self, caller: Caller, execution_id: int, seq: int) -> CheckpointView:
        """One kept checkpoint, its stack and memory decoded as `state` shows them; NotFound unless kept."""
        ...

    async def checkpoint_diff(self, caller: Caller, execution_id: int, a: int, b: int) -> CheckpointDiff:
        """What changed from kept checkpoint `a` to `b`."""
        ...

    async def set_breakpoints(
        self, caller: Caller, execution_id: int, request: BreakpointsRequest
    ) -> BreakpointsResult:
        """The whole set of a running or paused execution's breakpoints; exact about the runs already begun."""
        ...

    async def step(self, caller: Caller, execution_id: int, request: StepRequest) -> SteppedResult:
        """A paused execution runs exactly the next element of each lane (or of one) and pauses again."""
        ...

    async def fork(self, caller: Caller, execution_id: int, request: ForkRequest) -> StartResult:
        """A new execution of the same process version from one of this one's kept checkpoints (NotFound unless
        kept), running unless asked paused; each log names the other."""
        ...

    async def rewind(self, caller: Caller, execution_id: int, request: RewindRequest) -> RewindResult:
        """A paused, failed or cancelled execution back to one of its kept checkpoints, paused there; NotFound for a
        checkpoint not kept, InvalidTransition while running."""
        ...

    async def migrate(self, caller: Caller, execution_id: int, request: MigrateRequest) -> MigrateResult:
        """A paused or failed execution moved to another version of its process under a validated plan (`dryRun`:
        the plan and its problems, nothing written); ValidationFailed listing every problem of a plan that cannot
        be applied, NotFound for a version the process lacks, InvalidTransition in any other status. One call: what
        a bulk migrate calls per execution."""
        ...

    async def log_feed(self, caller: Caller, execution_id: int, after: str | None) -> Feed[list[LogEntry] | None]:
        """The execution's log entries after `after` as they are written (None: a heartbeat); ends after the final
        transition. NotFound before anything is streamed. The caller closes it (`aclose`), read or not."""
        ...

    async def status_feed(self, caller: Caller, after: str | None) -> Feed[list[StatusEvent] | None]:
        """The tenant's status changes after `after` (None: from now) as they happen (None: a heartbeat)."""
        ...

    async def ready(self) -> str | None:
        """None when the node takes work (Redis answers, not shutting down); else why not."""
        ...

    async def store_answers(self) -> bool:
        """Whether Redis answers right now (a quick probe, asked about requests that take long)."""
        ...

    def store_silent(self) -> bool:
        """Whether the last probe found Redis silent (no I/O: requests are then checked at once)."""
        ...

    def metrics_text(self) -> tuple[bytes, str]:
        """The node's metrics in Prometheus text format, and the content type."""
        ...

    # --- external task workers (node/task_queues.py) ---

    async def fetch_tasks(self, caller: Caller, request: FetchRequest) -> FetchResult:
        """Lock tasks of the caller's tenant's queues, waiting up to `waitMs` for one."""
        ...

    async def complete_task(self, caller: Caller, task_id: str, request: TaskCompleteRequest) -> SettleResult:
        """NotFound, TaskLockStale, TaskLockRevoked or TaskAlreadySettled when the lock does not allow it."""
        ...

    async def fail_task(self, caller: Caller, task_id: str, request: TaskFailRequest) -> SettleResult: ...

    async def extend_task(self, caller: Caller, task_id: str, request: TaskExtendRequest) -> ExtendResult: ...

    async def task_queues(self, caller: Caller) -> QueueList: ...

    # --- bulk operations (node/bulk.py) ---

    async def bulk(self, caller: Caller, request: BulkRequest) -> BulkDryRun | BulkCreated:
        """A dry run (how many match, a sample: nothing touched), or a durable job created and started."""
        ...

    async def bulk_jobs(self, caller: Caller, *, limit: int, cursor: str | None) -> BulkJobList: ...

    async def bulk_job(self, caller: Caller, job_id: int) -> BulkJobView: ...

    async def bulk_items(self, caller: Caller, job_id: int, *, limit: int, cursor: str | None) -> BulkItems: ...

    async def bulk_steer(self, caller: Caller, job_id: int, verb: str, request: BulkSteerRequest) -> BulkJobView:
        """Pause, resume or cancel a job (`verb`)."""
        ...

    async def bulk_undo(self, caller: Caller, job_id: int, request: BulkSteerRequest) -> BulkCreated:
        """A resume job over what the ended bulk pause `job_id` paused and still holds paused."""
        ...

    # --- schedules (node/schedules.py) ---

    async def create_schedule(self, caller: Caller, request: ScheduleRequest) -> ScheduleCreated:
        """ValidationFailed listing every problem (cron, time zone, cron and every, the process)."""
        ...

    async def schedules(self, caller: Caller, *, limit: int, cursor: str | None) -> ScheduleList: ...

    async def schedule(self, caller: Caller, schedule_id: int) -> ScheduleView: ...

    async def update_schedule(self, caller: Caller, schedule_id: int, patch: SchedulePatch) -> ScheduleView: ...

    async def steer_schedule(self, caller: Caller, schedule_id: int, verb: str, order: ScheduleSteer) -> ScheduleView:
        """Pause or resume (`verb`)."""
        ...

    async def trigger_schedule(self, caller: Caller, schedule_id: int, order: ScheduleSteer) -> ScheduleTriggered: ...

    async def delete_schedule(self, caller: Caller, schedule_id: int, reason: str | None = None) -> ScheduleDeleted: ...
