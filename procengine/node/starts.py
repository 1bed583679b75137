"""Starting an execution on this node: the checks (variables, breakpoints, attributes, the tenant's rate), the
idempotency key's claim, the ids, the creating write and the actor's first run; a batch goes through
node/starting.py. Mixed into `Node` (node/node.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from procengine.actors.actor import ActorContext, ExecutionActor
from procengine.actors.records import snapshot_commit, transition_log, under_way_records
from procengine.actors.spans import start_trace
from procengine.api.problems import refusal
from procengine.api.service import Caller
from procengine.api.views import (
    BatchStartRequest,
    BatchStartResult,
    StartRequest,
    StartResult,
)
from procengine.engine.attributes import checked
from procengine.engine.breakpoints import Breakpoint, parsed, to_field
from procengine.engine.compiled import CompiledProcess
from procengine.engine.interpreter import MEMORY_RESERVE, Interpreter
from procengine.engine.sizes import bounded_size
from procengine.errors import (
    CodecError,
    NotReplicated,
    PayloadTooLarge,
    TooManyRequests,
    Unavailable,
    ValidationFailed,
)
from procengine.node.catalog import Catalog
from procengine.node.idempotency import IdempotentStarts
from procengine.node.reconciler import Reconciler
from procengine.node.registry import Registry
from procengine.node.starting import BatchStarts, begun_waits
from procengine.node.travel import Fork
from procengine.runtime.clock import Clock, iso
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.statuses import Status
from procengine.store import indexes, search
from procengine.store.executions import (
    NEW,
    PAUSE_REASON,
    PAUSED_BY,
    Commit,
    ExecutionStore,
    Outcome,
    StatusChange,
    stored_fields,
)
from procengine.store.failures import translated
from procengine.store.health import StoreHealth
from procengine.store.indexes import CHILD_KEY, Indexed
from procengine.store.keys import Keys
from procengine.store.processes import StoredProcess

__all__ = ["Starts"]


class Starts:
    if TYPE_CHECKING:
        redis: Redis
        settings: Settings
        clock: Clock
        keys: Keys
        node_id: str
        store: ExecutionStore
        ctx: ActorContext
        registry: Registry
        catalog: Catalog
        health: StoreHealth
        idempotent: IdempotentStarts
        batch_starts: BatchStarts
        reconciler: Reconciler
        metrics: Metrics
        _starting: set[int]

        def _refuse_if_draining(self) -> None: ...

    async def start_execution(
        self,
        caller: Caller,
        request: StartRequest,
        *,
        parent: int | None = None,
        depth: int = 0,
        child_key: str | None = None,
    ) -> tuple[StartResult, bool]:
        """Start an execution (`parent`: of a call-process of that execution, which gives it `child_key`, the
        engine's own idempotency key, apart from clients'); (result, created) - not created when its key names an
        execution started before."""
        self._refuse_if_draining()
        self.health.refuse_if_unsafe()  # no id given twice after Redis lost data
        await self._admit_start(caller.tenant)
        stored = await self.catalog.resolve(caller.tenant, request.processID, request.processKey, check=False)
        process = await self.catalog.compiled(caller.tenant, stored.process_id)
        self._check_variables(request.variables, process)
        self._start_breakpoints(request, process)
        self._start_attributes(request, process)
        child = child_key is not None
        key = child_key if child else request.idempotencyKey
        # read before the claim (a node that dies between claim and bind holds the key until the claim lapses: that
        # window is kept to the id's round trip); a refusal waits for the claim, so that a repeat of a start made
        # before its version was deprecated answers its execution
        [problem] = await self.catalog.unstartable_many(caller.tenant, [(stored, request.processID is None)])
        claim: str | None = None
        if key is not None:  # before the ids: a repeat creates nothing, so it takes no id (ids have no gaps)
            found = await self.idempotent.claim(caller.tenant, key, child=child)
            if isinstance(found, StartResult):
                return found, False
            claim = found
        try:
            if problem is not None:
                raise problem
            execution_id, first_thread = await self.store.allocate_ids(len(process.threads))
            self.health.issued(execution_id)
            if key is not None and claim is not None:
                await self.idempotent.bind(caller.tenant, key, claim, execution_id, child=child)
        except BaseException:
            if key is not None and claim is not None:
                with contextlib.suppress(Exception):  # the claim lapses by itself; the first failure is the news
                    await asyncio.shield(self.idempotent.release(caller.tenant, key, claim, child=child))
            raise
        self._starting.add(execution_id)
        try:
            try:
                actor = await self._create(
                    caller, execution_id, first_thread, stored, process, request, parent, depth, child_key
                )
            except NotReplicated as exc:
                # written on the master, not yet on a replica: the execution exists (this node's reconciler takes
                # it back and runs it), so nothing is undone, and a retry with the key finds it
                self.reconciler.suspect(execution_id)
                if key is not None:
                    await self.idempotent.created(caller.tenant, key, child=child)
                raise NotReplicated(
                    f"execution {execution_id} was started, but {exc.message}; GET its status to see whether it "
                    "lasted, or retry with the same idempotencyKey",
                    retry_after_s=1,
                ) from None
            except BaseException:
                undone = Indexed(caller.tenant, execution_id, stored.process_id)
                await asyncio.shield(self._undo_start(undone, key, child=child))
                raise
            await actor.announce()  # before it runs: a short execution's `completed` comes after its `running`
            self.registry.spawn(actor)
            if key is not None:
                await self.idempotent.created(caller.tenant, key, child=child)
        finally:
            self._starting.discard(execution_id)
        self.metrics.started.labels(stored.key).inc()
        return StartResult(
            executionID=execution_id, status="running", processID=stored.process_id, processVersion=stored.version
        ), True

    async def start_many(self, caller: Caller, request: BatchStartRequest) -> BatchStartResult:
        """Start each item of a batch, the Redis work pipelined over the batch (node/starting.py)."""
        self._refuse_if_draining()
        self.health.refuse_if_unsafe()
        return await self.batch_starts.start(caller, request.items)

    @translated
    async def _admit_start(self, tenant: str, starts: int = 1) -> int:
        """How many of `starts` the tenant may make now: TooManyRequests if none, past --max-starts-per-second for
        the tenant (counted in Redis, so over all nodes)."""
        limit = self.settings.max_starts_per_second
        if limit <= 0:
            return starts
        key = self.keys.starts(tenant, self.clock.now_ms() // 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(key, starts)
            pipe.expire(key, 2)
            count, _ = await pipe.execute()
        admitted = min(starts, limit - (int(count) - starts))
        if admitted <= 0:
            raise TooManyRequests(
                f"tenant {tenant!r} may start {limit} executions a second (--max-starts-per-second); try again"
            )
        return admitted

    def _start_breakpoints(self, request: StartRequest, process: CompiledProcess) -> tuple[Breakpoint, ...]:
        """A start's `pauseBefore`, checked against its definition (422 listing every problem)."""
        if not request.pauseBefore:
            return ()
        wanted = [b if isinstance(b, str) else b.model_dump(exclude_none=True) for b in request.pauseBefore]
        return parsed(wanted, process)

    def _start_attributes(self, request: StartRequest, process: CompiledProcess) -> dict[str, list[Any]]:
        """A start's `attributes`, checked against those its definition declares (422 listing every problem),
        in their stored form."""
        if not request.attributes:
            return {}
        stored, problems = checked(process.definition.attributes, request.attributes)
        if problems:
            raise refusal("attributes are invalid", problems)
        return stored

    def _check_variables(self, variables: dict[str, Any], process: CompiledProcess) -> None:
        """Start variables the memory snapshot can hold: storable and not too many (422; counted with those the
        definition writes, so that an execution never holds more), within its limit (413)."""
        held = len(process.variables_written | variables.keys())
        if held > self.settings.max_variables:
            raise ValidationFailed(
                "too many variables",
                [
                    f"variables: {len(variables)}, with those the definition writes {held}; "
                    f"at most {self.settings.max_variables} (--max-variables)"
                ],
            )
        room = self.settings.max_snapshot_bytes - MEMORY_RESERVE
        try:
            size = bounded_size(variables, room)  # a body's worth at most
        except CodecError as exc:
            raise ValidationFailed("variables cannot be stored", [f"variables: {exc.message}"]) from None
        if size is None:
            limit = self.settings.max_snapshot_bytes
            raise PayloadTooLarge(
                f"variables do not fit in the execution's memory: its snapshot may take {limit} bytes "
                "(--max-snapshot-bytes)"
            )

    async def _create(
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
        *,
        fork: Fork | None = None,
    ) -> ExecutionActor:
        """Write the new execution (indexed first, so that it is never unlisted) and make its actor."""
        commit, actor = self._new_execution(
            caller, execution_id, first_thread, stored, process, request, parent, depth, child_key, fork=fork
        )
        await self.store.activate(execution_id)
        result = await self.store.commit(execution_id, commit, epoch=None, expect=NEW)
        if result.outcome is not Outcome.OK:
            raise Unavailable(f"execution {execution_id} already exists")
        return actor

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
        *,
        fork: Fork | None = None,
    ) -> tuple[Commit, ExecutionActor]:
        """The commit that creates the execution and its actor, nothing written yet (`_create` writes one,
        node/starting.py many at once); a `fork` starts from its state instead of the definition's start."""
        thread_ids = {thread.key: first_thread + i for i, thread in enumerate(process.threads)}
        state = Interpreter(process).initial_state(request.variables, thread_ids) if fork is None else fork.state
        if fork is None:
            state.memory.attributes = self._start_attributes(request, process)
        status = Status.PAUSED if fork is not None and fork.paused else Status.RUNNING
        now = self.clock.now_ms()
        breakpoints = self._start_breakpoints(request, process) if fork is None else ()
        begun = [] if fork is not None else begun_waits(process, state, now, {b.element for b in breakpoints})
        commit = snapshot_commit(state, begun, now)
        commit.execution.update(
            {
                "status": status.value,
                "processID": stored.process_id,
                "processKey": stored.key,
                "processVersion": stored.version,
                "tenant": caller.tenant,
                "startedAt": iso(now),
                "stoppedAt": "",  # one of the contract's readable fields, so present from the start
                "owner": self.node_id,
                "epoch": 1,
                "totalNodes": process.total_nodes,
                "pausedDurationMs": 0,
            }
        )
        trace = start_trace(self.ctx.tracing, caller, execution_id, stored.key, stored.version, now)
        if trace is not None:  # the execution's trace context, kept in the creating write (docs/tracing.md)
            commit.execution.update(trace)
        if request.idempotencyKey is not None:
            commit.execution["idempotencyKey"] = request.idempotencyKey
        if breakpoints:
            commit.execution["pauseBefore"] = to_field(breakpoints)
        if parent is not None:
            commit.execution.update(parentExecutionID=parent, callDepth=depth)
        if child_key is not None:
            commit.execution[CHILD_KEY] = child_key  # its expiry goes with the final write's (indexes.moved)
        extra: dict[str, Any] = {}
        if fork is not None:
            commit.elements.update(under_way_records(state))
            extra["forkedFrom"] = {"executionID": fork.source, "checkpoint": fork.checkpoint}
            if fork.patch is not None:
                extra["variables"] = fork.patch
            if status is Status.PAUSED:
                commit.execution.update({"pausedAt": iso(now), PAUSED_BY: caller.by, PAUSE_REASON: fork.reason or ""})
        commit.log.insert(  # before the entries of the waits begun with it
            0,
            transition_log(
                now,
                "started",
                caller,
                "",
                status.value,
                None if fork is None else fork.reason,
                processID=stored.process_id,
                processVersion=stored.version,
                **extra,
            ),
        )
        commit.index = indexes.created(self.keys, Indexed(caller.tenant, execution_id, stored.process_id), status.value)
        commit.index += search.created(self.keys, caller.tenant, execution_id, now, state.memory.attributes)
        commit.announce = StatusChange(caller.tenant, status.value, stored.key)  # in the same write
        actor = ExecutionActor(
            execution_id=execution_id,
            tenant=caller.tenant,
            process=process,
            ctx=self.ctx,
            status=status,
            epoch=1,
            state=state,
            fields=stored_fields(commit.execution),
        )
        actor.writer.announced = status.value  # the creation told it: `actor.announce` has nothing to do
        return commit, actor

    async def _undo_start(self, at: Indexed, idempotency_key: str | None, *, child: bool = False) -> None:
        """A start that failed before its execution existed leaves no index entry and frees its key."""
        with contextlib.suppress(Exception):
            await self.store.unindex(at)
        if idempotency_key is not None:
            with contextlib.suppress(Exception):
                await self.idempotent.release(at.tenant, idempotency_key, str(at.execution_id), child=child)
