"""The node's actors: activated from Redis when a request needs one, passivated when idle.

The registry owns every actor task: it keeps them in a set, and `stop_all` cancels and awaits them.
Activation takes ownership with takeover.lua (bumping the fencing epoch), so an actor that another
node (or an earlier actor of ours) still runs can no longer write.
"""

from __future__ import annotations

import asyncio
import logging

from procengine.actors.actor import ActorContext, ExecutionActor
from procengine.actors.catalog import Catalog
from procengine.actors.ownership import Ownership
from procengine.actors.snapshot import load_state
from procengine.engine.state import ExecutionState, Memory, ThreadProgress
from procengine.errors import NotFound, StateCorrupted, Unavailable
from procengine.statuses import Status
from procengine.store.executions import LogRecord, Outcome, StoredExecution

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, ctx: ActorContext, catalog: Catalog, ownership: Ownership) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.ownership = ownership
        self._actors: dict[int, ExecutionActor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[int, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._actors)

    def get(self, execution_id: int) -> ExecutionActor | None:
        """The live actor of an execution on this node (one that has closed its mailbox is not live)."""
        actor = self._actors.get(execution_id)
        if actor is not None and actor.mailbox.closed:
            del self._actors[execution_id]
            return None
        return actor

    def spawn(self, actor: ExecutionActor) -> None:
        self._actors[actor.execution_id] = actor
        task = asyncio.create_task(actor.run(self._passivate), name=f"actor-{actor.execution_id}")
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if self._actors.get(actor.execution_id) is actor:
                del self._actors[actor.execution_id]

        task.add_done_callback(done)

    def _passivate(self, actor: ExecutionActor) -> bool:
        """Called by an idle paused actor; synchronous, so no message can slip in between."""
        if actor.mailbox.statistics().queued:
            return False
        actor.mailbox.close()
        if self._actors.get(actor.execution_id) is actor:
            del self._actors[actor.execution_id]
        return True

    async def activate(self, execution_id: int, tenant: str | None) -> ExecutionActor | None:
        """The live actor of an execution, activating it here if needed; None when it is final.

        `tenant` None is the system (reconciler) asking; otherwise another tenant's execution is NotFound.
        """
        actor = self.get(execution_id)
        if actor is not None and (tenant is None or actor.tenant == tenant):
            return actor
        lock = self._locks.setdefault(execution_id, asyncio.Lock())
        try:
            async with lock:
                for _ in range(5):
                    actor = self.get(execution_id)
                    if actor is not None:
                        break
                    stored = await self.ctx.store.load(execution_id)
                    if stored is None or (tenant is not None and stored.fields.get("tenant") != tenant):
                        raise NotFound(f"execution {execution_id} not found")
                    if Status(stored.status).is_final:
                        return None
                    actor = await self._take(execution_id, stored)
                    if actor is not None:
                        break
                else:
                    raise Unavailable(f"execution {execution_id} is changing hands; try again")
        finally:
            if not lock.locked():
                self._locks.pop(execution_id, None)
        if tenant is not None and actor.tenant != tenant:
            raise NotFound(f"execution {execution_id} not found")
        return actor

    async def _take(self, execution_id: int, stored: StoredExecution) -> ExecutionActor | None:
        owner = stored.fields.get("owner", "")
        if owner and owner != self.ctx.node_id and await self.ownership.alive({owner}):
            raise Unavailable(f"execution {execution_id} is owned by node {owner}")
        now = self.ctx.clock.now_ms()
        adopted = LogRecord(now, "adopted", None, {"from": owner, "to": self.ctx.node_id, "by": "system"})
        result = await self.ctx.store.takeover(
            execution_id,
            owner=self.ctx.node_id,
            expected_owner=owner,
            expected_epoch=stored.epoch,
            log=adopted if owner else None,
        )
        if result.outcome is Outcome.MISSING:
            raise NotFound(f"execution {execution_id} not found")
        if result.outcome is Outcome.CONFLICT:
            return None
        tenant = stored.fields["tenant"]
        process = await self.catalog.compiled(tenant, int(stored.fields["processID"]))
        status = Status(result.status)
        try:
            state = load_state(stored, process)
        except StateCorrupted as exc:
            if status is Status.RUNNING:
                log.error("execution %s: cannot adopt, %s", execution_id, exc.message)
                raise
            state = _placeholder(process.threads[0].key if process.threads else "")
        actor = ExecutionActor(
            execution_id=execution_id,
            tenant=tenant,
            process=process,
            ctx=self.ctx,
            status=status,
            epoch=result.epoch,
            state=state,
            fields=stored.fields,
        )
        self.spawn(actor)
        log.info("execution %s: activated on node %s at epoch %s", execution_id, self.ctx.node_id, result.epoch)
        return actor

    async def stop_all(self) -> None:
        """Stop every actor without writing: their executions stay where the last checkpoint left them."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._actors.clear()


def _placeholder(thread_key: str) -> ExecutionState:
    """State for a paused execution whose snapshot is unreadable: resume re-reads and refuses, cancel works."""
    return ExecutionState(stack=[], memory=Memory(), threads={thread_key: ThreadProgress(thread_key, 0, 0, 0)})
