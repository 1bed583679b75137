"""Many starts in one request (`POST .../executions/processes/batch`): each is the single start of `Node` (the same
checks, tenancy, idempotency and creation commit), with the Redis work of the whole batch in a few pipelines
rather than a few round trips per start.

The round trips of a batch, whatever its size: the rate limit (1), the idempotency claims (1), the ids (1), the
claims bound to the ids and the active set (2, side by side), the creation commits (each its own commit.lua
call, so each creation is atomic and fenced as a single start's; the group-commit batcher sends them 256 to a
pipeline), and the status events and the keys made permanent (2, side by side). A definition is read once per
process named. A start that fails costs its own undo; a key held before the batch costs two more round trips for
all of them (`IdempotentStarts.existing_many`), and one still being started elsewhere is answered by the single
start's path, which waits for it.

Each start has its outcome: `started`, `existing` (its key named an execution started before, or an earlier item of
the batch with the same key) or `failed`, with the contract's code and the status the start would have had alone.
A failure of the batch as a whole (the node is draining, Redis is down before anything was created) is the
request's error, and nothing was started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, Protocol

from procengine.actors.actor import ExecutionActor
from procengine.api.service import Caller
from procengine.api.views import BatchItemError, BatchStartItem, BatchStartResult, StartRequest, StartResult
from procengine.engine.breakpoints import Breakpoint
from procengine.engine.compiled import CompiledProcess
from procengine.engine.definitions import WaitSignalElement
from procengine.engine.interpreter import Interpreter
from procengine.engine.outcomes import AwaitSignal, ElementEvent
from procengine.engine.state import ExecutionState
from procengine.errors import NotReplicated, ProcEngineError, TooManyRequests, Unavailable
from procengine.node.catalog import Catalog
from procengine.node.idempotency import IdempotentStarts
from procengine.node.registry import Registry
from procengine.runtime.metrics import Metrics
from procengine.store.executions import NEW, Commit, ExecutionStore, Outcome, WriteResult
from procengine.store.health import StoreHealth
from procengine.store.indexes import Indexed
from procengine.store.processes import StoredProcess

__all__ = ["CHUNK", "FALLBACK_CONCURRENCY", "BatchStarts", "Starter", "begun_waits"]

log = logging.getLogger(__name__)

FALLBACK_CONCURRENCY: Final = 32
"""Starts of a batch that go the single start's way at once (keys another start is still creating)."""
CHUNK: Final = 128
"""Starts built, submitted or spawned before the batch lets the event loop do other work."""


class Starter(Protocol):
    """What a batch needs of the node (`Node`): its parts, and the single start's own steps."""

    store: ExecutionStore
    catalog: Catalog
    idempotent: IdempotentStarts
    health: StoreHealth
    registry: Registry
    metrics: Metrics
    _starting: set[int]

    async def start_execution(self, caller: Caller, request: StartRequest) -> tuple[StartResult, bool]: ...

    async def _admit_start(self, tenant: str, starts: int = 1) -> int: ...

    def _check_variables(self, variables: dict[str, Any], process: CompiledProcess) -> None: ...

    def _start_breakpoints(self, request: StartRequest, process: CompiledProcess) -> tuple[Breakpoint, ...]: ...

    def _start_attributes(self, request: StartRequest, process: CompiledProcess) -> dict[str, list[Any]]: ...

    def _new_execution(
        self,
        caller: Caller,
        execution_id: int,
        first_thread: int,
        stored: StoredProcess,
        process: CompiledProcess,
        request: StartRequest,
        parent: int | None,
        depth: int,
        child_key: str | None = None,
    ) -> tuple[Commit, ExecutionActor]: ...

    async def _undo_start(self, at: Indexed, idempotency_key: str | None, *, child: bool = False) -> None: ...


@dataclass(slots=True)
class _Start:
    """One item of the batch on its way."""

    index: int
    request: StartRequest
    stored: StoredProcess | None = None
    process: CompiledProcess | None = None
    claim: str | None = None
    execution_id: int = 0
    first_thread: int = 0
    answer: BatchStartItem | None = None

    def fail(self, exc: ProcEngineError) -> None:
        self.answer = failed(self.index, exc, self.execution_id or None)


