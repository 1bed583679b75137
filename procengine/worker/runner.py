"""One worker process: fetch a queue's tasks (a long poll), run each with its handler, complete or fail it.

Up to `concurrency` tasks run at once; a fetch asks for as many as there are free slots (while tasks run, for a
quarter of `concurrency` at least, so that a busy worker does not send a request per task). A task's lock is
extended while its handler runs (every third of `lock_ms`), so a slow handler keeps it. A handler's exception
fails the attempt with the exception's class name as its type (what a `catch` matches) and `retryable` as the
exception says (`retryable = False` on its class fails the element at once), as in the engine.

Stopping (`stop` set, SIGTERM in `procengine worker`): no new fetch; the tasks in flight get `grace_s` to finish
and be completed; those still running then are cut short and released (their locks shortened to the least the
API takes, so another worker gets them within a second), never completed or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Sequence
from typing import Any, Final

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from procengine.api.task_views import FetchedTask
from procengine.client import AsyncClient, Conflict, ProcEngineClientError
from procengine.runtime.tracing import extract
from procengine.tasks import HandlerRegistry, TaskContext

__all__ = ["Worker"]

log = logging.getLogger(__name__)

IDLE_POLL_MS: Final = 1000
"""With a wait shorter than this (0: no long poll), an empty fetch is followed by a pause of this long."""
RELEASE_LOCK_MS: Final = 1000
"""A released task's lock is cut to this (the least `extend` takes): it is offered again after it."""


class Worker:
    def __init__(
        self,
        client: AsyncClient,
        queues: Sequence[str],
        handlers: HandlerRegistry,
        *,
        concurrency: int = 16,
        worker_id: str | None = None,
        lock_ms: int = 30_000,
        wait_ms: int = 10_000,
        grace_s: float = 30.0,
        tracer: Tracer | None = None,
    ) -> None:
        self.client = client
        self.tracer = tracer
        """Tracing on (`procengine worker` with OTEL_* set): each task's handler runs in a span under the attempt's
        (the task's `traceContext`), so that it and what the handler calls join the execution's trace."""
        self.queues = list(queues)
        self.handlers = handlers
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.lock_ms = lock_ms
        self.wait_ms = wait_ms
        self.grace_s = grace_s
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._batch = max(1, concurrency // 4)
        """While tasks run, a fetch waits for this many free slots: fewer requests per task under load."""
        self.completed = 0
        self.failed = 0

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def run(self, stop: asyncio.Event) -> None:
        """Take and run tasks until `stop` is set, then finish or release those in flight."""
        log.info("worker %s: serving queues %s, %d at a time", self.worker_id, ", ".join(self.queues), self.concurrency)
        fetching = asyncio.ensure_future(self._fetch_forever())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([fetching, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            fetching.cancel()
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetching
            await self._wind_down()

    async def _fetch_forever(self) -> None:
        backoff = 0.05
        while True:
            await self._slots.acquire()  # at least one free slot before asking
            free = 1
            while free < self.concurrency and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            while free < self._batch and self._running:  # busy: ask for a few at once, not one per request
                await self._slots.acquire()
                free += 1
            try:
                answer = await self.client.fetch_tasks(
                    self.queues, worker_id=self.worker_id, max=free, lock_ms=self.lock_ms, wait_ms=self.wait_ms
                )
                backoff = 0.05
            except ProcEngineClientError as exc:
                for _ in range(free):
                    self._slots.release()
                log.warning("worker %s: fetch failed (%s); again in %.2f s", self.worker_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except BaseException:
                for _ in range(free):
                    self._slots.release()
                raise
            for _ in range(free - len(answer.tasks)):
                self._slots.release()
            if not answer.tasks and self.wait_ms < IDLE_POLL_MS:  # no long poll: do not ask back to back
                await asyncio.sleep(IDLE_POLL_MS / 1000)
            for task in answer.tasks:
                job = asyncio.create_task(self._serve(task), name=f"task-{task.taskId}")
                self._running[task.taskId] = job
                job.add_done_callback(functools.partial(self._ended, task.taskId))

    def _ended(self, task_id: str, _: object = None) -> None:
        self._running.pop(task_id, None)
        self._slots.release()

    async def _wind_down(self) -> None:
        running = list(self._running.values())
        if running:
            log.info("worker %s: stopping; %d task(s) in flight get %.0f s", self.worker_id, len(running), self.grace_s)
            await asyncio.wait(running, timeout=self.grace_s)
        for job in list(self._running.values()):
            job.cancel()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=10)
        log.info("worker %s: stopped (%d completed, %d failed)", self.worker_id, self.completed, self.failed)

    async def _serve(self, task: FetchedTask) -> None:
        try:
            await self._run_task(task)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(task))
            raise
        except Exception:  # one task, whatever happened, never stops the worker
            log.exception("worker %s: task %s: could not be served", self.worker_id, task.taskId)

    async def _run_task(self, task: FetchedTask) -> None:
        handler = self.handlers.get(task.handler)
        if handler is None:
            await self._fail(task, f"unknown handler {task.handler!r}", "UnknownHandler", True)
            return
        order = int(task.taskId.split(".")[1])
        context = TaskContext(task.executionId, task.elementKey, task.attempt, order)
        keeping = asyncio.ensure_future(self._keep_lock(task))
        try:
            output = await self._traced(task, handler(task.input, context))
        except Exception as exc:
            retryable = getattr(exc, "retryable", True) is not False
            await self._fail(task, str(exc) or type(exc).__name__, type(exc).__name__, retryable)
            return
        finally:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        try:
            await self.client.complete_task(task.taskId, task.lockToken, output)
            self.completed += 1
        except Conflict as exc:
            log.warning("worker %s: task %s: complete refused (%s): %s", self.worker_id, task.taskId, exc.code, exc)

    async def _traced(self, task: FetchedTask, running: Awaitable[Any]) -> Any:
        """The handler's answer, in a span of its own under the attempt's when tracing is on."""
        if self.tracer is None:
            return await running
        attributes: dict[str, str | int] = {
            "procengine.execution.id": task.executionId,
            "procengine.element.key": task.elementKey,
            "procengine.task.attempt": task.attempt,
            "procengine.task.queue": task.queue,
            "procengine.worker.id": self.worker_id,
        }
        with self.tracer.start_as_current_span(
            f"work {task.handler}", context=extract(task.traceContext), kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            try:
                return await running
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise

    async def _fail(self, task: FetchedTask, error: str, kind: str, retryable: bool) -> None:
        try:
            await self.client.fail_task(task.taskId, task.lockToken, error[:10_000], type=kind, retryable=retryable)
            self.failed += 1
        except Conflict as exc:
            log.warning("worker %s: task %s: fail refused (%s): %s", self.worker_id, task.taskId, exc.code, exc)

    async def _keep_lock(self, task: FetchedTask) -> None:
        while True:
            await asyncio.sleep(self.lock_ms / 3000)
            try:
                await self.client.extend_task(task.taskId, task.lockToken, self.lock_ms)
            except Conflict as exc:  # revoked or lost: the handler's result will be refused; nothing to keep
                log.info("worker %s: task %s: lock not kept (%s)", self.worker_id, task.taskId, exc.code)
                return
            except ProcEngineClientError as exc:
                log.warning("worker %s: task %s: extend failed (%s)", self.worker_id, task.taskId, exc)

    async def _release(self, task: FetchedTask) -> None:
        with contextlib.suppress(ProcEngineClientError):
            await self.client.extend_task(task.taskId, task.lockToken, RELEASE_LOCK_MS)
