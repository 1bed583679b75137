"""One execution as an asyncio actor: a mailbox for requests, one runner task per lane.

The actor is the only writer of its execution while it holds the fencing epoch. Requests are handled
one at a time, so concurrent pause/resume/cancel of one execution are serialised: exactly one wins.
Lane runners drive the interpreter and checkpoint after every element; they talk back to the actor
through its mailbox (`Wake`), never by changing its status themselves.

The actor holds the execution's status and state and serves its mailbox; the rest is in parts it owns or calls:

    checkpoints.py   CheckpointWriter: every write, fenced by the epoch, and the copy of what Redis holds
    lanes.py         LaneRunners: the runner of each lane (task attempts, timers, waits, call-process)
    transitions.py   what each request does: pause, resume, cancel, signal, drain
    holding.py       pause on failure: an element's failure held on the stack pauses the execution
    repairs.py       retry a failed execution, edit a paused one's variables
    finishing.py     the end: completed or failed, the final write, children and parent told
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any, Final

from procengine.actors import breakpoints, finishing, holding, migrate, repairs, rewind, stepping, steps, transitions
from procengine.actors.checkpoints import CheckpointWriter
from procengine.actors.context import ActorContext
from procengine.actors.lanes import LaneRunners
from procengine.actors.mailbox import Mailbox
from procengine.actors.messages import Command, Drain, Message, Request, Wake
from procengine.actors.snapshot import load_state
from procengine.actors.spans import command_span
from procengine.actors.transitions import ALLOWED_FROM, SIGNAL_KEY_FIELD, TRANSITION_TARGETS, log_refusal
from procengine.api.rendered import RenderedStatus
from procengine.engine.breakpoints import from_field
from procengine.engine.compiled import CompiledProcess
from procengine.engine.interpreter import Interpreter
from procengine.engine.state import ExecutionState
from procengine.errors import (
    ActorStopped,
    Fenced,
    InvalidTransition,
    NotReplicated,
    ProcEngineError,
    Refused,
    RequestExpired,
    StoreFailed,
)
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.logs import execution_id as execution_id_var
from procengine.runtime.tracing import Tracing
from procengine.statuses import Status
from procengine.store.executions import Commit, StoredExecution
from procengine.store.indexes import owned_remove

__all__ = [
    "SIGNAL_KEY_FIELD",
    "TRANSITION_TARGETS",
    "ActorContext",
    "ExecutionActor",
    "log_refusal",
]

log = logging.getLogger(__name__)

WAKE: Final = Wake()


class StateBox:
    """The actor's current state, shared with its writer and lane runners (who call the box to read it): they
    hold the box, not the actor, so no reference cycle runs through the actor. An ended or passivated actor is
    then freed by reference counting at once, not by the next full collection of the garbage collector, which
    may be rare (runtime/collector.py)."""

    __slots__ = ("state",)

    def __init__(self, state: ExecutionState) -> None:
        self.state = state

    def __call__(self) -> ExecutionState:
        return self.state


class ExecutionActor:
    def __init__(
        self,
        *,
        execution_id: int,
        tenant: str,
        process: CompiledProcess,
        ctx: ActorContext,
        status: Status,
        epoch: int,
        state: ExecutionState,
        fields: dict[str, str],
    ) -> None:
        self.execution_id = execution_id
        self.tenant = tenant
        self.process = process
        self.ctx = ctx
        self.status = status
        self.epoch = epoch
        self._box = StateBox(state)
        settings = ctx.settings
        self.interpreter = self._interpreter(process)
        self.mailbox: Mailbox[Message] = Mailbox(settings.mailbox_size)
        # neither the writer nor the lanes hold the actor (no closure over `self`): see StateBox
        self.writer = CheckpointWriter(execution_id, epoch, ctx, fields, self._box)
        self.lanes = LaneRunners(
            execution_id,
            tenant,
            process,
            self.interpreter,
            ctx,
            self.writer,
            self._box,
            functools.partial(self.mailbox.put_internal, WAKE),
        )
        self.lanes.breakpoints = from_field(fields)
        self.corrupted = False
        """Activated from a snapshot that does not decode: only cancel may touch it (resume re-reads)."""
        self.repairable: Status | None = None
        """Activated for a repair of a final execution (failed: a retry or a step; failed or cancelled: a rewind): it
        serves its mailbox in that status, until a repair makes it run or pause, or it passivates (then its node may
        activate it again for the next one)."""
        self._loaded: tuple[int, StoredExecution] | None = None
        """What the registry read to activate it, and `writer.writes` then (`loaded`)."""
        self.stopped = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        """The task that runs `run` (set by the registry, which owns it)."""
        self._current: Request | None = None
        """The request being handled (answered 'try again' if the actor dies handling it)."""

    def _interpreter(self, process: CompiledProcess) -> Interpreter:
        settings = self.ctx.settings
        return Interpreter(
            process,
            settings.max_snapshot_bytes,
            settings.max_foreach_items,
            settings.max_expression_cost,
            settings.on_exhausted_of(self.tenant),
        )

    def use_version(self, process: CompiledProcess) -> None:
        """Run another version of the process from now on: a migration's, once written (`migrate.py`), while the
        execution is paused or failed (no lane runs)."""
        self.process = process
        self.interpreter = self._interpreter(process)
        self.lanes.process = process
        self.lanes.interpreter = self.interpreter
        self.lanes.breakpoints = from_field(self.fields)

    # --- what the node reads ------------------------------------------------------------------

    @property
    def state(self) -> ExecutionState:
        """The execution's stack and memory as they are now (a resume, a reload or a repair replaces them)."""
        return self._box.state

    @state.setter
    def state(self, state: ExecutionState) -> None:
        self._box.state = state

    @property
    def fields(self) -> dict[str, str]:
        """The execution hash as of the last write (the actor is its only writer: this is what Redis holds)."""
        return self.writer.fields

    @property
    def thread_records(self) -> dict[str, dict[str, Any]]:
        """The thread hash as of the last write, like `fields`."""
        return self.writer.thread_records

    @property
    def copy_known(self) -> bool:
        """False once a write was cancelled while in flight (it may land or not): `fields` may be behind."""
        return self.writer.copy_known

    @property
    def rendered_status(self) -> RenderedStatus | None:
        """The status answer from `fields` and `thread_records` (the node renders it), until the next write."""
        return self.writer.rendered_status

    @rendered_status.setter
    def rendered_status(self, rendered: RenderedStatus | None) -> None:
        self.writer.rendered_status = rendered

    @property
    def tasks_in_flight(self) -> int:
        """Task attempts started and not yet recorded as ended."""
        return self.lanes.tasks_in_flight

    def children(self) -> list[int]:
        """Every child execution this one has started, oldest first."""
        return list(self.lanes.children)

    def wake_lanes(self) -> None:
        """Something a lane may be waiting for has happened (a child ended): every lane looks again."""
        self.lanes.wake_all()

    # --- life ---------------------------------------------------------------------------------

    async def run(self, passivate: Callable[[ExecutionActor], bool]) -> None:
        """Serve the mailbox until final, fenced, crashed, or idle-while-paused (then `passivate`)."""
        execution_id_var.set(self.execution_id)  # every log line of this actor and its runners carries it
        try:
            if self.status is Status.RUNNING:
                if self.lanes.failure is not None:  # quarantined: no runner starts, settling writes the failure
                    self.mailbox.put_internal(Wake())
                else:
                    self.lanes.start()
            while not self.status.is_final or self.status is self.repairable:
                check_cancelled()
                message = await self._next_message()
                if message is None:
                    if passivate(self):
                        await self._release()
                        return
                    continue
                if isinstance(message, Wake):
                    await self.settle()
                elif isinstance(message, Drain):
                    await transitions.drain(self)
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
                current.reply.set_exception(ActorStopped())
            self._refuse_queued()
            await self.lanes.stop(grace_s=0)
            self.stopped.set()

    def quarantine(self, crashes: int, last_owner: str) -> None:
        """`crashes` nodes in a row stopped while this execution ran (the last one `last_owner`), with no progress
        in between: it is taken for what stops them, and failed (NodeCrashed) instead of run once more."""
        self.lanes.failure = finishing.quarantined(self, crashes, last_owner)

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
                message.reply.set_exception(ActorStopped())

    async def _handle(self, message: Request) -> None:
        if message.reply.done():  # its requester gave up (cancelled) while it waited in the mailbox: not applied
            return
        self._current = message
        try:
            if self.ctx.tracing is None:
                result = await self._dispatch(message.command)
            else:
                result = await self._traced(self.ctx.tracing, message.command)
        except (RequestExpired, NotReplicated) as exc:
            # the transition was not written (its deadline passed first), or may not last (no replica has it):
            # what was changed here for it is undone by going on from what Redis holds
            await self._reload()
            if not message.reply.done():
                message.reply.set_exception(exc)
        except StoreFailed:
            raise  # Redis failed mid-transition: this copy may not be what Redis holds, so the actor stops
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
        await self.settle()

    async def _traced(self, tracing: Tracing, command: Command) -> Any:
        """`_dispatch` under the command's span (actors/spans.py)."""
        name = command.signal if command.verb == "signal" else ""
        with command_span(tracing, self.fields, self.execution_id, command.verb, command.caller, name):
            return await self._dispatch(command)

    async def _dispatch(self, command: Command) -> Any:
        if command.verb == "retry" and command.retry_key is not None:
            done = repairs.retried_answer(self.fields, command.retry_key)
            if done is not None:  # a retry applied already (its reply lost, say): answered as the first time
                return done
        allowed = ALLOWED_FROM.get(command.verb)
        if command.step is not None and allowed is not None and self.status not in allowed:
            return await self._refuse_step(command)
        if allowed is not None and self.status not in allowed:
            raise Refused(command.caller, command.verb, command.reason, self.status)
        if command.verb == "pause":
            paused = await transitions.pause(self, command)
            if paused is None:  # the last element finished (or failed) while pausing
                raise Refused(command.caller, "pause", command.reason, self.status)
            return paused
        if command.verb == "resume":
            return await transitions.resume(self, command)
        if command.verb == "cancel":
            return await transitions.cancel(self, command)
        if command.verb == "retry":
            retried = await repairs.retry(self, command)
            self.repairable = None  # running from here on; failed again, it stops as any actor does
            return retried
        if command.verb == "edit":
            return await repairs.edit_variables(self, command)
        if command.verb == "advance":
            return await stepping.step(self, command)
        if command.verb == "breakpoints":
            return await breakpoints.set_breakpoints(self, command)
        if command.verb == "rewind":
            rewound = await rewind.rewind(self, command)
            self.repairable = None  # paused from here on: it lives as one
            return rewound
        if command.verb == "migrate":
            return await migrate.migrate(self, command)
        if command.verb == "run-now":
            return await steps.run_now(self, command)
        if command.verb == "policy":
            return await steps.change_policy(self, command)
        if command.verb == "step":
            stepped = await steps.apply(self, command)
            self.repairable = self.repairable if self.status is Status.FAILED else None  # paused: it lives as one
            return stepped
        return await transitions.signal(self, command)

    async def _refuse_step(self, command: Command) -> Any:
        """A step control where it does not apply (running, or final but failed): 409 naming the status, logged."""
        assert command.step is not None
        status = self.status.value
        why = f"cannot {command.step.phrase} element {command.step.element!r} of an execution that is {status}"
        hint = "; pause it first" if self.status is Status.RUNNING and command.verb == "step" else ""
        if command.verb == "run-now":
            hint = "; its timers are frozen while it is paused" if self.status is Status.PAUSED else ""
        await log_refusal(self.ctx, self.execution_id, command.caller, command.verb, command.reason, status, why)
        raise InvalidTransition(why + hint, status)

    async def settle(self) -> bool:
        """Finish the execution if its threads are done or one failed; True if it is final now."""
        if self.status is not Status.RUNNING:
            return self.status.is_final
        if self.writer.crash is not None:
            raise self.writer.crash
        if self.lanes.failure is not None:
            await self._finish(Status.FAILED)
            return True
        if not self.state.stack and self.lanes.done:
            await self._finish(Status.COMPLETED)
            return True
        if self.lanes.held and not self.lanes.halt.is_set():  # a failure held (onExhausted: pause): pause for it
            await holding.pause_held(self)
            return self.status.is_final
        if self.lanes.at_breakpoint and not self.lanes.halt.is_set():  # a lane stopped before a breakpoint
            await breakpoints.pause_at_breakpoint(self)
            return self.status.is_final
        return False

    async def _finish(self, status: Status) -> None:
        await finishing.finish(self, status)

    async def announce(self) -> None:
        """Tell the tenant's status-events stream (the console's live list) the status just written: nothing to do
        when the write of that status carried it (`CheckpointWriter.write`, `Commit.announce`), else a notice beside
        the write: if it is lost, watchers miss one change; nothing else."""
        if self.writer.take_announced(self.status.value):
            return
        try:
            await self.ctx.store.announce(
                self.tenant, self.execution_id, self.status.value, self.process.definition.key
            )
        except Exception as exc:
            log.warning("execution %s: status change not announced: %s", self.execution_id, exc)

    async def _reload(self) -> None:
        """Go on from what Redis holds (after a transition that was prepared here but not written)."""
        await self.lanes.stop(grace_s=0)
        stored = await self.ctx.store.load(self.execution_id)
        if stored is None or stored.epoch != self.epoch:
            raise Fenced(f"execution {self.execution_id}: no longer ours")
        self.state = load_state(stored, self.process)
        self.status = Status(stored.status)
        fields = dict(stored.fields)
        self.writer.reset(fields, self.state)
        self.lanes.read_children(fields)
        self.lanes.breakpoints = from_field(fields)
        if self.status is Status.RUNNING:
            self.lanes.start()

    async def _release(self) -> None:
        """Passivation: give up ownership so any node may activate the execution again."""
        # the log of a final execution is not rewritten: RESTORE would drop the expiry its retention set
        compact = not self.status.is_final
        # out of this node's `owned` set in the same write; not on a Redis Cluster, where it would go beside and
        # could land after a re-activation here had put it back (an extra member costs nothing but a read later)
        store = self.ctx.store
        index = [owned_remove(store.keys, self.ctx.node_id, self.execution_id)] if store.indexes_in_script else []
        with contextlib.suppress(Fenced):
            await self.write(Commit(execution={"owner": ""}, compact_log=compact, index=index), expect=self.status)

    def activated_from(self, stored: StoredExecution) -> None:
        """The registry read `stored` to activate this actor, and its takeover checked that it was the latest."""
        self._loaded = (self.writer.writes, stored)

    async def stored(self) -> StoredExecution | None:
        """The execution as Redis holds it, for a command that validates the snapshot before it changes anything
        (resume, the repairs): what the activation read, once, if nothing was written since (the takeover checked
        it was the latest, and under its epoch only this actor writes); else read again."""
        loaded, self._loaded = self._loaded, None
        if loaded is not None and loaded[0] == self.writer.writes and not self.corrupted:
            return loaded[1]
        return await self.ctx.store.load(self.execution_id)

    async def write(self, commit: Commit, *, expect: Status, not_after_ms: int | None = None) -> None:
        """`CheckpointWriter.write`; RequestExpired if the request's deadline (`not_after_ms`, by the Redis clock)
        passed before it could be written."""
        if not await self.writer.write(commit, expect=expect, not_after_ms=not_after_ms):
            raise RequestExpired(f"execution {self.execution_id}: the request came too late to be applied; try again")

    # The names tests reach in by (tests/actors: test_status_reads, test_task_truth, test_store_faults).
    _write = write

    @property
    def _halt(self) -> asyncio.Event:
        return self.lanes.halt

    @property
    def _checkpoints_asked(self) -> int:
        return self.writer.asked
