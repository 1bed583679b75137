"""The lane runners of one execution: one asyncio task per lane (per thread, and per branch or iteration of a
parallel or for-each), each driving the interpreter for its lane and carrying out what it decides: task attempts,
timers, waits for signals, lanes or children, and the start of a call-process's child.

Runners checkpoint after every element (through the `CheckpointWriter`; a run of pure elements shares one:
`coalescing.py`) and talk back to the actor only by waking
it (its mailbox's `Wake`); what they found out (a failure, tasks cut short, children started) they keep here for
the actor to read when it settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from procengine.actors import coalescing
from procengine.actors.attempt import Attempt, run_attempt
from procengine.actors.checkpoints import CheckpointWriter
from procengine.actors.child_control import POLL_S, RETRY_S
from procengine.actors.context import ActorContext
from procengine.actors.records import Failure, interrupted_record, record_field
from procengine.actors.spans import attempt_span, execution_trace, traced_attempt
from procengine.engine.breakpoints import Breakpoint, stops
from procengine.engine.compiled import CompiledProcess
from procengine.engine.interpreter import Interpreter
from procengine.engine.lanes import is_branch
from procengine.engine.outcomes import (
    AwaitChild,
    AwaitLanes,
    AwaitSignal,
    ElementFailed,
    ElementHeld,
    LaneEnded,
    Outcome,
    Progressed,
    RunTask,
    Sleep,
    StartChild,
    ThreadEnded,
)
from procengine.engine.state import ExecutionState, StackEntry
from procengine.errors import ProcEngineError
from procengine.runtime.logs import element_key
from procengine.store.executions import CRASHES, Commit, LogRecord
from procengine.tasks import TaskContext

__all__ = ["LaneRunners"]

log = logging.getLogger(__name__)

REAP_S = 5.0
"""How long a cancelled task may take to end before it is left behind (a module constant: tests shorten it)."""


class LaneRunners:
    def __init__(
        self,
        execution_id: int,
        tenant: str,
        process: CompiledProcess,
        interpreter: Interpreter,
        ctx: ActorContext,
        writer: CheckpointWriter,
        state: Callable[[], ExecutionState],
        wake: Callable[[], None],
    ) -> None:
        self.execution_id = execution_id
        self.tenant = tenant
        self.process = process
        self.interpreter = interpreter
        self.ctx = ctx
        self.writer = writer
        self._state = state
        """The actor's state as it is now (a resume or a reload replaces it)."""
        self._wake = wake
        """Wakes the actor (a `Wake` in its mailbox): a lane ended, failed or crashed."""
        self._runners: dict[str, asyncio.Task[None]] = {}
        """One runner per lane: per thread, and per branch or iteration of a parallel or for-each."""
        self._wakeups: dict[str, asyncio.Event] = {}
        self._stops: dict[str, _Stop] = {}
        """Per lane: set when its running task must be cut short (the actor stops its runners, or the lane's
        fan-out failed)."""
        self._retiring: set[asyncio.Task[None]] = set()
        """Runners of lanes taken off the stack, still winding down (a task that is slow to cancel)."""
        self._abandoned: set[asyncio.Task[Any]] = set()
        self.halt = asyncio.Event()
        """Set while the runners are stopped, or being stopped: no lane starts, no element begins."""
        self.failure: Failure | None = None
        self.held = False
        """A lane's element failed for good and is held on the stack (`onExhausted: pause`): the actor pauses the
        execution (`holding.py`)."""
        self.breakpoints: tuple[Breakpoint, ...] = ()
        """Where lanes stop before an element (`engine/breakpoints.py`), as the actor last set them."""
        self.stepping: set[str] | None = None
        """Step mode (`actors/stepping.py`): the lanes that may begin one element each (a lane not in it begins
        none); None: not stepping."""
        self.stepped: dict[str, StackEntry] = {}
        """Step mode: the element each lane began."""
        self.quiet = asyncio.Event()
        """Step mode: set once no runner is running anything (each has stopped or waits)."""
        self.at_breakpoint: list[tuple[StackEntry, str | None]] = []
        """Lanes stopped at a breakpoint since the runners last started: their entries (and an error their
        condition raised): the actor pauses the execution (`actors/breakpoints.py`)."""
        self.interrupted: list[StackEntry] = []
        """Tasks cut short since the runners last started (their stack entries as they ran)."""
        self.tasks_in_flight = 0
        """Tasks whose start is decided and not yet recorded as ended: a pause waits for them."""
        self._idle_lanes: set[str] = set()
        """Lanes waiting for something outside (a signal, a timer, a child, their branches)."""
        self._forgetting_crashes = False
        self.children: list[int] = []
        """Every child execution started, oldest first (kept here: lanes starting children at once each write
        the whole list)."""
        self.read_children(writer.fields)

    @property
    def state(self) -> ExecutionState:
        return self._state()

    @property
    def done(self) -> bool:
        """No runner is running."""
        return all(runner.done() for runner in self._runners.values())

    def read_children(self, fields: dict[str, str]) -> None:
        """The children as the execution hash lists them (on activation, and when going on from Redis)."""
        listed = fields.get("children")  # none in a new execution: nothing to parse
        self.children = [int(child) for child in json.loads(listed)] if listed else []

    def waited_children(self) -> list[int]:
        """The children call-process elements are waiting for now."""
        return [entry.child_id for entry in self.state.stack if entry.child_id is not None]

    def wake_all(self) -> None:
        """Something a lane may be waiting for has happened (a child ended, a signal came): every lane looks again."""
        for wakeup in self._wakeups.values():
            wakeup.set()

    # --- starting and stopping ----------------------------------------------------------------

    def start(self) -> None:
        self.halt.clear()
        self.failure = None
        self.held = False
        self.at_breakpoint = []
        self.interrupted = []
        state = self.state
        for thread in self.process.threads:
            progress = state.threads[thread.key]
            entry = state.entry(thread.key)
            if progress.status == "failed" and entry is not None and self.failure is None:
                # failed for good before the node could write `failed`: finish the job now
                output = state.memory.node_outputs.get(entry.element_key, {})
                error, kind = str(output.get("error", "failed")), str(output.get("type", "Error"))
                self.failure = Failure(entry.element_key, error, kind, entry.attempt)
            if progress.status == "running":
                self._start_lane(thread.key)
        for lane in dict.fromkeys(entry.path for entry in state.stack if is_branch(entry.path)):
            self._start_lane(lane)
        self._wake()  # settle even if no thread had anything left to run

    def _start_lane(self, lane: str) -> None:
        """A runner for the lane (none while the runners are being stopped: the lane's element is on the stack,
        and runs when they start again)."""
        if self.halt.is_set() or lane in self._runners:
            return
        # No runner is running it: a task marked started here was cut short (crash, adoption) and starts again.
        self.interpreter.requeue(self.state, lane)
        self._stops[lane] = _Stop()
        self._wakeups.setdefault(lane, asyncio.Event())
        task = asyncio.create_task(self._run_lane(lane), name=f"exec-{self.execution_id}-{lane}")
        self._runners[lane] = task
        task.add_done_callback(self._runner_ended)

    def _runner_ended(self, _: asyncio.Task[None]) -> None:
        self._wake()
        self.settle_step()

    async def _follow(self, outcome: Outcome) -> None:
        """Act on what an interpreter call decided for other lanes: stop the runners of lanes taken off the stack
        (kept aside until they have wound down, so that a new lane of the same path can start at once), cancel
        the children nothing waits for any more, wake and start lanes."""
        for lane in outcome.stopped:
            self._stops.pop(lane, _Stop()).set()
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

    def _stopped_records(self, outcome: Outcome) -> Commit | None:
        """The records of the elements the lanes `outcome` stops were on (a delay, a wait, a call, a nested fan-out,
        a task): `interrupted` from now, in the write that stops them, whatever the execution does next (fails, or
        goes on when a catch takes the failure). A task's runner writes the same when its handler comes back."""
        if not outcome.interrupted:
            return None
        now = self.ctx.clock.now_ms()
        return Commit(
            elements={record_field(e.element_key, e.path): interrupted_record(e, now) for e in outcome.interrupted}
        )

    async def stop(self, *, grace_s: float) -> None:
        """Stop scheduling; let running tasks finish for `grace_s`, then cut them short."""
        self.halt.set()
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
        self.writer.discard_unwritten()
        self._wakeups = {}

    async def _reap(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Wait for cancelled tasks, but not forever (`REAP_S`): one that ignores cancellation (a handler swallowing
        CancelledError) is logged and kept in a set until it ends, instead of hanging the actor."""
        if not tasks:
            return
        if all(task.done() for task in tasks):  # the usual case (lanes parked on a wait end at once): no wait
            pending: set[asyncio.Task[Any]] = set()
        else:
            _, pending = await asyncio.wait(tasks, timeout=REAP_S)
        for task in pending:
            log.error(
                "execution %s: task %s ignores cancellation; leaving it behind", self.execution_id, task.get_name()
            )
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the outcome is handled by whoever owned the task

    # --- one lane -----------------------------------------------------------------------------

    async def _run_lane(self, lane: str) -> None:
        try:
            await self._drive(lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.writer.crashed(exc)
        finally:
            if self._runners.get(lane) is asyncio.current_task():
                del self._runners[lane]  # ended: a lane of the same path may start again later

    async def _drive(self, lane: str) -> None:
        wakeup = self._wakeups[lane]
        deferred = 0  # elements of the pure run under way whose events wait for its checkpoint (coalescing.py)
        while not self.halt.is_set():
            wakeup.clear()
            entry = self.state.entry(lane)
            element_key.set(entry.element_key if entry is not None else None)
            if entry is not None and self.breakpoints and await self._stops_before(lane, entry, deferred):
                return
            if entry is not None and self.stepping is not None and not self._may_step(lane, entry):
                if deferred:
                    await self.writer.checkpoint([])
                return
            outcome = self.interpreter.begin(self.state, lane, self.ctx.clock.now_ms())
            step = outcome.step
            if coalescing.goes_on(outcome, self.state, lane, deferred, self.ctx.settings.checkpoint_coalesce):
                self.writer.defer(outcome.events)
                deferred += 1
                coalescing.measured(self.state, lane, self.interpreter.memory_limit)
                continue
            deferred = 0
            if isinstance(step, RunTask):
                # In flight from here, before its start is written: a pause that comes while the start is being
                # checkpointed counts it and waits for it (within the grace), so the log never shows a start of a
                # task whose handler did not run.
                self.tasks_in_flight += 1
                self.ctx.in_flight.began(self.execution_id)  # the node's lease check reads these, not every actor
                try:
                    await self.writer.checkpoint(outcome.events)
                    if await self._run_task(lane, step):
                        return
                finally:
                    self.tasks_in_flight -= 1
                    self.ctx.in_flight.ended(self.execution_id)
                continue
            if isinstance(step, StartChild):
                if outcome.events:
                    await self.writer.checkpoint(outcome.events)
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
                await self.writer.checkpoint(outcome.events, self._stopped_records(outcome))
            await self._follow(outcome)
            if isinstance(step, ThreadEnded | LaneEnded):
                return
            if isinstance(step, ElementFailed):
                self.failure = Failure.of(step)
                return
            if isinstance(step, ElementHeld):
                self.held = True
                return
            timeout: float | None
            if isinstance(step, Sleep):
                timeout = (step.until_ms - self.ctx.clock.now_ms()) / 1000
            elif isinstance(step, AwaitSignal):
                timeout = None if step.until_ms is None else (step.until_ms - self.ctx.clock.now_ms()) / 1000
            elif isinstance(step, AwaitLanes):
                timeout = None
            else:
                assert isinstance(step, Progressed)
                continue
            # a waiting lane keeps nothing of the element it began (its outcome's lists and events): a parked
            # execution holds fewer objects for the garbage collector to walk (runtime/collector.py)
            del outcome, step
            await self._idle(lane, wakeup, timeout)

    async def _stops_before(self, lane: str, entry: StackEntry, deferred: int) -> bool:
        """Whether the lane stops at a breakpoint before `entry`. The test and the element's start are in one step of
        this runner (nothing is awaited between them), so a breakpoint set by the actor before it is always seen,
        and one set after it finds the element started. The events of the pure run before it are written first."""

        def variables() -> dict[str, Any]:
            return self.interpreter.variables(self.state, lane)

        stop, error = stops(self.breakpoints, entry, variables, self.interpreter.max_expression_cost)
        if not stop:
            return False
        entry.at_breakpoint = True  # passed when the execution goes on
        self.at_breakpoint.append((entry, error))
        if deferred:
            await self.writer.checkpoint([])
        return True

    def _may_step(self, lane: str, entry: StackEntry) -> bool:
        """Step mode: a lane begins its next element (or goes on with the one it began), and stops before another."""
        assert self.stepping is not None
        begun = self.stepped.get(lane)
        if begun is None and lane in self.stepping:
            self.stepped[lane] = entry
            return True
        return begun is entry

    def settle_step(self) -> None:
        """Step mode: tell the actor once every runner has stopped or waits."""
        if self.stepping is not None and (self.done or self._all_idle()):
            self.quiet.set()

    async def _idle(self, lane: str, wakeup: asyncio.Event, timeout_s: float | None) -> None:
        """Wait, as a lane with nothing to run but a signal, a timer, a child or its branches. Once every lane
        waits so (no task, no expression under way) the execution has shown that it does not stop the node that
        runs it: a crash count its adoption bumped goes back to 0, so that nodes stopping for other reasons while
        it waits (for days, say) never add up to a quarantine."""
        if timeout_s is not None and timeout_s <= 0:
            return
        self._idle_lanes.add(lane)
        self.settle_step()
        try:
            if self.writer.crashes() and not self._forgetting_crashes and self._all_idle():
                self._forgetting_crashes = True
                try:
                    await self.writer.checkpoint([], Commit(execution={CRASHES: 0}))
                finally:
                    self._forgetting_crashes = False
            await _wait(wakeup, timeout_s)
        finally:
            self._idle_lanes.discard(lane)

    def _all_idle(self) -> bool:
        running = [lane for lane, runner in self._runners.items() if not runner.done()]
        return self.tasks_in_flight == 0 and all(lane in self._idle_lanes for lane in running)

    async def _start_child(self, lane: str, step: StartChild) -> Outcome | None:
        """Start the child of a call-process and checkpoint its id (None: go on, the lane waits for it now);
        the outcome of an element that fails because the child could not be started."""
        wakeup = self._wakeups[lane]
        depth = int(self.writer.fields.get("callDepth") or 0) + 1
        try:
            trace = execution_trace(self.writer.fields)  # the child's spans join this execution's trace
            child_id = await self.ctx.children.start(self.tenant, self.execution_id, step, depth, trace)
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
        if child_id not in self.children:
            self.children.append(child_id)
        now = self.ctx.clock.now_ms()
        detail: dict[str, Any] = {"thread": step.entry.thread_key, "childExecutionID": child_id}
        if is_branch(lane):
            detail["path"] = lane
        extra = Commit(
            execution={"children": json.dumps(self.children)},
            log=[LogRecord(now, "child-started", step.entry.element_key, detail)],
        )
        await self.writer.checkpoint([], extra)
        return None

    async def _run_task(self, lane: str, step: RunTask) -> bool:
        """Run one task attempt and record its outcome; True when the lane must stop."""
        result = await self._call_handler(lane, step)
        now = self.ctx.clock.now_ms()
        if self.state.entry(lane) is not step.entry:
            # its lane was stopped (a branch or iteration beside it failed) while it ran: what it did is not
            # wanted, and it will not run again; its record says so at once
            field = record_field(step.entry.element_key, step.entry.path)
            commit = Commit(elements={field: interrupted_record(step.entry, now)})
            await self.writer.checkpoint([], commit)
            return True
        if result is None:
            # cut short (grace over, cancel, another thread failed): it runs again, same attempt; the transition
            # that stopped it says so and marks its record
            self.interrupted.append(replace(step.entry))
            self.interpreter.requeue(self.state, lane)
            return True
        outcome: Outcome
        if result.ok:
            outcome = self.interpreter.task_succeeded(self.state, lane, result.value, now, result.size)
        else:
            outcome = self.interpreter.task_failed(
                self.state, lane, str(result.value), now, result.error_type, retry=result.retry
            )
        await self.writer.checkpoint(outcome.events, self._stopped_records(outcome))
        await self._follow(outcome)
        if isinstance(outcome.step, ElementFailed):
            self.failure = Failure.of(outcome.step)
            return True
        if isinstance(outcome.step, ElementHeld):
            self.held = True
            return True
        return isinstance(outcome.step, LaneEnded)

    async def _call_handler(self, lane: str, step: RunTask) -> Attempt | None:
        """The attempt's outcome; None if it was cut short (halted before or while it ran). The handler runs in a
        task of its own (so that a stop can cancel it and the lane go on); the lane waits on one future that the
        attempt's end or the lane's stop completes, so an attempt costs one task, not three."""
        stop = self._stops[lane]
        if stop.is_set():  # stopped (cancel, failure) before the handler could be called
            return None
        handler = self.ctx.handlers.get(step.handler)
        if step.queue is not None and self.ctx.external is not None:  # a worker runs it (actors/external.py)
            handler = self.ctx.external.handler(self.tenant, step)
        entry = step.entry
        context = TaskContext(self.execution_id, entry.element_key, entry.attempt, entry.execution_order, entry.path)
        attempt = run_attempt(handler, step, context, self.ctx.settings.max_snapshot_bytes)
        if self.ctx.tracing is not None:  # the attempt's span, current in its task (tracing off: none made)
            span = attempt_span(self.ctx.tracing, self.writer.fields, self.execution_id, step)
            if span is not None:
                attempt = traced_attempt(span, attempt)
        job = asyncio.create_task(attempt)
        settled = asyncio.get_running_loop().create_future()

        def wake(_: object = None) -> None:
            if not settled.done():
                settled.set_result(None)

        job.add_done_callback(wake)
        stop.add_callback(wake)
        try:
            await settled
        finally:
            stop.remove_callback(wake)
            job.remove_done_callback(wake)
            if not job.done():
                job.cancel()
                await self._reap([job])
        if not job.done() or job.cancelled():
            return None
        return job.result()


class _Stop:
    """Set once when a lane's running task must be cut short (the actor stops its runners, or the lane's fan-out
    failed): an `asyncio.Event` that calls back instead of being awaited, so a task attempt needs no task of its
    own to watch it."""

    __slots__ = ("_callbacks", "_set")

    def __init__(self) -> None:
        self._set = False
        self._callbacks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """`callback()` once the stop is set (now, if it is)."""
        if self._set:
            callback()
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)


async def _wait(event: asyncio.Event, timeout_s: float | None) -> None:
    if timeout_s is None:  # no timeout object kept while it waits (a wait-signal without one may wait for days)
        await event.wait()
        return
    if timeout_s <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
