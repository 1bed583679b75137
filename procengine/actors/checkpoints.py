"""The checkpoint writer of one execution: every write of its actor, fenced by the epoch, and the copy of what
Redis holds that those writes keep.

The actor is the only writer of its execution while it holds the epoch, so after each write the execution hash
is what the writer last wrote: `fields` and `thread_records` are that copy (the node answers status reads from
it). Lanes that checkpoint at once share one write (a group commit), and the first error of a runner or of a
checkpoint (`crash`) stops every later checkpoint: the state here may be ahead of Redis from then on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from procengine.actors.context import ActorContext
from procengine.actors.records import FINAL_RECORD, carried, needs_earlier, snapshot_commit
from procengine.actors.spans import element_spans
from procengine.api.rendered import RenderedStatus
from procengine.engine.outcomes import ElementEvent
from procengine.engine.state import ExecutionState
from procengine.errors import CodecError, Fenced
from procengine.runtime.metrics import observe_many
from procengine.statuses import Status
from procengine.store import indexes, search
from procengine.store.executions import BUFFERED_SIGNALS, CRASHES, Commit, StatusChange, stored_fields
from procengine.store.executions import Outcome as WriteOutcome
from procengine.store.search import ATTRIBUTES_FIELD

__all__ = ["CheckpointWriter"]

log = logging.getLogger(__name__)


class CheckpointWriter:
    def __init__(
        self,
        execution_id: int,
        epoch: int,
        ctx: ActorContext,
        fields: dict[str, str],
        state: Callable[[], ExecutionState],
    ) -> None:
        self.execution_id = execution_id
        self.epoch = epoch
        self.ctx = ctx
        self._state = state
        """The actor's state as it is now (a resume or a reload replaces it)."""
        self.fields = fields
        """The execution hash as of the last write (the actor is its only writer: this is what Redis holds)."""
        self.thread_records: dict[str, dict[str, Any]] = {k: p.to_doc() for k, p in state().threads.items()}
        """The thread hash as of the last write, like `fields`."""
        self.task_records: dict[str, dict[str, Any]] = {}
        """The records of tasks under way as last written (their input and attempts so far go into the next)."""
        self.writes = 0
        """Writes begun (whatever their outcome): what Redis holds may differ from a snapshot read before the last."""
        self.copy_known = True
        """False once a write was cancelled while in flight (it may land or not): `fields` may be behind."""
        self.rendered_status: RenderedStatus | None = None
        """The status answer from `fields` and `thread_records` (the engine renders it), until the next write."""
        self.crash: BaseException | None = None
        """The first error of a runner or of a checkpoint: no checkpoint is written after it (see `checkpoint`)."""
        self._write_lock = asyncio.Lock()
        self._checkpoint_lock = asyncio.Lock()
        self._unwritten: list[ElementEvent] = []
        """Events of lanes waiting for a checkpoint: the next checkpoint writes them all (see `checkpoint`)."""
        self._unwritten_extras: list[Commit] = []
        self.asked = 0
        """Checkpoints asked for so far; those up to `_written` are in Redis."""
        self._written = 0
        self.announced: str | None = None
        """The status change the last write told the tenant's status-events stream (`announce`), until it is taken."""

    def crashed(self, exc: BaseException) -> None:
        """A runner or a checkpoint failed: the first such error is kept (and raised by later checkpoints)."""
        if self.crash is None:
            self.crash = exc

    def reset(self, fields: dict[str, str], state: ExecutionState) -> None:
        """Go on from what Redis holds (read just now): the copy is that, and a crash is dealt with."""
        self.fields = fields
        self.thread_records = {key: progress.to_doc() for key, progress in state.threads.items()}
        self.task_records = {}  # read again from Redis when needed
        self.rendered_status = None
        self.crash = None  # a runner's failed write (not replicated, say) is dealt with: it goes on from Redis

    def discard_unwritten(self) -> None:
        """The runners were stopped while some lanes waited to checkpoint: the state they changed is what the next
        write (the transition's) holds; their log entries go, as a cut-short write's would."""
        self._unwritten_extras = []
        self._unwritten = []

    def take_announced(self, status: str) -> bool:
        """Whether the last write told the status-events stream of `status` (then the actor need not): once."""
        told, self.announced = self.announced == status, None
        return told

    def crashes(self) -> int:
        """Adoptions counted since the last progress (CRASHES, as this actor last wrote or read it)."""
        count = self.fields.get(CRASHES, "")
        return int(count) if count.isascii() and count.isdigit() else 0

    def progressed(self, commit: Commit) -> None:
        """`commit` shows progress: it puts the crash count back to 0 (when it is not 0 already)."""
        if self.crashes():
            commit.execution[CRASHES] = 0

    async def write(self, commit: Commit, *, expect: Status, not_after_ms: int | None = None) -> bool:
        """Write atomically under our epoch (and before `not_after_ms` by the Redis clock, if given: False if that
        passed first, and nothing is written). Once the write lock is ours the write is handed to the group commit
        before anything else is awaited, and a handed-over write is sent even if the caller is cancelled while it
        waits for the answer (no shield)."""
        if "memory" in commit.state:  # a snapshot: the buffered signals' counts go with it, when they changed
            if BUFFERED_SIGNALS not in commit.execution and self.fields.get(BUFFERED_SIGNALS):
                commit.execution[BUFFERED_SIGNALS] = ""
            elif BUFFERED_SIGNALS in commit.execution and commit.execution[BUFFERED_SIGNALS] == self.fields.get(
                BUFFERED_SIGNALS
            ):
                del commit.execution[BUFFERED_SIGNALS]
        if "memory" in commit.state:  # a snapshot: the attributes' copy goes with it, when they changed
            if ATTRIBUTES_FIELD not in commit.execution and self.fields.get(ATTRIBUTES_FIELD):
                commit.execution[ATTRIBUTES_FIELD] = ""  # a rewind to before they were set
            elif commit.execution.get(ATTRIBUTES_FIELD) == self.fields.get(ATTRIBUTES_FIELD, ""):
                commit.execution.pop(ATTRIBUTES_FIELD, None)
        if not commit.execution.keys().isdisjoint(search.MOVED_BY):  # the search indexes move in the same write
            update = stored_fields(commit.execution)
            commit.index = [*commit.index, *search.written(self.ctx.store.keys, self.execution_id, self.fields, update)]
        target = commit.execution.get("status")
        if target is not None and target != expect.value:  # a status change moves it in the tenant's indexes
            # the final write sets the retention: the note of when it ends goes with it
            removal_at = None if commit.expire_ms is None else self.ctx.clock.now_ms() + commit.expire_ms
            keys = self.ctx.store.keys
            if expect.is_final:  # a retry: live again, and the retention its final write started is undone
                commit.persist = True
                moves = indexes.revived(keys, self.execution_id, self.fields, expect.value, str(target))
            else:
                moves = indexes.status_change(
                    keys, self.execution_id, self.fields, expect.value, str(target), removal_at
                )
            commit.index = [*moves, *commit.index]
            if commit.announce is None and self.fields.get("tenant"):  # told in the same write (one call)
                commit.announce = StatusChange(self.fields["tenant"], str(target), self.fields.get("processKey", ""))
        async with self._write_lock:
            self.writes += 1
            await self._carry(commit)
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
            return False
        self.announced = None if commit.announce is None else commit.announce.status
        self.fields.update(stored_fields(commit.execution))
        self.thread_records.update(commit.threads)
        self.rendered_status = None
        for name, record in commit.elements.items():
            if "attemptHistory" in record and record["status"] not in FINAL_RECORD:
                self.task_records[name] = record
            else:
                self.task_records.pop(name, None)
        return True

    async def _carry(self, commit: Commit) -> None:
        """Task records take the input and the attempts of the records before them (see `records.carried`): from
        the copy, else (an actor that took over, a reload) from Redis."""
        missing = [n for n, r in commit.elements.items() if n not in self.task_records and needs_earlier(r)]
        earlier = self.task_records
        if missing:
            try:
                earlier = {**earlier, **await self.ctx.store.element_records(self.execution_id, missing)}
            except CodecError as exc:  # a record edited by hand: the history starts again, the write goes on
                log.warning("execution %s: earlier element records unreadable: %s", self.execution_id, exc.message)
        for name, record in commit.elements.items():
            commit.elements[name] = carried(earlier.get(name), record)

    def unwritten_events(self) -> list[ElementEvent]:
        """Events queued for the next checkpoint (a pure run's, not written yet)."""
        return list(self._unwritten)

    def defer(self, events: list[ElementEvent]) -> None:
        """Queue the events of an element of a pure run (`coalescing.py`) for the next checkpoint, which the run's
        lane asks for after its last element: nothing is awaited, so the queue keeps them in order with the state
        they changed (a write another lane makes meanwhile carries them, as it carries any queued event)."""
        self._unwritten.extend(events)

    async def checkpoint(self, events: list[ElementEvent], extra: Commit | None = None) -> None:
        """Write the state and `events`; back when both are in Redis. Lanes that ask while a checkpoint is being
        written share the next one (one write of the latest state carries all their events), so the lanes of a
        fan-out are not each held up by the others' round trips. Their events are queued before anything is
        awaited, so every change to the state made so far has its events queued with it."""
        self._unwritten.extend(events)
        if extra is not None:
            self._unwritten_extras.append(extra)
        self.asked += 1
        asked = self.asked
        async with self._checkpoint_lock:
            # else a checkpoint written while we waited carried our events
            if self._written < asked:
                if self.crash is not None:
                    raise self.crash
                batch, self._unwritten = self._unwritten, []
                extras, self._unwritten_extras = self._unwritten_extras, []
                covered = self.asked
                commit = snapshot_commit(self._state(), batch, self.ctx.clock.now_ms())
                for part in extras:  # fields, records and log entries of their own (a child started, ...)
                    commit.execution.update(part.execution)
                    commit.elements.update(part.elements)
                    commit.log.extend(part.log)
                if extras or any(event.event != "element-started" for event in batch):
                    self.progressed(commit)  # an element ended (or retries, or a child started)
                try:
                    await self.write(commit, expect=Status.RUNNING)
                except Exception as exc:
                    # The state here is now ahead of Redis by this batch, whose events went with the write (and
                    # whose outcome is unknown: a lost reply can hide a write that landed). A lane that waited
                    # must not write that state without them: the actor stops, and its node takes the execution
                    # back from what Redis holds (the actor's reload clears this).
                    self.crashed(exc)
                    raise
                self._written = covered
                self._observe(batch)  # every event once, when its write landed (a pure run's too)
                if self.ctx.tracing is not None:  # tracing off: no span, no context (docs/tracing.md)
                    element_spans(self.ctx.tracing, self.fields, self.execution_id, batch)

    def _observe(self, events: list[ElementEvent]) -> None:
        """Each ended element's duration, into its type's and outcome's histogram: a pure run's together."""
        durations: dict[tuple[str, str], list[float]] = {}
        for event in events:
            if event.started_at_ms is not None and event.event in ("element-completed", "element-failed"):
                outcome = "completed" if event.event == "element-completed" else "failed"
                seconds = max(event.at_ms - event.started_at_ms, 0) / 1000
                durations.setdefault((event.element_type, outcome), []).append(seconds)
        for (element_type, outcome), amounts in durations.items():
            observe_many(self.ctx.metrics.element_duration(element_type, outcome), amounts)
