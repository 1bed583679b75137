"""External tasks, the engine's side: an attempt of a task element with a `queue` is offered on that queue of the
tenant (store/task_queues.py) and its runner waits for a worker's result instead of calling a handler.

It is the same attempt as an in-process one: `run_attempt` calls `ExternalTasks.handler(...)` as it calls a
handler, under the element's `timeoutMs`, and the outcome goes to the interpreter the same way, so retries, backoff,
`catch` and `onExhausted` need nothing of their own. A worker's failure fails the attempt with the worker's error
type (`ExternalTaskFailed.error_type`) and `retryable`.

Cut short (a pause past its grace, a cancel, a timeout, a failing sibling lane), the attempt revokes its task: the
worker's lock is void from then on (a late complete is refused with TASK_LOCK_REVOKED) and a re-run of the same
attempt offers it anew. The task's id names the attempt, so a node that adopts the execution finds the task a
worker may still hold (or has settled: its result is taken, not done again).

A worker's result reaches the runner through `settled(...)`: called by the node that took the complete (at once on
that node; through the `tasks:settled` channel on the others). A message lost with a dropped subscription is made
up for by a look at the task every `RECHECK_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from procengine.engine.outcomes import RunTask
from procengine.errors import ExternalTaskFailed
from procengine.runtime.clock import Clock
from procengine.runtime.tracing import inject
from procengine.store.task_queues import Settled, TaskQueueStore, TaskRecord
from procengine.tasks.registry import Handler, TaskContext

__all__ = ["ExternalTasks", "task_id_of"]

log = logging.getLogger(__name__)

RECHECK_S: Final = 30.0
"""How often a waiting runner looks at its task itself, in case a `settled` message was lost."""


def task_id_of(context: TaskContext) -> str:
    """The id of the task of one attempt of one run of an element: the same for every re-run of that attempt."""
    return f"{context.execution_id}.{context.execution_order}.{context.attempt}"


class _Waiter:
    """One runner waiting for its task: woken by `settled`, with the result when the node that took it hands it over."""

    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.result: Settled | None = None


class ExternalTasks:
    """The node's runners waiting for workers (one per node, shared by its actors)."""

    def __init__(self, store: TaskQueueStore, clock: Clock, node_id: str) -> None:
        self.store = store
        self.clock = clock
        self.node_id = node_id
        self._waiting: dict[tuple[str, str], _Waiter] = {}
        self.offered = 0
        """Attempts offered by this node (tests and metrics)."""
        self.leaving = False
        """Set when the node stops its actors to leave: their tasks stay with their workers (not revoked), and the
        node that adopts an execution finds its task held, or settled, and waits for it or takes its result."""

    def waiting(self) -> int:
        return len(self._waiting)

    def waits_here(self, tenant: str, task_id: str) -> bool:
        """Whether the task's runner waits on this node (a complete taken here can hand it the result)."""
        return (tenant, task_id) in self._waiting

    def settled(self, tenant: str, task_id: str, result: Settled | None = None) -> bool:
        """A worker settled the task: its runner, if it waits on this node, is woken, with `result` if the caller
        took it for it (`task_settle.lua` with `take`), else to take it itself. False: no runner waits here."""
        waiter = self._waiting.get((tenant, task_id))
        if waiter is None:
            return False
        if result is not None:
            waiter.result = result
        waiter.event.set()
        return True

    def handler(self, tenant: str, step: RunTask) -> Handler:
        """The attempt as a handler `run_attempt` can call."""

        async def external(task_input: dict[str, Any], context: TaskContext) -> Any:
            return await self._run(tenant, step, task_input, context)

        return external

    async def _run(self, tenant: str, step: RunTask, task_input: dict[str, Any], context: TaskContext) -> Any:
        assert step.queue is not None
        task_id = task_id_of(context)
        key = (tenant, task_id)
        waiter = _Waiter()
        self._waiting[key] = waiter  # before the offer: a worker may settle it before the offer's answer is read
        try:
            record = TaskRecord(
                task_id,
                step.queue,
                context.execution_id,
                context.element_key,
                context.attempt,
                step.handler,
                task_input,
                context.idempotency_key,
                self.node_id,
                inject(),  # the attempt's span is current here when tracing is on: the worker's spans go under it
            )
            result = await self.store.offer(tenant, record)
            self.offered += 1
            while result is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_S):
                        await waiter.event.wait()
                waiter.event.clear()
                result = waiter.result or await self.store.take(tenant, task_id)
        except asyncio.CancelledError:
            # cut short: the worker's lock is void from now on (shielded: the revoke is written even so)
            await asyncio.shield(self._revoke(tenant, step.queue, task_id))
            raise
        finally:
            if self._waiting.get(key) is waiter:
                del self._waiting[key]
        return _outcome(result)

    async def _revoke(self, tenant: str, queue: str, task_id: str) -> None:
        if self.leaving:
            return
        try:
            said = await self.store.revoke(tenant, queue, task_id, self.clock.now_ms())
        except Exception as exc:  # the store is away: the lock expires, and the re-run finds the task
            log.warning("task %s: could not revoke it: %s", task_id, exc)
            return
        if said != "ok":
            log.info("task %s: settled by its worker before it was revoked (%s): kept for its re-run", task_id, said)


def _outcome(result: Settled) -> Any:
    if result.status == "completed":
        return result.output
    raise ExternalTaskFailed(result.error, result.type, result.retryable)
