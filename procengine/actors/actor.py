"""One execution as an asyncio actor: a mailbox for requests, one runner task per thread.

The actor is the only writer of its execution while it holds the fencing epoch. Requests are handled
one at a time, so concurrent pause/resume/cancel of one execution are serialised: exactly one wins.
Thread runners drive the interpreter and checkpoint after every element; they talk back to the actor
through its mailbox (`Wake`), never by changing its status themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from procengine.actors.attempt import Attempt, run_attempt
from procengine.actors.child_control import POLL_S, RETRY_S, ChildControl
from procengine.actors.mailbox import Mailbox
from procengine.actors.messages import Command, Drain, Message, Request, Wake
from procengine.actors.records import interrupted_record, snapshot_commit, transition_log
from procengine.actors.snapshot import load_state
from procengine.api.rendered import RenderedStatus
from procengine.api.service import Caller
from procengine.api.views import CancelResult, PauseResult, ResumeResult, SignalResult
from procengine.engine import lanes
from procengine.engine.compiled import CompiledProcess
from procengine.engine.interpreter import (
    AwaitChild,
    AwaitLanes,
    AwaitSignal,
    ElementEvent,
    ElementFailed,
    Interpreter,
    LaneEnded,
    Outcome,
    Progressed,
    RunTask,
    Sleep,
    StartChild,
    ThreadEnded,
)
from procengine.engine.state import ExecutionState, StackEntry
from procengine.errors import ActorStopped as _Retry
from procengine.errors import (
    Fenced,
    InvalidTransition,
    LimitExceeded,
    NotReplicated,
    PayloadTooLarge,
    ProcEngineError,
    Refused,
    StateCorrupted,
    StoreFailed,
    ValidationFailed,
)
from procengine.errors import RequestExpired as _Expired
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock, iso, parse_iso
from procengine.runtime.logs import element_key, execution_id
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.statuses import Status
from procengine.store import indexes
from procengine.store.executions import CRASHES, Commit, ExecutionStore, LogRecord, Scalar, stored_fields
from procengine.store.executions import Outcome as WriteOutcome
from procengine.tasks import HandlerRegistry, TaskContext

log = logging.getLogger(__name__)

SYSTEM = Caller(tenant="", by="system", request_id="")
TRANSITION_TARGETS = {"pause": "paused", "resume": "running", "cancel": "cancelled"}
NODE_CRASHED = "NodeCrashed"
"""The error type of an execution failed by the crash quarantine (see `quarantine`)."""
SIGNAL_KEY_FIELD = "signalKey:"
"""Execution hash fields `signalKey:<Idempotency-Key>` = when a signal with that key was delivered."""
"""The status each control command asks for (a `refused` entry names it as `to`)."""


@dataclass(frozen=True, slots=True)
class ActorContext:
    """What every actor of a node shares."""

    store: ExecutionStore
    settings: Settings
    clock: Clock
    handlers: HandlerRegistry
    node_id: str
    metrics: Metrics
    children: ChildControl


@dataclass(slots=True)
class _Failure:
    element_key: str
    error: str
    error_type: str
    attempts: int
    record: dict[str, Any] | None = None
    """The failed element's record, when no element event writes it (a quarantine)."""

    @classmethod
    def of(cls, step: ElementFailed) -> _Failure:
        return cls(step.entry.element_key, step.error, step.error_type, step.entry.attempt)

    def doc(self) -> dict[str, Any]:
        """The execution's `error`, in its hash, its status and its `failed` log entry."""
        return {"element": self.element_key, "error": self.error, "type": self.error_type, "attempts": self.attempts}