class BatchStarts:
    def __init__(self, node: Starter) -> None:
        self.node = node
        self._creating: set[asyncio.Future[None]] = set()
        """Creations under way (each shielded from its request's cancellation): owned here until done."""

    async def start(self, caller: Caller, requests: list[StartRequest]) -> BatchStartResult:
        """Start each of `requests`; an outcome for each, in their order."""
        starts = [_Start(i, request) for i, request in enumerate(requests)]
        await self._admit(caller, starts)
        await self._resolve(caller, [s for s in starts if s.answer is None])
        first_with_key: dict[str, _Start] = {}
        repeats: list[tuple[_Start, _Start]] = []  # (a later item, the first with its key)
        keyed: list[_Start] = []
        for start in starts:
            key = start.request.idempotencyKey
            if start.answer is not None or key is None:
                continue
            if key in first_with_key:
                repeats.append((start, first_with_key[key]))
            else:
                first_with_key[key] = start
                keyed.append(start)
        held: list[_Start] = []
        if keyed:
            tokens = await self.node.idempotent.claim_many(caller.tenant, [_key(s) for s in keyed])
            for start, token in zip(keyed, tokens, strict=True):
                if token is None:
                    held.append(start)
                start.claim = token
        later = {id(s) for s in held} | {id(s) for s, _ in repeats}  # answered after the creations
        # Once ids are taken the batch is carried through even if the request is cancelled (the client gone, the
        # store watch): a half-created batch would leave claims bound to ids and executions without actors.
        creating = asyncio.ensure_future(
            self._create(caller, [s for s in starts if s.answer is None and id(s) not in later])
        )
        self._creating.add(creating)
        creating.add_done_callback(self._creating.discard)
        try:
            await asyncio.shield(creating)
        except asyncio.CancelledError:
            creating.add_done_callback(_log_failure)  # nobody hears of it otherwise
            raise
        await self._answer_held(caller, held)
        for start, first in repeats:
            start.answer = _repeat(start.index, first)
        items = [s.answer for s in starts if s.answer is not None]
        return BatchStartResult(
            items=items,
            started=sum(item.outcome == "started" for item in items),
            existing=sum(item.outcome == "existing" for item in items),
            failed=sum(item.outcome == "failed" for item in items),
        )

    async def _admit(self, caller: Caller, starts: list[_Start]) -> None:
        """The tenant's rate limit, counted once for the batch: the starts past it fail with 429."""
        try:
            admitted = await self.node._admit_start(caller.tenant, len(starts))
        except TooManyRequests as exc:
            admitted, refusal = 0, exc
        else:
            refusal = TooManyRequests(
                f"tenant {caller.tenant!r} may start no more executions this second (--max-starts-per-second); "
                "try again"
            )
        for start in starts[admitted:]:
            start.fail(refusal)

    async def _resolve(self, caller: Caller, starts: list[_Start]) -> None:
        """Each start's process (each process read once) and its variables checked, as a single start does."""
        names = {(s.request.processID, s.request.processKey) for s in starts}
        found = await asyncio.gather(*(self._process(caller.tenant, *name) for name in names))
        processes = dict(zip(names, found, strict=True))
        for start in starts:
            resolved = processes[(start.request.processID, start.request.processKey)]
            if isinstance(resolved, ProcEngineError):
                start.fail(resolved)
                continue
            start.stored, start.process = resolved
            try:
                self.node._check_variables(start.request.variables, start.process)
                self.node._start_breakpoints(start.request, start.process)
                self.node._start_attributes(start.request, start.process)
            except ProcEngineError as exc:
                start.fail(exc)

    async def _process(
        self, tenant: str, process_id: int | None, process_key: str | None
    ) -> tuple[StoredProcess, CompiledProcess] | ProcEngineError:
        try:
            stored = await self.node.catalog.resolve(tenant, process_id, process_key, check=False)
            return stored, await self.node.catalog.compiled(tenant, stored.process_id)
        except ProcEngineError as exc:
            return exc

    async def _create(self, caller: Caller, starts: list[_Start]) -> None:
        """Ids, claims bound, creation commits, status events, actors: the single start's steps, each one
        pipelined over the batch."""
        node = self.node
        starts = await self._startable(caller, starts)
        claimed = [s for s in starts if s.claim is not None]
        try:
            ids = await node.store.allocate_many([len(_compiled(s).threads) for s in starts])
        except BaseException:
            with contextlib.suppress(Exception):  # the claims lapse by themselves; the first failure is the news
                await asyncio.shield(
                    node.idempotent.release_many(caller.tenant, [(_key(s), _claim(s)) for s in claimed])
                )
            raise
        for start, (execution_id, first_thread) in zip(starts, ids, strict=True):
            start.execution_id, start.first_thread = execution_id, first_thread
        if ids:
            node.health.issued(ids[-1][0])
        node._starting.update(s.execution_id for s in starts)
        try:
            bound, _ = await asyncio.gather(
                node.idempotent.bind_many(caller.tenant, [(_key(s), _claim(s), s.execution_id) for s in claimed]),
                node.store.activate(*(s.execution_id for s in starts)),
            )
            lapsed = [s for s, held in zip(claimed, bound, strict=True) if not held]
            for start in lapsed:
                start.fail(Unavailable(f"the claim of idempotency key {_key(start)!r} lapsed before its start went on"))
            await self._write(caller, [s for s in starts if s.answer is None], lapsed)
        finally:
            node._starting.difference_update(s.execution_id for s in starts)

    async def _startable(self, caller: Caller, starts: list[_Start]) -> list[_Start]:
        """Those of `starts` whose version may be started now (one read for the batch, after the keys are claimed,
        as a single start checks): the others fail (deprecated, or deleted since) and free their keys."""
        if not starts:
            return starts
        wanted = {(_stored(s).process_id, s.request.processID is None): _stored(s) for s in starts}
        problems = await self.node.catalog.unstartable_many(
            caller.tenant, [(stored, by_key) for (_, by_key), stored in wanted.items()]
        )
        problem_of = dict(zip(wanted, problems, strict=True))
        refused = []
        for start in starts:
            problem = problem_of[(_stored(start).process_id, start.request.processID is None)]
            if problem is not None:
                start.fail(problem)
                refused.append(start)
        freed = [(_key(s), _claim(s)) for s in refused if s.claim is not None]
        if freed:
            with contextlib.suppress(Exception):  # the claims lapse by themselves
                await asyncio.shield(self.node.idempotent.release_many(caller.tenant, freed))
        return [s for s in starts if s.answer is None]

    async def _write(self, caller: Caller, starts: list[_Start], lapsed: list[_Start]) -> None:
        node = self.node
        actors: dict[int, ExecutionActor] = {}
        commits: list[tuple[_Start, Commit]] = []
        undo: list[_Start] = list(lapsed)
        writes: list[asyncio.Future[WriteResult]] = []
        for number, start in enumerate(starts, start=1):
            try:
                commit, actor = node._new_execution(
                    caller, start.execution_id, start.first_thread, _stored(start), _compiled(start), start.request,
                    None, 0,
                )  # fmt: skip
            except ProcEngineError as exc:
                start.fail(exc)
                undo.append(start)
                continue
            actors[start.execution_id] = actor
            commits.append((start, commit))
            writes.append(asyncio.ensure_future(node.store.commit(start.execution_id, commit, epoch=None, expect=NEW)))
            if number % CHUNK == 0:
                await asyncio.sleep(0)  # the loop's other work (a probe's answer, reads) goes on between chunks
        results = await asyncio.gather(*writes, return_exceptions=True)
        created: list[_Start] = []
        unsure: list[_Start] = []  # written, not yet replicated: it exists (the reconciler runs it), keys kept
        for (start, _), result in zip(commits, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, WriteResult) and result.outcome is Outcome.OK:
                created.append(start)
            elif isinstance(result, NotReplicated):
                unsure.append(start)
                start.fail(
                    NotReplicated(
                        f"execution {start.execution_id} was started, but {result.message}; GET its status to see "
                        "whether it lasted, or retry with the same idempotencyKey",
                        retry_after_s=1,
                    )
                )
            else:
                undo.append(start)
                start.fail(_as_error(start, result))
        if undo:
            await asyncio.shield(self._undo(caller, undo))
        started: dict[str, int] = {}
        for number, start in enumerate(created, start=1):
            node.registry.spawn(actors[start.execution_id])
            if number % CHUNK == 0:
                await asyncio.sleep(0)  # their first steps run a chunk at a time
            stored = _stored(start)
            started[stored.key] = started.get(stored.key, 0) + 1
            # built from values checked already (its id, the process read for the batch): not validated again
            start.answer = BatchStartItem.model_construct(
                index=start.index,
                outcome="started",
                executionID=start.execution_id,
                status="running",
                processID=stored.process_id,
                processVersion=stored.version,
                error=None,
            )
        for key, count in started.items():
            node.metrics.started.labels(key).inc(count)  # once per process of the batch, not per start
        kept = [_key(s) for s in created + unsure if s.claim is not None]
        if kept:
            await node.idempotent.created_many(caller.tenant, kept)

    async def _undo(self, caller: Caller, starts: list[_Start]) -> None:
        """Starts that failed before their execution existed leave no index entry and free their keys."""
        await asyncio.gather(
            *(
                self.node._undo_start(
                    Indexed(caller.tenant, s.execution_id, _stored(s).process_id),
                    None if s.claim is None else _key(s),
                )
                for s in starts
            )
        )

    async def _answer_held(self, caller: Caller, held: list[_Start]) -> None:
        """Keys held before the batch: the execution each names, read for all at once; the rest (a start still
        under way, a stale claim) go the single start's way, which waits for it or claims the key."""
        if not held:
            return
        try:
            found = await self.node.idempotent.existing_many(caller.tenant, [_key(s) for s in held])
        except ProcEngineError:
            found = [None] * len(held)
        alone: list[_Start] = []
        for start, result in zip(held, found, strict=True):
            if result is None:
                alone.append(start)
            else:
                start.answer = _answered(start.index, result, created=False)
        room = asyncio.Semaphore(FALLBACK_CONCURRENCY)

        async def single(start: _Start) -> None:
            async with room:
                try:
                    result, created = await self.node.start_execution(caller, start.request)
                except ProcEngineError as exc:
                    start.fail(exc)
                else:
                    start.answer = _answered(start.index, result, created=created)

        await asyncio.gather(*(single(start) for start in alone))


