"""`Client`: the same API for code without an event loop (scripts, notebooks, threads), blocking.

It runs an `AsyncClient` on an event loop of its own, in a daemon thread, and waits for each call. One loop
for the client's whole life keeps its connection pool (and so keep-alive) across calls, which `asyncio.run`
per call would throw away, and it works whether or not the calling thread runs a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from procengine.api.process_views import ExecutionCounts, ProcessDeleted
from procengine.api.views import (
    BatchStartResult,
    BreakpointsResult,
    CancelResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointView,
    ElementsView,
    ExecutionList,
    ExecutionStatusView,
    ExecutionSummary,
    LogEntry,
    LogView,
    MigrateResult,
    PauseResult,
    ProcessList,
    ProcessSummary,
    ProcessView,
    ResumeResult,
    RetryResult,
    RewindResult,
    SignalResult,
    StartResult,
    StateView,
    StatusEvent,
    StatusName,
    StatusTable,
    SteppedResult,
    StepResult,
    VariablesResult,
)
from procengine.client.async_client import AsyncClient
from procengine.client.bulk import Bulk
from procengine.client.repair import NO_OUTPUT
from procengine.client.schedules import Schedules
from procengine.client.streams import EventStream
from procengine.client.tasks import Tasks

__all__ = ["BlockingEventStream", "Client"]

T = TypeVar("T")


class Client(Bulk, Tasks, Schedules):
    """A blocking client of one procengine server; the arguments are `AsyncClient`'s. Use it as a context
    manager, or call `close()` (it holds a thread and a connection pool). Safe to share between threads:
    every call runs on the client's own loop."""

    _async: AsyncClient

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        reconnects: int = 3,
        stream_idle_timeout: float = 60.0,
    ) -> None:
        self._async = AsyncClient(
            url,
            token,
            timeout=timeout,
            retries=retries,
            max_retry_wait=max_retry_wait,
            reconnects=reconnects,
            stream_idle_timeout=stream_idle_timeout,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="procengine-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        return self._async.url

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and stop the client's thread."""
        if self._closed:
            return
        try:
            self._run(self._async.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncClient", "Client", 1)

    # --- processes -------------------------------------------------------------------------------

    def register(
        self, definition: Mapping[str, Any] | str | bytes, *, content_type: str | None = None
    ) -> ProcessSummary:
        return self._run(self._async.register(definition, content_type=content_type))

    def processes(self) -> ProcessList:
        return self._run(self._async.processes())

    def process(self, process_id: int) -> ProcessView:
        return self._run(self._async.process(process_id))

    def process_counts(self, process_id: int) -> ExecutionCounts:
        return self._run(self._async.process_counts(process_id))

    def deprecate_process(self, process_id: int, *, deprecated: bool = True, reason: str | None = None) -> ProcessView:
        return self._run(self._async.deprecate_process(process_id, deprecated=deprecated, reason=reason))

    def undeprecate_process(self, process_id: int, *, reason: str | None = None) -> ProcessView:
        return self._run(self._async.undeprecate_process(process_id, reason=reason))

    def delete_process(self, process_id: int, *, reason: str | None = None) -> ProcessDeleted:
        return self._run(self._async.delete_process(process_id, reason=reason))

    # --- executions ------------------------------------------------------------------------------

    def start(
        self,
        process_key: str | None = None,
        *,
        process_id: int | None = None,
        variables: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        pause_before: Sequence[str | Mapping[str, str]] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> StartResult:
        return self._run(
            self._async.start(
                process_key,
                process_id=process_id,
                variables=variables,
                idempotency_key=idempotency_key,
                pause_before=pause_before,
                attributes=attributes,
            )
        )

    def start_many(
        self,
        starts: Iterable[Mapping[str, Any]],
        *,
        process_key: str | None = None,
        process_id: int | None = None,
    ) -> BatchStartResult:
        return self._run(self._async.start_many(starts, process_key=process_key, process_id=process_id))

    def executions(
        self,
        *,
        status: StatusName | None = None,
        process_id: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        process_key: str | None = None,
        started_after: str | datetime | None = None,
        started_before: str | datetime | None = None,
        error_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ExecutionList:
        return self._run(
            self._async.executions(
                status=status,
                process_id=process_id,
                limit=limit,
                cursor=cursor,
                process_key=process_key,
                started_after=started_after,
                started_before=started_before,
                error_type=error_type,
                attributes=attributes,
            )
        )

    def iter_executions(
        self,
        *,
        status: StatusName | None = None,
        process_id: int | None = None,
        page_size: int = 100,
        process_key: str | None = None,
        started_after: str | datetime | None = None,
        started_before: str | datetime | None = None,
        error_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[ExecutionSummary]:
        return self._iterate(
            self._async.iter_executions(
                status=status,
                process_id=process_id,
                page_size=page_size,
                process_key=process_key,
                started_after=started_after,
                started_before=started_before,
                error_type=error_type,
                attributes=attributes,
            )
        )

    def status(self, execution_id: int) -> ExecutionStatusView:
        return self._run(self._async.status(execution_id))

    def pause(self, execution_id: int, reason: str | None = None) -> PauseResult:
        return self._run(self._async.pause(execution_id, reason))

    def resume(self, execution_id: int, reason: str | None = None) -> ResumeResult:
        return self._run(self._async.resume(execution_id, reason))

    def cancel(self, execution_id: int, reason: str | None = None) -> CancelResult:
        return self._run(self._async.cancel(execution_id, reason))

    def retry(
        self,
        execution_id: int,
        *,
        variables: Mapping[str, Any] | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RetryResult:
        return self._run(
            self._async.retry(execution_id, variables=variables, reason=reason, idempotency_key=idempotency_key)
        )

    def edit_variables(
        self, execution_id: int, patch: Mapping[str, Any], *, reason: str | None = None
    ) -> VariablesResult:
        return self._run(self._async.edit_variables(execution_id, patch, reason=reason))

    def fork(
        self,
        execution_id: int,
        checkpoint: int | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        paused: bool = False,
        reason: str | None = None,
    ) -> StartResult:
        return self._run(self._async.fork(execution_id, checkpoint, variables=variables, paused=paused, reason=reason))

    def rewind(
        self,
        execution_id: int,
        checkpoint: int,
        *,
        variables: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> RewindResult:
        return self._run(self._async.rewind(execution_id, checkpoint, variables=variables, reason=reason))

    def migrate(
        self,
        execution_id: int,
        version: int,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> MigrateResult:
        return self._run(self._async.migrate(execution_id, version, mapping, dry_run, reason))

    def step(self, execution_id: int, *, lane: str | None = None, reason: str | None = None) -> SteppedResult:
        return self._run(self._async.step(execution_id, lane=lane, reason=reason))

    def set_breakpoints(
        self, execution_id: int, pause_before: Sequence[str | Mapping[str, str]], *, reason: str | None = None
    ) -> BreakpointsResult:
        return self._run(self._async.set_breakpoints(execution_id, pause_before, reason=reason))

    def retry_element(
        self, execution_id: int, element: str, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        return self._run(self._async.retry_element(execution_id, element, lane=lane, reason=reason))

    def skip(
        self,
        execution_id: int,
        element: str,
        *,
        output: Any = NO_OUTPUT,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        return self._run(self._async.skip(execution_id, element, output=output, lane=lane, reason=reason))

    def complete(
        self, execution_id: int, element: str, output: Any = None, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        return self._run(self._async.complete(execution_id, element, output, lane=lane, reason=reason))

    def fail(
        self,
        execution_id: int,
        element: str,
        error: str,
        *,
        type: str = "Error",
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        return self._run(self._async.fail(execution_id, element, error, type=type, lane=lane, reason=reason))

    def change_policy(
        self,
        execution_id: int,
        element: str,
        *,
        retry: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        return self._run(
            self._async.change_policy(
                execution_id, element, retry=retry, timeout_ms=timeout_ms, lane=lane, reason=reason
            )
        )

    def move(self, execution_id: int, lane: str, before: str, *, reason: str | None = None) -> StepResult:
        return self._run(self._async.move(execution_id, lane, before, reason=reason))

    def run_now(
        self, execution_id: int, element: str, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        return self._run(self._async.run_now(execution_id, element, lane=lane, reason=reason))

    def signal(
        self, execution_id: int, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> SignalResult:
        return self._run(self._async.signal(execution_id, name, payload, idempotency_key=idempotency_key))

    def log(self, execution_id: int) -> LogView:
        return self._run(self._async.log(execution_id))

    def elements(self, execution_id: int, *, limit: int | None = None, cursor: str | None = None) -> ElementsView:
        return self._run(self._async.elements(execution_id, limit=limit, cursor=cursor))

    def state(self, execution_id: int) -> StateView:
        return self._run(self._async.state(execution_id))

    def checkpoints(self, execution_id: int, *, limit: int | None = None, cursor: str | None = None) -> CheckpointList:
        return self._run(self._async.checkpoints(execution_id, limit=limit, cursor=cursor))

    def checkpoint(self, execution_id: int, seq: int) -> CheckpointView:
        return self._run(self._async.checkpoint(execution_id, seq))

    def checkpoint_diff(self, execution_id: int, a: int, b: int) -> CheckpointDiff:
        return self._run(self._async.checkpoint_diff(execution_id, a, b))

    def statuses(self) -> StatusTable:
        return self._run(self._async.statuses())

    # --- event streams ---------------------------------------------------------------------------

    def events(self, execution_id: int, after: str | None = None) -> BlockingEventStream[LogEntry]:
        """The execution's log entries as they are written; ends after the final transition. `with` it to
        be connected before going on."""
        return BlockingEventStream(self, self._async.events(execution_id, after))

    def status_events(self, after: str | None = None) -> BlockingEventStream[StatusEvent]:
        """The tenant's status changes from when it connects; it does not end (break out of it)."""
        return BlockingEventStream(self, self._async.status_events(after))

    # --- outside the base path -------------------------------------------------------------------

    def health(self) -> str:
        return self._run(self._async.health())

    def ready(self) -> str:
        return self._run(self._async.ready())

    def openapi(self) -> dict[str, Any]:
        return self._run(self._async.openapi())

    def metrics(self) -> str:
        return self._run(self._async.metrics())

    # --- the bridge ------------------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the client's loop and wait for it; an interrupt (Ctrl-C) cancels it there."""
        if self._closed:
            coroutine.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """An async iterator of the client's loop as a blocking one; leaving it early closes it (and its
        connection) there."""
        try:
            while True:
                found = self._run(_next(items))
                if not found:
                    return
                yield found[0]
        finally:
            if not self._closed:
                self._run(_close(items))


async def _next(items: AsyncIterator[T]) -> list[T]:
    """[the next item], or [] at the end: StopAsyncIteration must not cross into a future."""
    try:
        return [await anext(items)]
    except StopAsyncIteration:
        return []


async def _close(items: AsyncIterator[Any]) -> None:
    closer = getattr(items, "aclose", None)
    if closer is None:
        return
    # RuntimeError: still running (a cancelled step has not unwound yet); it closes itself when it has
    with contextlib.suppress(RuntimeError):
        await closer()


class BlockingEventStream(Generic[T]):
    """An `EventStream` of the client's loop, for blocking code: iterate it; `with` it to be connected
    before going on (and closed after). Leaving a `for` loop early closes it too."""

    def __init__(self, client: Client, stream: EventStream[T]) -> None:
        self._client = client
        self._stream = stream

    def open(self) -> None:
        """Wait until the stream is connected (or raise what prevents it)."""
        self._client._run(self._stream.open())

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        return self._client._iterate(self._stream)

    def close(self) -> None:
        if not self._client.closed:
            self._client._run(_close(self._stream))