@dataclass
class ExecutionActor:
    execution_id: int
    tenant: str
    process: CompiledProcess
    ctx: ActorContext
    status: Status
    epoch: int
    state: ExecutionState
    fields: dict[str, str]
    """The execution hash as of the last write (the actor is its only writer: this is what Redis holds)."""
    mailbox: Mailbox[Message] = field(init=False)

    def __post_init__(self) -> None:
        self.mailbox = Mailbox(self.ctx.settings.mailbox_size)
        settings = self.ctx.settings
        self.interpreter = Interpreter(
            self.process, settings.max_snapshot_bytes, settings.max_foreach_items, settings.max_expression_cost
        )
        self._runners: dict[str, asyncio.Task[None]] = {}
        """One runner per lane: per thread, and per branch or iteration of a parallel or for-each."""
        self._wakeups: dict[str, asyncio.Event] = {}
        self._stops: dict[str, asyncio.Event] = {}
        """Per lane: set when its running task must be cut short (the actor stops its runners, or the lane's
        fan-out failed)."""
        self._retiring: set[asyncio.Task[None]] = set()
        """Runners of lanes taken off the stack, still winding down (a task that is slow to cancel)."""
        self._halt = asyncio.Event()
        self._failure: _Failure | None = None
        self._crash: BaseException | None = None
        self._write_lock = asyncio.Lock()
        self._checkpoint_lock = asyncio.Lock()
        self._unwritten: list[ElementEvent] = []
        """Events of lanes waiting for a checkpoint: the next checkpoint writes them all (see `_checkpoint`)."""
        self._unwritten_extras: list[Commit] = []
        self._checkpoints_asked = 0
        self._checkpoints_written = 0
        self._tasks_in_flight = 0
        """Tasks whose start is decided and not yet recorded as ended: a pause waits for them."""
        self._interrupted: list[StackEntry] = []
        """Tasks cut short since the runners last started (their stack entries as they ran)."""
        self._current: Request | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()
        self.corrupted = False
        """Activated from a snapshot that does not decode: only cancel may touch it (resume re-reads)."""
        self.thread_records: dict[str, dict[str, Any]] = {k: p.to_doc() for k, p in self.state.threads.items()}
        """The thread hash as of the last write, like `fields`."""
        self.copy_known = True
        """False once a write was cancelled while in flight (it may land or not): `fields` may be behind."""
        self.rendered_status: RenderedStatus | None = None
        """The status answer from `fields` and `thread_records` (the engine renders it), until the next write."""
        self.stopped = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        """The task that runs `run` (set by the registry, which owns it)."""
        self._quarantined = False
        """Failed at activation (NodeCrashed): no runner starts, the first settle writes the failure."""
        self._idle_lanes: set[str] = set()
        """Lanes waiting for something outside (a signal, a timer, a child, their branches)."""
        self._forgetting_crashes = False
        self._children: list[int] = [int(child) for child in json.loads(self.fields.get("children") or "[]")]
        """Every child execution started, oldest first (kept here: lanes starting children at once each write
        the whole list)."""

    # --- life ---------------------------------------------------------------------------------

    async def run(self, passivate: Callable[[ExecutionActor], bool]) -> None:
        """Serve the mailbox until final, fenced, crashed, or idle-while-paused (then `passivate`)."""
        execution_id.set(self.execution_id)  # every log line of this actor and its runners carries it
        try:
            if self.status is Status.RUNNING:
                if self._quarantined:
                    self.mailbox.put_internal(Wake())  # settle: writes the failure
                else:
                    self._start_runners()
            while not self.status.is_final:
                check_cancelled()
                message = await self._next_message()
                if message is None:
                    if passivate(self):
                        await self._release()
                        return
                    continue
                if isinstance(message, Wake):
                    await self._settle()
                elif isinstance(message, Drain):
                    await self._drain()
                    return
                else:
                    await self._handle(message)
        except Fenced as exc:
            await self._log_lost(exc.message)
        except Exception:
            log.exception("execution %s: actor stopped on an unexpected error", self.execution_id)
        finally:
            self.mailbox.close()
            current, self._current = self._current, None
            if current is not None and not current.reply.done():  # the request the actor died handling
                current.reply.set_exception(_Retry())
            self._refuse_queued()
            await self._stop_runners(grace_s=0)
            self.stopped.set()

    @property
    def tasks_in_flight(self) -> int:
        """Task attempts started and not yet recorded as ended."""
        return self._tasks_in_flight

    def quarantine(self, crashes: int, last_owner: str) -> None:
        """`crashes` nodes in a row stopped while this execution ran (the last one `last_owner`), with no progress
        in between: it is taken for what stops them, and failed (NodeCrashed) instead of run once more."""
        stack = self.state.stack
        under_way = [entry for entry in stack if entry.fanout is None] or stack
        culprit = max(under_way, key=lambda entry: entry.execution_order, default=None)
        elements = ", ".join(repr(entry.element_key) for entry in under_way) or "none"
        error = (
            f"{crashes} nodes in a row stopped while it ran (the last: {last_owner}), with no progress in between; "
            f"under way: {elements}. Failed rather than adopted again (PROCENGINE_NODE_CRASH_LIMIT="
            f"{self.ctx.settings.node_crash_limit})"
        )
        record = None
        if culprit is not None:
            now = self.ctx.clock.now_ms()
            record = {**interrupted_record(culprit, now), "status": "failed", "error": error, "errorType": NODE_CRASHED}
            progress = self.state.threads.get(culprit.thread_key)
            if progress is not None:
                progress.status = "failed"
                progress.failed_nodes += 1
        key = culprit.element_key if culprit is not None else ""
        self._failure = _Failure(key, error, NODE_CRASHED, culprit.attempt if culprit else 0, record)
        self._quarantined = True
        log.error(
            "execution %s: %s; element %s; marking it failed (%s)",
            self.execution_id,
            f"{crashes} nodes in a row stopped while it ran",
            key or None,
            NODE_CRASHED,
            extra={"executionID": self.execution_id},
        )

    async def _log_lost(self, why: str) -> None:
        """Say that another node owns the execution now (its new owner and epoch, read best effort)."""
        fields: dict[str, str] = {}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                fields = await self.ctx.store.fields(self.execution_id)
        if fields.get("owner") == self.ctx.node_id and fields.get("epoch") == str(self.epoch):
            # still ours: a write refused for the status it expected (changed by hand?), not a change of hands
            log.warning("execution %s: write refused: %s; its actor stops", self.execution_id, why)
            return
        self.log_lost(fields.get("owner", "?"), fields.get("epoch", "?"), why)

    def log_lost(self, owner: str, epoch: object, why: str) -> None:
        log.warning(
            "execution %s: lost to node %s at epoch %s (this node %s held epoch %s): %s; its running tasks are "
            "cancelled",
            self.execution_id,
            owner or "(none)",
            epoch,
            self.ctx.node_id,
            self.epoch,
            why,
            extra={"executionID": self.execution_id},
        )

    def _crashes(self) -> int:
        """Adoptions counted since the last progress (CRASHES, as this actor last wrote or read it)."""
        count = self.fields.get(CRASHES, "")
        return int(count) if count.isascii() and count.isdigit() else 0

    def _progressed(self, commit: Commit) -> None:
        """`commit` shows progress: it puts the crash count back to 0 (when it is not 0 already)."""
        if self._crashes():
            commit.execution[CRASHES] = 0

    async def _next_message(self) -> Message | None:
        if self.status is Status.RUNNING:
            return await self.mailbox.get()
        try:
            async with asyncio.timeout(self.ctx.settings.passivate_after_ms / 1000):
                return await self.mailbox.get()
        except TimeoutError:
            return None

    def _refuse_queued(self) -> None:
        while (message := self.mailbox.get_nowait()) is not None:
            if isinstance(message, Request) and not message.reply.done():
                message.reply.set_exception(_Retry())

    async def _handle(self, message: Request) -> None:
        if message.reply.done():  # its requester gave up (cancelled) while it waited in the mailbox: not applied
            return
        self._current = message
        try:
            result = await self._dispatch(message.command)
        except (_Expired, NotReplicated) as exc:
            # the transition was not written (its deadline passed first), or may not last (no replica has it):
            # what was changed here for it is undone by going on from what Redis holds
            await self._reload()
            if not message.reply.done():
                message.reply.set_exception(exc)
        except StoreFailed:
            raise  # Redis failed mid-transition: this copy may not be what Redis holds, so the actor stops (_Retry)
        except ProcEngineError as exc:
            if isinstance(exc, Refused):
                await log_refusal(
                    self.ctx, self.execution_id, exc.caller, exc.verb, exc.reason, exc.current_status, exc.message
                )
            if not message.reply.done():
                message.reply.set_exception(exc)
            if isinstance(exc, Fenced):
                raise
        else:
            if not message.reply.done():
                message.reply.set_result(result)
        self._current = None
        await self._settle()

    def _dispatch(self, command: Command) -> Awaitable[Any]:
        if command.verb == "pause":
            return self._pause(command)
        if command.verb == "resume":
            return self._resume(command)
        if command.verb == "cancel":
            return self._cancel(command)
        return self._signal(command)

    # --- transitions --------------------------------------------------------------------------

    async def _pause(self, message: Command) -> PauseResult:
        self._require(message.caller, "pause", message.reason, Status.RUNNING)
        inflight = self._tasks_in_flight
        await self._stop_runners(grace_s=self.ctx.settings.pause_grace_ms / 1000)
        if self._crash is not None:
            raise self._crash
        if await self._settle():  # the last element finished (or failed) while pausing
            raise Refused(message.caller, "pause", message.reason, self.status)
        now = self.ctx.clock.now_ms()
        self.interpreter.freeze_timers(self.state, now)
        first = self.state.stack[0] if self.state.stack else None
        self.state.paused_at_node = first.element_id if first else None
        commit = snapshot_commit(self.state, [], now)
        commit.execution.update(status=Status.PAUSED.value, pausedAt=iso(now))
        self._progressed(commit)
        interrupted = self._record_interrupted(commit, now)
        commit.log.append(
            transition_log(
                now, "paused", message.caller, "running", "paused", message.reason, inflight=inflight, **interrupted
            )
        )
        # the children to pause with it, noted in the same write, so that its resume resumes them (and not one
        # an operator had paused on its own), even if this node stops between the two
        cascade = await self.ctx.children.running(self._waited_children())
        if cascade:
            commit.execution["pausedChildren"] = json.dumps(cascade)
        await self._write(commit, expect=Status.RUNNING, not_after_ms=message.not_after_ms)
        self.status = Status.PAUSED
        await self.announce()
        if cascade:
            await self.ctx.children.control(self.tenant, "pause", cascade, self.execution_id, message.reason)
        return PauseResult(
            executionID=self.execution_id,
            completedNodes=self.state.completed_nodes,
            totalNodes=self.process.total_nodes,
            pausedAt=iso(now),
            inflightNodes=inflight,
        )

    async def _resume(self, message: Command) -> ResumeResult:
        self._require(message.caller, "resume", message.reason, Status.PAUSED)
        stored = await self.ctx.store.load(self.execution_id)
        try:
            if stored is None:
                raise StateCorrupted("the execution's keys are gone")
            state = load_state(stored, self.process)
        except StateCorrupted as exc:
            await log_refusal(
                self.ctx,
                self.execution_id,
                message.caller,
                "resume",
                message.reason,
                self.status.value,
                f"state corrupted: {exc.message}",
            )
            raise StateCorrupted(f"execution {self.execution_id} cannot be resumed: {exc.message}") from None
        now = self.ctx.clock.now_ms()
        self.interpreter.thaw_timers(state, now)
        state.paused_at_node = None
        total_paused = self._paused_ms_until(now)
        paused_ms = total_paused - int(self.fields.get("pausedDurationMs") or 0)
        commit = snapshot_commit(state, [], now)
        commit.execution.update(
            status=Status.RUNNING.value, resumedAt=iso(now), pausedAt="", pausedDurationMs=total_paused
        )
        commit.log.append(transition_log(now, "resumed", message.caller, "paused", "running", message.reason))
        paused_children = json.loads(self.fields.get("pausedChildren") or "[]")
        if paused_children:
            commit.execution["pausedChildren"] = ""
        await self._write(commit, expect=Status.PAUSED, not_after_ms=message.not_after_ms)
        self.state = state
        self.corrupted = False  # the stored snapshot was read and validated just now
        self.status = Status.RUNNING
        await self.announce()
        if paused_children:  # the children its pause paused (not one paused on its own)
            await self.ctx.children.control(self.tenant, "resume", paused_children, self.execution_id, message.reason)
        self._start_runners()
        return ResumeResult(
            executionID=self.execution_id,
            resumedAt=iso(now),
            pendingNodes=len(state.stack),
            pausedDurationMs=paused_ms,
        )

    async def _cancel(self, message: Command) -> CancelResult:
        source = self.status
        self._require(message.caller, "cancel", message.reason, Status.RUNNING, Status.PAUSED)
        await self._stop_runners(grace_s=0)
        now = self.ctx.clock.now_ms()
        for progress in self.state.threads.values():
            if progress.status == "running":
                progress.status = "cancelled"
        stopped = iso(now)
        execution: dict[str, Scalar] = {"status": Status.CANCELLED.value, "stoppedAt": stopped, "cancelledAt": stopped}
        if source is Status.PAUSED:  # the pause ends here: no longer paused, and the pause counts in the total
            execution.update(pausedAt="", pausedDurationMs=self._paused_ms_until(now))
        commit = Commit(
            expire_ms=self.ctx.settings.retention_ms(self.tenant),
            execution=execution,
            state={"active": 0, "savedAt": iso(now)},
            state_delete=["stack", "memory"],
            threads={} if self.corrupted else {key: p.to_doc() for key, p in self.state.threads.items()},
        )
        interrupted = self._record_interrupted(commit, now, ended=not self.corrupted)
        commit.log.append(
            transition_log(now, "cancelled", message.caller, source.value, "cancelled", message.reason, **interrupted)
        )
        await self._write(commit, expect=source, not_after_ms=message.not_after_ms)
        self.status = Status.CANCELLED
        await self.announce()
        self.ctx.metrics.finished.labels(self.process.definition.key, Status.CANCELLED.value).inc()
        await self.ctx.store.deactivate(self.execution_id)
        await self._ended_as_child_or_parent(message.reason)
        return CancelResult(executionID=self.execution_id, cancelledAt=iso(now))

    async def _signal(self, message: Command) -> SignalResult:
        if self.status not in (Status.RUNNING, Status.PAUSED):
            raise InvalidTransition(f"execution {self.execution_id} is {self.status.value}", self.status.value)
        if self.corrupted:
            raise StateCorrupted(f"execution {self.execution_id}: its snapshot cannot be read; signal not stored")
        delivered = None if message.signal_key is None else f"{SIGNAL_KEY_FIELD}{message.signal_key}"
        if delivered is not None and delivered in self.fields:  # a retry of a signal delivered already: once
            return SignalResult(executionID=self.execution_id, signal=message.signal)
        waiting = sum(len(kept) for kept in self.state.memory.signals.values())
        limit = self.ctx.settings.max_pending_signals
        if waiting >= limit:
            raise ValidationFailed(
                f"execution {self.execution_id} has {waiting} signals waiting for a wait-signal to take them; signal "
                "not stored",
                [f"at most {limit} signals may wait (--max-pending-signals)"],
            )
        try:  # encodable: the engine checked
            self.interpreter.signal_arrived(self.state, message.signal, message.payload)
        except LimitExceeded as exc:
            raise PayloadTooLarge(f"execution {self.execution_id}: {exc}; signal not stored") from None
        now = self.ctx.clock.now_ms()
        commit = snapshot_commit(self.state, [], now)
        if delivered is not None:
            commit.execution[delivered] = now
        detail = {"signal": message.signal, "by": message.caller.by, "requestId": message.caller.request_id}
        if message.signal_key is not None:
            detail["idempotencyKey"] = message.signal_key
        commit.log.append(LogRecord(now, "signal-received", None, detail))
        await self._write(commit, expect=self.status, not_after_ms=message.not_after_ms)
        self.wake_lanes()
        return SignalResult(executionID=self.execution_id, signal=message.signal)

    def _paused_ms_until(self, now: int) -> int:
        """`pausedDurationMs` once the current pause ends at `now`: the earlier pauses and this one."""
        paused_at = self.fields.get("pausedAt")
        paused_ms = max(now - parse_iso(paused_at), 0) if paused_at else 0
        return int(self.fields.get("pausedDurationMs") or 0) + paused_ms

    def _require(self, caller: Caller, verb: str, reason: str | None, *allowed: Status) -> None:
        if self.status not in allowed:
            raise Refused(caller, verb, reason, self.status)

    # --- finishing ----------------------------------------------------------------------------

    async def _settle(self) -> bool:
        """Finish the execution if its threads are done or one failed; True if it is final now."""
        if self.status is not Status.RUNNING:
            return self.status.is_final
        if self._crash is not None:
            raise self._crash
        if self._failure is not None:
            await self._finish(Status.FAILED)
            return True
        if not self.state.stack and all(t.done() for t in self._runners.values()):
            await self._finish(Status.COMPLETED)
            return True
        return False

    async def _finish(self, status: Status) -> None:
        await self._stop_runners(grace_s=0)
        now = self.ctx.clock.now_ms()
        commit = snapshot_commit(self.state, [], now)
        commit.execution.update(status=status.value, stoppedAt=iso(now))
        commit.state["active"] = 0
        commit.expire_ms = self.ctx.settings.retention_ms(self.tenant)
        error: dict[str, Any] = {}
        if self._failure is not None:
            error = self._failure.doc()
            commit.execution["error"] = json.dumps(error)
        interrupted = self._record_interrupted(commit, now, ended=True)
        if self._failure is not None and self._failure.record is not None:
            commit.elements[self._failure.element_key] = self._failure.record
        commit.log.append(
            transition_log(now, status.value, SYSTEM, "running", status.value, None, **error, **interrupted)
        )
        await self._write(commit, expect=Status.RUNNING)
        self.status = status
        await self.announce()
        self.ctx.metrics.finished.labels(self.process.definition.key, status.value).inc()
        await self.ctx.store.deactivate(self.execution_id)
        await self._ended_as_child_or_parent(f"it {status.value}")
        log.info("execution %s: %s", self.execution_id, status.value)

    async def _drain(self) -> None:
        """The node is shutting down: no new element starts, running tasks get the pause grace to finish (then are
        cut short, to run again where the execution is adopted), and the state is checkpointed. The status stays:
        a running execution is adopted by another node once this node's heartbeat is gone."""
        if self.status is not Status.RUNNING:
            return
        await self._stop_runners(grace_s=self.ctx.settings.pause_grace_ms / 1000)
        if await self._settle():  # it finished (or failed) while draining
            return
        now = self.ctx.clock.now_ms()
        commit = snapshot_commit(self.state, [], now)
        self._record_interrupted(commit, now)
        self._progressed(commit)  # this node stops by choice: not a crash
        await self._write(commit, expect=Status.RUNNING)

    async def _ended_as_child_or_parent(self, reason: str | None) -> None:
        """This execution is final: children still waited for are cancelled, a parent is told."""
        waited = [] if self.corrupted else self._waited_children()
        if waited:
            await self.ctx.children.control(self.tenant, "cancel", waited, self.execution_id, reason)
        parent = self.fields.get("parentExecutionID")
        if parent:
            self.ctx.children.notify_parent(int(parent))

    async def announce(self) -> None:
        """Tell the tenant's status-events stream (the console's live list) the status just written. A notice
        beside the write, not in it: if it is lost, watchers miss one change; nothing else."""
        try:
            await self.ctx.store.announce(
                self.tenant, self.execution_id, self.status.value, self.process.definition.key
            )
        except Exception as exc:
            log.warning("execution %s: status change not announced: %s", self.execution_id, exc)

    def _record_interrupted(self, commit: Commit, now: int, *, ended: bool = False) -> dict[str, Any]:
        """Mark the records of the tasks cut short in `commit`; the log detail that names them ({} if none).
        `ended`: the execution ends in this write (cancelled or failed), so the elements under way on its stack
        (a delay, a wait, a fan-out or a call waiting for its lanes or child) never finish either: their records
        say `interrupted` too, instead of `running` for good. Not the element that failed: its record says so."""
        cut, self._interrupted = self._interrupted, []
        for entry in cut:
            commit.elements[entry.element_key] = interrupted_record(entry, now)
        if ended:
            failed = self._failure.element_key if self._failure is not None else None
            for entry in self.state.stack:
                if entry.started_at_ms is not None and entry.element_key not in (failed, *commit.elements):
                    commit.elements[entry.element_key] = interrupted_record(entry, now)
        return {"interrupted": [entry.element_key for entry in cut]} if cut else {}

    async def _reload(self) -> None:
        """Go on from what Redis holds (after a transition that was prepared here but not written)."""
        await self._stop_runners(grace_s=0)
        stored = await self.ctx.store.load(self.execution_id)
        if stored is None or stored.epoch != self.epoch:
            raise Fenced(f"execution {self.execution_id}: no longer ours")
        self.state = load_state(stored, self.process)
        self.status = Status(stored.status)
        self.fields = dict(stored.fields)
        self._children = [int(child) for child in json.loads(self.fields.get("children") or "[]")]
        self.thread_records = {key: progress.to_doc() for key, progress in self.state.threads.items()}
        self.rendered_status = None
        self._crash = None  # a runner's failed write (not replicated, say) is dealt with: it goes on from Redis
        if self.status is Status.RUNNING:
            self._start_runners()

    async def _release(self) -> None:
        """Passivation: give up ownership so any node may activate the execution again."""
        with contextlib.suppress(Fenced):
            await self._write(Commit(execution={"owner": ""}, compact_log=True), expect=self.status)

    # --- writing ------------------------------------------------------------------------------

    async def _write(self, commit: Commit, *, expect: Status, not_after_ms: int | None = None) -> None:
        """Write atomically under our epoch (and before `not_after_ms` by the Redis clock, if given: else _Expired).
        Once the write lock is ours the write is handed to the group commit before anything else is awaited, and
        a handed-over write is sent even if the caller is cancelled while it waits for the answer (no shield)."""
        target = commit.execution.get("status")
        if target is not None and target != expect.value:  # a status change moves it in the tenant's indexes
            # the final write sets the retention: the note of when it ends goes with it
            removal_at = None if commit.expire_ms is None else self.ctx.clock.now_ms() + commit.expire_ms
            commit.index = indexes.status_change(
                self.ctx.store.keys, self.execution_id, self.fields, expect.value, str(target), removal_at
            )
        async with self._write_lock:
            started = time.perf_counter()
            try:
                result = await self.ctx.store.commit(
                    self.execution_id, commit, epoch=self.epoch, expect=expect.value, not_after_ms=not_after_ms
                )
            except asyncio.CancelledError:
                # the write may still land: from now on the copy may be behind Redis, so reads go to Redis
                self.copy_known = False
                self.rendered_status = None
                raise
            self.ctx.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if result.outcome is WriteOutcome.FENCED:
            raise Fenced(f"execution {self.execution_id}: epoch {self.epoch} is stale (now {result.epoch})")
        if result.outcome is WriteOutcome.CONFLICT:
            raise Fenced(f"execution {self.execution_id}: status is {result.status}, expected {expect.value}")
        if result.outcome is WriteOutcome.EXPIRED:
            raise _Expired(f"execution {self.execution_id}: the request came too late to be applied; try again")
        self.fields.update(stored_fields(commit.execution))
        self.thread_records.update(commit.threads)
        self.rendered_status = None

    async def _checkpoint(self, events: list[ElementEvent], extra: Commit | None = None) -> None:
        """Write the state and `events`; back when both are in Redis. Lanes that ask while a checkpoint is being
        written share the next one (one write of the latest state carries all their events), so the lanes of a
        fan-out are not each held up by the others' round trips. Their events are queued before anything is
        awaited, so every change to the state made so far has its events queued with it."""
        self._unwritten.extend(events)
        if extra is not None:
            self._unwritten_extras.append(extra)
        self._checkpoints_asked += 1
        asked = self._checkpoints_asked
        async with self._checkpoint_lock:
            # else a checkpoint written while we waited carried our events
            if self._checkpoints_written < asked:
                if self._crash is not None:
                    raise self._crash
                batch, self._unwritten = self._unwritten, []
                extras, self._unwritten_extras = self._unwritten_extras, []
                covered = self._checkpoints_asked
                commit = snapshot_commit(self.state, batch, self.ctx.clock.now_ms())
                for part in extras:  # fields, records and log entries of their own (a child started, ...)
                    commit.execution.update(part.execution)
                    commit.elements.update(part.elements)
                    commit.log.extend(part.log)
                if extras or any(event.event != "element-started" for event in batch):
                    self._progressed(commit)  # an element ended (or retries, or a child started)
                try:
                    await self._write(commit, expect=Status.RUNNING)
                except Exception as exc:
                    # The state here is now ahead of Redis by this batch, whose events went with the write (and
                    # whose outcome is unknown: a lost reply can hide a write that landed). A lane that waited
                    # must not write that state without them: the actor stops, and its node takes the execution
                    # back from what Redis holds (_reload clears this).
                    if self._crash is None:
                        self._crash = exc
                    raise
                self._checkpoints_written = covered
        self._observe(events)

    def _observe(self, events: list[ElementEvent]) -> None:
        for event in events:
            if event.started_at_ms is not None and event.event in ("element-completed", "element-failed"):
                outcome = "completed" if event.event == "element-completed" else "failed"
                seconds = max(event.at_ms - event.started_at_ms, 0) / 1000
                self.ctx.metrics.element_duration(event.element_type, outcome).observe(seconds)

    # --- thread runners -----------------------------------------------------------------------

    def _start_runners(self) -> None:
        self._halt.clear()
        self._failure = None
        self._interrupted = []
        for thread in self.process.threads:
            progress = self.state.threads[thread.key]
            entry = self.state.entry(thread.key)
            if progress.status == "failed" and entry is not None and self._failure is None:
                # failed for good before the node could write `failed`: finish the job now
                output = self.state.memory.node_outputs.get(entry.element_key, {})
                error, kind = str(output.get("error", "failed")), str(output.get("type", "Error"))
                self._failure = _Failure(entry.element_key, error, kind, entry.attempt)
            if progress.status == "running":
                self._start_lane(thread.key)
        for lane in dict.fromkeys(entry.path for entry in self.state.stack if lanes.is_branch(entry.path)):
            self._start_lane(lane)
        self.mailbox.put_internal(Wake())  # settle even if no thread had anything left to run

    def _start_lane(self, lane: str) -> None:
        """A runner for the lane (none while the runners are being stopped: the lane's element is on the stack,
        and runs when they start again)."""
        if self._halt.is_set() or lane in self._runners:
            return
        # No runner is running it: a task marked started here was cut short (crash, adoption) and starts again.
        self.interpreter.requeue(self.state, lane)
        self._stops[lane] = asyncio.Event()
        self._wakeups.setdefault(lane, asyncio.Event())
        task = asyncio.create_task(self._run_lane(lane), name=f"exec-{self.execution_id}-{lane}")
        self._runners[lane] = task
        task.add_done_callback(lambda _: self.mailbox.put_internal(Wake()))

    async def _follow(self, outcome: Outcome) -> None:
        """Act on what an interpreter call decided for other lanes: stop the runners of lanes taken off the stack
        (kept aside until they have wound down, so that a new lane of the same path can start at once), cancel
        the children nothing waits for any more, wake and start lanes."""
        for lane in outcome.stopped:
            self._stops.pop(lane, asyncio.Event()).set()
            self._wakeups.pop(lane, asyncio.Event()).set()
            runner = self._runners.pop(lane, None)
            if runner is not None and not runner.done():
                self._retiring.add(runner)
                runner.add_done_callback(self._retiring.discard)
        for lane in outcome.woken:
            self._wakeups.get(lane, asyncio.Event()).set()
        for lane in outcome.started:
            self._start_lane(lane)
        if outcome.orphaned:
            reason = "the lane that waited for it was stopped"
            await self.ctx.children.control(self.tenant, "cancel", outcome.orphaned, self.execution_id, reason)

    async def _stop_runners(self, *, grace_s: float) -> None:
        """Stop scheduling; let running tasks finish for `grace_s`, then cut them short."""
        self._halt.set()
        for wakeup in self._wakeups.values():
            wakeup.set()
        pending = [t for t in self._runners.values() if not t.done()]
        if pending and grace_s > 0:
            await asyncio.wait(pending, timeout=grace_s)
        for stop in self._stops.values():
            stop.set()
        runners = [*self._runners.values(), *self._retiring]
        pending = [t for t in runners if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        for task in runners:
            if not task.done():
                task.cancel()
        await self._reap(runners)
        self._runners.clear()
        self._stops.clear()
        self._unwritten_extras = []
        self._unwritten = []  # of lanes stopped while they waited to checkpoint: the state they changed is what
        # the next write (the transition's) holds; their log entries go, as a cut-short write's would
        self._wakeups = {}

    async def _reap(self, tasks: list[asyncio.Task[Any]], timeout_s: float = 5.0) -> None:
        """Wait for cancelled tasks, but not forever: one that ignores cancellation (a handler swallowing
        CancelledError) is logged and kept in a set until it ends, instead of hanging the actor."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            log.error(
                "execution %s: task %s ignores cancellation; leaving it behind", self.execution_id, task.get_name()
            )
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the outcome is handled by whoever owned the task

    async def _run_lane(self, lane: str) -> None:
        try:
            await self._drive(lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._crash is None:
                self._crash = exc
        finally:
            if self._runners.get(lane) is asyncio.current_task():
                del self._runners[lane]  # ended: a lane of the same path may start again later

    async def _drive(self, lane: str) -> None:
        wakeup = self._wakeups[lane]
        while not self._halt.is_set():
            wakeup.clear()
            entry = self.state.entry(lane)
            element_key.set(entry.element_key if entry is not None else None)
            outcome = self.interpreter.begin(self.state, lane, self.ctx.clock.now_ms())
            step = outcome.step
            if isinstance(step, RunTask):
                # In flight from here, before its start is written: a pause that comes while the start is being
                # checkpointed counts it and waits for it (within the grace), so the log never shows a start of a
                # task whose handler did not run.
                self._tasks_in_flight += 1
                try:
                    await self._checkpoint(outcome.events)
                    if await self._run_task(lane, step):
                        return
                finally:
                    self._tasks_in_flight -= 1
                continue
            if isinstance(step, StartChild):
                if outcome.events:
                    await self._checkpoint(outcome.events)
                started = await self._start_child(lane, step)
                if started is None:
                    continue
                outcome, step = started, started.step
            elif isinstance(step, AwaitChild):
                ended = await self.ctx.children.ended(step.child_id)
                if ended is None:  # the child runs (or is paused): its actor wakes us when it ends, if it is here
                    await self._idle(lane, wakeup, POLL_S)
                    continue
                if self.state.entry(lane) is not step.entry:  # the lane was stopped while the child was read
                    continue
                now = self.ctx.clock.now_ms()
                outcome = self.interpreter.child_ended(
                    self.state, lane, ended.status, ended.variables, ended.error, now
                )
                step = outcome.step
            if outcome.events:
                await self._checkpoint(outcome.events)
            await self._follow(outcome)
            if isinstance(step, ThreadEnded | LaneEnded):
                return
            if isinstance(step, ElementFailed):
                self._failure = _Failure.of(step)
                return
            if isinstance(step, Sleep):
                await self._idle(lane, wakeup, (step.until_ms - self.ctx.clock.now_ms()) / 1000)
            elif isinstance(step, AwaitSignal):
                timeout = None if step.until_ms is None else (step.until_ms - self.ctx.clock.now_ms()) / 1000
                await self._idle(lane, wakeup, timeout)
            elif isinstance(step, AwaitLanes):
                await self._idle(lane, wakeup, None)
            else:
                assert isinstance(step, Progressed)

    async def _idle(self, lane: str, wakeup: asyncio.Event, timeout_s: float | None) -> None:
        """Wait, as a lane with nothing to run but a signal, a timer, a child or its branches. Once every lane
        waits so (no task, no expression under way) the execution has shown that it does not stop the node that
        runs it: a crash count its adoption bumped goes back to 0, so that nodes stopping for other reasons while
        it waits (for days, say) never add up to a quarantine."""
        if timeout_s is not None and timeout_s <= 0:
            return
        self._idle_lanes.add(lane)
        try:
            if self._crashes() and not self._forgetting_crashes and self._all_idle():
                self._forgetting_crashes = True
                try:
                    await self._checkpoint([], Commit(execution={CRASHES: 0}))
                finally:
                    self._forgetting_crashes = False
            await _wait(wakeup, timeout_s)
        finally:
            self._idle_lanes.discard(lane)

    def _all_idle(self) -> bool:
        running = [lane for lane, runner in self._runners.items() if not runner.done()]
        return self._tasks_in_flight == 0 and all(lane in self._idle_lanes for lane in running)

    async def _start_child(self, lane: str, step: StartChild) -> Outcome | None:
        """Start the child of a call-process and checkpoint its id (None: go on, the lane waits for it now);
        the outcome of an element that fails because the child could not be started."""
        wakeup = self._wakeups[lane]
        depth = int(self.fields.get("callDepth") or 0) + 1
        try:
            child_id = await self.ctx.children.start(self.tenant, self.execution_id, step, depth)
        except ProcEngineError as exc:
            if exc.status >= 500 or exc.status == 429:  # no child yet (draining, Redis away, the tenant's start
                # rate): the same start again later
                log.warning("execution %s: could not start a child yet: %s", self.execution_id, exc.message)
                await _wait(wakeup, RETRY_S)
                return None
            if self.state.entry(lane) is not step.entry:
                return None
            now = self.ctx.clock.now_ms()
            return self.interpreter.child_ended(self.state, lane, "could not start", None, exc.message, now)
        if self.state.entry(lane) is not step.entry:  # the lane was stopped while the child started: not wanted
            reason = "the lane that started it was stopped"
            await self.ctx.children.control(self.tenant, "cancel", [child_id], self.execution_id, reason)
            return None
        self.interpreter.child_started(self.state, lane, child_id)
        if child_id not in self._children:
            self._children.append(child_id)
        now = self.ctx.clock.now_ms()
        detail: dict[str, Any] = {"thread": step.entry.thread_key, "childExecutionID": child_id}
        if lanes.is_branch(lane):
            detail["path"] = lane
        extra = Commit(
            execution={"children": json.dumps(self._children)},
            log=[LogRecord(now, "child-started", step.entry.element_key, detail)],
        )
        await self._checkpoint([], extra)
        return None

    def children(self) -> list[int]:
        """Every child execution this one has started, oldest first."""
        return list(self._children)

    def _waited_children(self) -> list[int]:
        """The children call-process elements are waiting for now."""
        return [entry.child_id for entry in self.state.stack if entry.child_id is not None]

    def wake_lanes(self) -> None:
        """Something a lane may be waiting for has happened (a child ended): every lane looks again."""
        for wakeup in self._wakeups.values():
            wakeup.set()

    async def _run_task(self, lane: str, step: RunTask) -> bool:
        """Run one task attempt and record its outcome; True when the lane must stop."""
        result = await self._call_handler(lane, step)
        now = self.ctx.clock.now_ms()
        if self.state.entry(lane) is not step.entry:
            # its lane was stopped (a branch or iteration beside it failed) while it ran: what it did is not
            # wanted, and it will not run again; its record says so at once
            await self._checkpoint([], Commit(elements={step.entry.element_key: interrupted_record(step.entry, now)}))
            return True
        if result is None:
            # cut short (grace over, cancel, another thread failed): it runs again, same attempt; the transition
            # that stopped it says so and marks its record
            self._interrupted.append(replace(step.entry))
            self.interpreter.requeue(self.state, lane)
            return True
        outcome: Outcome
        if result.ok:
            outcome = self.interpreter.task_succeeded(self.state, lane, result.value, now, result.size)
        else:
            outcome = self.interpreter.task_failed(
                self.state, lane, str(result.value), now, result.error_type, retry=result.retry
            )
        await self._checkpoint(outcome.events)
        await self._follow(outcome)
        if isinstance(outcome.step, ElementFailed):
            self._failure = _Failure.of(outcome.step)
            return True
        return isinstance(outcome.step, LaneEnded)

    async def _call_handler(self, lane: str, step: RunTask) -> Attempt | None:
        """The attempt's outcome; None if it was cut short (halted before or while it ran)."""
        stop = self._stops[lane]
        if stop.is_set():  # stopped (cancel, failure) before the handler could be called
            return None
        handler = self.ctx.handlers.get(step.handler)
        entry = step.entry
        context = TaskContext(self.execution_id, entry.element_key, entry.attempt, entry.execution_order, entry.path)
        job = asyncio.create_task(run_attempt(handler, step, context, self.ctx.settings.max_snapshot_bytes))
        halted = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({job, halted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halted.cancel()
            if not job.done():
                job.cancel()
            await self._reap([job, halted])
        if not job.done() or job.cancelled():
            return None
        return job.result()


async def log_refusal(
    ctx: ActorContext, execution_id: int, caller: Caller, verb: str, reason: str | None, status: str, why: str
) -> None:
    """Write a `refused` entry; it changes nothing but the log, so it needs no epoch."""
    now = ctx.clock.now_ms()
    entry = transition_log(
        now, "refused", caller, status, TRANSITION_TARGETS.get(verb, verb), reason, command=verb, why=why
    )
    await ctx.store.commit(execution_id, Commit(log=[entry]), epoch=None, expect="")


async def _wait(event: asyncio.Event, timeout_s: float | None) -> None:
    if timeout_s is not None and timeout_s <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