def begun_waits(
    process: CompiledProcess, state: ExecutionState, now_ms: int, breakpoints: Collection[str] = ()
) -> list[ElementEvent]:
    """Begin now, in the new `state`, each thread's first element that is a wait for a signal (with no timeout or
    one in milliseconds): their `element-started` events, for the creation commit to write beside the `started`
    entry. The execution's first checkpoint is then its creation: its lane, starting, finds the wait begun and
    has nothing to write (`Interpreter.begin` reports a start once), where it wrote one checkpoint more before.
    A new execution holds no signal yet, so each such wait waits; nothing else is begun here (a task's start must
    be written by the lane that runs it, a pure element's may share its next one's checkpoint), nor an element with
    a breakpoint from the start (`breakpoints`: its lane tests it before it begins)."""
    interpreter: Interpreter | None = None
    events: list[ElementEvent] = []
    for thread in process.threads:
        entry = state.entry(thread.key)
        if entry is None or entry.started_at_ms is not None:
            continue
        element = process.elements[entry.element_key]
        if entry.element_key in breakpoints:
            continue
        if not isinstance(element, WaitSignalElement) or element.timeoutAt is not None:
            continue
        if element.signal in state.memory.signals:
            continue
        interpreter = interpreter or Interpreter(process)
        outcome = interpreter.begin(state, thread.key, now_ms)
        assert isinstance(outcome.step, AwaitSignal), outcome
        events += outcome.events
    return events


