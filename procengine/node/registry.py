"""The node's actors: activated from Redis when a request needs one, passivated when idle.

The registry owns every actor task: it keeps them in a set, and `stop_all` cancels and awaits them.
Activation takes ownership with takeover.lua (bumping the fencing epoch), so an actor that another
node (or an earlier actor of ours) still runs can no longer write.
"""

from __future__ import annotations

import asyncio
import json
import logging

from procengine.actors.actor import ActorContext, ExecutionActor
from procengine.actors.messages import Drain, Request
from procengine.actors.snapshot import check_fields, load_state
from procengine.engine.state import ExecutionState, Memory, ThreadProgress
from procengine.errors import NotFound, OwnedElsewhere, StateCorrupted, Unavailable
from procengine.node.catalog import Catalog
from procengine.node.ownership import Ownership
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import iso
from procengine.statuses import FINAL_STATUSES, Status
from procengine.store import indexes, search
from procengine.store.executions import CRASHES, Commit, LogRecord, Outcome, StoredExecution, stored_fields

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, ctx: ActorContext, catalog: Catalog, ownership: Ownership) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.ownership = ownership
        self._actors: dict[int, ExecutionActor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        self._highest = 0
        self._ended: set[int] = set()

    def highest(self) -> int:
        """The highest execution id an actor of this node has run (the store's health check: no id below it may
        be given again)."""
        return self._highest

    def __len__(self) -> int:
        return len(self._actors)

    def ids(self) -> list[int]:
        """The executions this node runs now."""
        return list(self._actors)

    def get(self, execution_id: int) -> ExecutionActor | None:
        """The live actor of an execution on this node (one that has closed its mailbox is not live)."""
        actor = self._actors.get(execution_id)
        if actor is not None and actor.mailbox.closed:
            del self._actors[execution_id]
            return None
        return actor

    def spawn(self, actor: ExecutionActor) -> None:
        self._actors[actor.execution_id] = actor
        self._highest = max(self._highest, actor.execution_id)
        task = asyncio.create_task(actor.run(self._passivate), name=f"actor-{actor.execution_id}")
        actor.task = task
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._ended.add(actor.execution_id)
            if self._actors.get(actor.execution_id) is actor:
                del self._actors[actor.execution_id]
            if not actor.stopped.is_set():
                _never_ran(actor)

        task.add_done_callback(done)

    def take_ended(self) -> set[int]:
        """The executions whose actor has ended since the last call (the reconciler checks that none of them is
        left running here with no actor: its actor stopped without giving it up)."""
        ended, self._ended = self._ended, set()
        return ended

    def with_tasks_in_flight(self) -> list[ExecutionActor]:
        """The live actors running a task now (those whose loss must stop a handler at once): O(tasks in flight),
        from the executions the lanes counted (`ActorContext.in_flight`), not a look at every actor."""
        found = (self._actors.get(execution_id) for execution_id in self.ctx.in_flight.ids())
        return [a for a in found if a is not None and a.tasks_in_flight and not a.mailbox.closed]

    def lose(self, actor: ExecutionActor, owner: str, epoch: int) -> None:
        """Another node owns the execution now (`owner` at `epoch`): stop our actor at once, so that its running
        tasks are cancelled now rather than at its next write (which would be refused)."""
        if actor.task is None or actor.task.done():
            return
        actor.log_lost(owner, epoch, "seen by this node's check of the executions whose tasks it runs")
        actor.task.cancel()  # its runners stop without writing; the registry forgets it once it has stopped

    def _passivate(self, actor: ExecutionActor) -> bool:
        """Called by an idle paused actor; synchronous, so no message can slip in between."""
        if actor.mailbox.statistics().queued:
            return False
        actor.mailbox.close()
        if self._actors.get(actor.execution_id) is actor:
            del self._actors[actor.execution_id]
        return True

    async def activate(
        self, execution_id: int, tenant: str | None, *, repair: frozenset[Status] = frozenset()
    ) -> ExecutionActor | None:
        """The live actor of an execution, activating it here if needed; None when it is final (but in one of the
        final statuses `repair` names: a retry or step asks for a failed one, a rewind for a cancelled one too,
        whose actor then serves its mailbox in that status).

        `tenant` None is the system (reconciler) asking; otherwise another tenant's execution is NotFound.
        """
        actor = self.get(execution_id)
        if actor is not None and (tenant is None or actor.tenant == tenant):
            return actor
        # one activation at a time per execution; the lock lives while anyone holds or waits for it
        lock = self._locks.setdefault(execution_id, asyncio.Lock())
        self._waiting[execution_id] = self._waiting.get(execution_id, 0) + 1
        try:
            async with lock:
                for _ in range(5):
                    actor = self.get(execution_id)
                    if actor is not None:
                        break
                    if tenant is not None and not await self._here(execution_id, tenant, repair):
                        return None
                    stored = await self.ctx.store.load(execution_id)
                    if stored is None or (tenant is not None and stored.fields.get("tenant") != tenant):
                        raise NotFound(f"execution {execution_id} not found")
                    try:
                        status = check_fields(execution_id, stored.fields)
                    except StateCorrupted as exc:
                        await self._unreadable(execution_id, stored, exc)
                        return None
                    if status.is_final and status not in repair:
                        return None
                    actor = await self._take(execution_id, stored, repair=repair)
                    if actor is not None:
                        break
                else:
                    raise Unavailable(f"execution {execution_id} is changing hands; try again")
        finally:
            self._waiting[execution_id] -= 1
            if not self._waiting[execution_id]:
                del self._waiting[execution_id]
                del self._locks[execution_id]
        if tenant is not None and actor.tenant != tenant:
            raise NotFound(f"execution {execution_id} not found")
        return actor

    async def _here(self, execution_id: int, tenant: str, repair: frozenset[Status] = frozenset()) -> bool:
        """For a request, from the execution hash alone (not the state, which may take MiBs): NotFound, False if
        it is final (but failed, for a `repair`), OwnedElsewhere if another live node drives it (or, failed, last
        drove it), True if it may be taken here. The reconciler skips this: it read status and owner already."""
        fields = await self.ctx.store.fields(execution_id)
        if not fields or fields.get("tenant") != tenant:
            raise NotFound(f"execution {execution_id} not found")
        status = fields.get("status")
        if status in FINAL_STATUSES and status not in {s.value for s in repair}:
            return False  # any other status, known or not, is for activate to judge
        owner = fields.get("owner", "")
        if owner and owner != self.ctx.node_id and await self.ownership.alive({owner}):
            raise OwnedElsewhere(execution_id, owner)
        return True

    async def _take(
        self, execution_id: int, stored: StoredExecution, *, repair: frozenset[Status] = frozenset()
    ) -> ExecutionActor | None:
        owner = stored.fields.get("owner", "")
        if owner and owner != self.ctx.node_id and await self.ownership.alive({owner}):
            raise OwnedElsewhere(execution_id, owner)
        tenant = stored.fields["tenant"]
        process = await self.catalog.compiled(tenant, int(stored.fields["processID"]))  # before: no await after
        missing = process.handlers - self.ctx.handlers.names()
        if missing:  # another node may have them: do not take it here just to fail it
            raise Unavailable(f"execution {execution_id} needs handlers this node lacks: {sorted(missing)}")
        now = self.ctx.clock.now_ms()
        # adopted only from another node: taking back our own (its actor stopped: the heartbeat watchdog, a crash)
        # or an ownerless one (passivated) is no change of hands; the epoch still moves on, fencing the old actor
        adopted = owner not in ("", self.ctx.node_id)
        record = LogRecord(now, "adopted", None, {"from": owner, "to": self.ctx.node_id, "by": "system"})
        result = await self.ctx.store.takeover(
            execution_id,
            owner=self.ctx.node_id,
            expected_owner=owner,
            expected_epoch=stored.epoch,
            log=record if adopted else None,
            expected_commit=stored.fields.get("lastCommit", ""),  # what was loaded is still the latest
        )
        if result.outcome is Outcome.MISSING:
            raise NotFound(f"execution {execution_id} not found")
        if result.outcome is Outcome.CONFLICT:
            return None
        status = Status(result.status)
        corrupted = False
        try:
            state = load_state(stored, process)
        except StateCorrupted as exc:
            if status is Status.RUNNING:  # it cannot go on: fail it visibly rather than leave it "running"
                await self._fail_corrupted(execution_id, stored.fields, result.epoch, exc.message)
                return None
            state = _placeholder(process.threads[0].key if process.threads else "")
            corrupted = True
        actor = ExecutionActor(
            execution_id=execution_id,
            tenant=tenant,
            process=process,
            ctx=self.ctx,
            status=status,
            epoch=result.epoch,
            state=state,
            fields={
                **stored.fields,
                "status": status.value,
                "owner": self.ctx.node_id,
                "epoch": str(result.epoch),
                CRASHES: str(result.crashes),
            },
        )
        actor.corrupted = corrupted
        if status in (Status.PAUSED, Status.FAILED, Status.CANCELLED):  # a resume or a repair activated it, most likely
            actor.activated_from(stored)
        actor.repairable = status if status in repair else None
        if status is Status.RUNNING and not corrupted and result.crashes >= self.ctx.settings.node_crash_limit:
            actor.quarantine(result.crashes, owner)  # fails it (NodeCrashed) instead of running it once more
        check_cancelled()  # redis-py may have absorbed a cancel during the takeover: spawn nothing after one
        self.spawn(actor)
        log.info(
            "execution %s: activated on node %s at epoch %s",
            execution_id,
            self.ctx.node_id,
            result.epoch,
            extra={"executionID": execution_id},
        )
        return actor

    async def _unreadable(self, execution_id: int, stored: StoredExecution, exc: StateCorrupted) -> None:
        """An execution whose hash cannot be worked with (edited by hand): a running one cannot go on and is marked
        failed, visibly, rather than left "running" with nobody driving it; anything else is refused (409). Not
        taken over first: a takeover bumps an epoch that may be what is unreadable; the failing write is fenced on
        the epoch as found instead (none when it is not a number: then no owner can write it any more either)."""
        if stored.fields.get("status") != Status.RUNNING.value:
            raise exc
        epoch = stored.fields.get("epoch", "")
        await self._fail_corrupted(
            execution_id,
            stored.fields,
            int(epoch) if epoch.isascii() and epoch.isdigit() else None,
            exc.message,
            what="hash unreadable",
        )

    async def _fail_corrupted(
        self,
        execution_id: int,
        fields: dict[str, str],
        epoch: int | None,
        why: str,
        *,
        what: str = "snapshot unreadable",
    ) -> None:
        log.error("execution %s: %s, marking it failed: %s", execution_id, what, why)
        now = self.ctx.clock.now_ms()
        error = {"element": None, "error": f"state corrupted: {why}", "type": "StateCorrupted", "attempts": 0}
        detail = {"from": "running", "to": "failed", "by": "system", **error}
        retention = self.ctx.settings.retention_ms(fields.get("tenant", ""))
        commit = Commit(
            execution={"status": Status.FAILED.value, "stoppedAt": iso(now), "error": json.dumps(error)},
            state={"active": 0},
            log=[LogRecord(now, "failed", None, detail)],
            expire_ms=retention,
            index=indexes.status_change(
                self.ctx.store.keys, execution_id, fields, Status.RUNNING.value, Status.FAILED.value, now + retention
            ),
        )
        commit.index += search.written(self.ctx.store.keys, execution_id, fields, stored_fields(commit.execution))
        await self.ctx.store.commit(execution_id, commit, epoch=epoch, expect=Status.RUNNING.value)
        self.ctx.metrics.finished.labels(fields.get("processKey", ""), Status.FAILED.value).inc()
        await self.ctx.store.deactivate(execution_id)

    async def drain_all(self, timeout_s: float) -> None:
        """Ask every actor to checkpoint and stop (Drain), then wait for them, `timeout_s` at most; the ones still
        going then are stopped without writing."""
        tasks = list(self._tasks)
        for actor in list(self._actors.values()):
            if not actor.mailbox.closed:
                actor.mailbox.put_internal(Drain())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        await self.stop_all()

    async def stop_all(self, timeout_s: float = 10.0) -> None:
        """Stop every actor without writing: their executions stay where the last checkpoint left them."""
        tasks = list(self._tasks)
        actors = list(self._actors.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                log.error("actor task %s did not stop within %ss", task.get_name(), timeout_s)
        # only those it stopped: an actor spawned while it waited (a start, a take-back) runs on, and must stay
        # known, or the reconciler would take its execution back and two actors would drive it
        for actor in actors:
            if self._actors.get(actor.execution_id) is actor:
                del self._actors[actor.execution_id]


def _never_ran(actor: ExecutionActor) -> None:
    """An actor whose task was cancelled before its first step: stop_all (the heartbeat watchdog) ran between
    the activation that spawned it and its first turn, so `run` and its cleanup never ran. Do that cleanup here,
    or a request already in its mailbox waits for an answer that never comes (30 s, then 503: in a chaos kill
    run, a signal unanswered after 30 s of client retries). The requester sees the actor stopped and asks again."""
    actor.mailbox.close()
    actor.stopped.set()
    while (message := actor.mailbox.get_nowait()) is not None:
        if isinstance(message, Request) and not message.reply.done():
            message.reply.set_exception(Unavailable(f"execution {actor.execution_id}: its actor stopped; try again"))


def _placeholder(thread_key: str) -> ExecutionState:
    """State for a paused execution whose snapshot is unreadable: resume re-reads and refuses, cancel works."""
    return ExecutionState(stack=[], memory=Memory(), threads={thread_key: ThreadProgress(thread_key, 0, 0, 0)})