def _log_failure(creating: asyncio.Future[None]) -> None:
    if not creating.cancelled() and creating.exception() is not None:
        log.warning("a batch of starts whose request had gone failed: %s", creating.exception())


def failed(index: int, exc: ProcEngineError, execution_id: int | None = None) -> BatchStartItem:
    """The outcome of a start refused with `exc`: its code, message and the status it has alone."""
    return BatchStartItem(
        index=index,
        outcome="failed",
        executionID=execution_id,
        error=BatchItemError(code=exc.code, message=exc.message, status=exc.status, details=exc.details),
    )


def _answered(index: int, result: StartResult, *, created: bool) -> BatchStartItem:
    return BatchStartItem(
        index=index,
        outcome="started" if created else "existing",
        executionID=result.executionID,
        status=result.status,
        processID=result.processID,
        processVersion=result.processVersion,
    )


def _repeat(index: int, first: _Start) -> BatchStartItem:
    """A later item with the key of an earlier one: answered as the first (its execution, or its error)."""
    answer = first.answer
    assert answer is not None
    if answer.outcome == "failed":
        return answer.model_copy(update={"index": index})
    return answer.model_copy(update={"index": index, "outcome": "existing"})


def _as_error(start: _Start, result: BaseException | WriteResult) -> ProcEngineError:
    if isinstance(result, ProcEngineError):
        return result
    if isinstance(result, WriteResult):
        return Unavailable(f"execution {start.execution_id} already exists")
    log.error("execution %s: the start failed", start.execution_id, exc_info=result)
    return Unavailable(f"execution {start.execution_id} could not be started; try again")


def _key(start: _Start) -> str:
    key = start.request.idempotencyKey
    assert key is not None
    return key


def _claim(start: _Start) -> str:
    assert start.claim is not None
    return start.claim


def _stored(start: _Start) -> StoredProcess:
    assert start.stored is not None
    return start.stored


def _compiled(start: _Start) -> CompiledProcess:
    assert start.process is not None
    return start.process
