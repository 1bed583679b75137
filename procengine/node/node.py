"""The engine of one node: the NodeService the front door and the control channel call.

Writes go to the execution's actor (activated here if needed); reads come straight from Redis.
The node's background work (heartbeat, reconciler) is owned here and stopped on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from procengine.actors.actor import SIGNAL_KEY_FIELD, TRANSITION_TARGETS, ActorContext, ExecutionActor, log_refusal
from procengine.actors.messages import Command, Request, Verb
from procengine.actors.records import snapshot_commit, transition_log, under_way_records
from procengine.actors.repairs import retried_answer
from procengine.api.feeds import Feed
from procengine.api.filters import ExecutionFilter
from procengine.api.problems import refusal
from procengine.api.process_views import ProcessDeleted, ProcessPatch
from procengine.api.rendered import RenderedStatus
from procengine.api.service import Caller
from procengine.api.views import (
    ELEMENTS_PAGE,
    BatchStartRequest,
    BatchStartResult,
    BreakpointsResult,
    CancelResult,
    ControlRequest,
    ElementsView,
    ExecutionList,
    ExecutionStatusView,
    LogEntry,
    LogView,
    MigrateRequest,
    MigrateResult,
    PauseResult,
    ProcessList,
    ProcessSummary,
    ProcessView,
    ResumeResult,
    RetryRequest,
    RetryResult,
    RewindResult,
    SignalResult,
    StartRequest,
    StartResult,
    StateView,
    StatusEvent,
    SteppedResult,
    StepResult,
    VariablesResult,
)
from procengine.engine.attributes import checked
from procengine.engine.breakpoints import Breakpoint, parsed, to_field
from procengine.engine.compiled import CompiledProcess
from procengine.engine.interpreter import MEMORY_RESERVE, Interpreter
from procengine.engine.sizes import bounded_size
from procengine.errors import (
    VERB_PHRASES,
    CodecError,
    InvalidTransition,
    MailboxClosed,
    MailboxFull,
    NotReplicated,
    OwnedElsewhere,
    PayloadTooLarge,
    ProcEngineError,
    TooManyRequests,
    Unavailable,
    ValidationFailed,
)
from procengine.node.blocked import live_blocked_on
from procengine.node.bulk import BulkOperations
from procengine.node.catalog import Catalog
from procengine.node.children import Children
from procengine.node.control import ControlListener
from procengine.node.feeds import Feeds
from procengine.node.idempotency import IdempotentStarts
from procengine.node.live_status import render_running
from procengine.node.ownership import Ownership, new_node_id
from procengine.node.queries import Queries, status_doc
from procengine.node.reconciler import Reconciler
from procengine.node.registry import Registry
from procengine.node.routing import Router
from procengine.node.schedule_loop import ScheduleLoop
from procengine.node.schedules import ScheduleOperations
from procengine.node.starting import BatchStarts, begun_waits
from procengine.node.steps import StepControls
from procengine.node.travel import Fork, TimeTravel
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock, SystemClock, iso
from procengine.runtime.collector import observe_pauses
from procengine.runtime.metrics import Metrics, sample_loop_lag
from procengine.settings import Settings
from procengine.statuses import Status
from procengine.store import indexes, search
from procengine.store.bulk_jobs import BulkJobStore
from procengine.store.codec import encode
from procengine.store.executions import (
    NEW,
    PAUSE_REASON,
    PAUSED_BY,
    Commit,
    ExecutionStore,
    HistoryBounds,
    Outcome,
    StatusChange,
    stored_fields,
)
from procengine.store.failures import store_errors, translated
from procengine.store.health import StoreHealth
from procengine.store.history import HistoryStore
from procengine.store.indexes import CHILD_KEY, Indexed
from procengine.store.keys import Keys
from procengine.store.probe import StoreProbe
from procengine.store.processes import ProcessStore, StoredProcess
from procengine.store.schedules import ScheduleStore
from procengine.store.scripts import Scripts
from procengine.tasks import HandlerRegistry

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

SWEEP_BATCH = 500
STORE_PROBE_S = 0.4
"""How long a PING may take before the front door takes Redis for unreachable (store/probe.py)."""
RESULTS: dict[Verb, type[BaseModel]] = {
    "pause": PauseResult,
    "resume": ResumeResult,
    "cancel": CancelResult,
    "signal": SignalResult,
    "retry": RetryResult,
    "edit": VariablesResult,
    "step": StepResult,
    "run-now": StepResult,
    "policy": StepResult,
    "rewind": RewindResult,
    "breakpoints": BreakpointsResult,
    "advance": SteppedResult,
    "migrate": MigrateResult,
}
"""What each command answers (a forwarded answer is rebuilt from its JSON)."""
REPAIR_VERBS: dict[Verb, frozenset[Status]] = {
    "retry": frozenset({Status.FAILED}),
    "step": frozenset({Status.FAILED}),
    "rewind": frozenset({Status.FAILED, Status.CANCELLED}),
    "migrate": frozenset({Status.FAILED}),
}
"""Commands that apply to a final execution: its actor is activated for them in those statuses
(`Registry.activate(repair=...)`)."""


class Node(StepControls, TimeTravel, BulkOperations, ScheduleOperations):
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        handlers: HandlerRegistry,
        *,
        clock: Clock | None = None,
        node_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.clock = clock or SystemClock()
        self.keys = Keys(settings.prefix)
        scripts = Scripts.register(redis)
        self.node_id = node_id or new_node_id()
        self.store = ExecutionStore(
            redis,
            self.keys,
            scripts,
            settings.log_maxlen,
            replicas=1 if settings.durability == "replicated" else 0,
            # answered before the socket's own timeout; never 0, which WAIT takes as "for ever"
            replica_timeout_ms=max(1, int(settings.redis_timeout_s * 500)),
            indexes_in_script=not isinstance(redis, RedisCluster),  # one script may not touch two slots there
            node_id=self.node_id,
            history=HistoryBounds(settings.history_checkpoints, settings.history_bytes),
        )
        self.catalog = Catalog(
            ProcessStore(redis, self.keys, scripts, ids_in_script=not isinstance(redis, RedisCluster)),
            handlers,
            self.clock,
            settings.max_definition_elements,
            settings.max_variables,
        )
        self.ownership = Ownership(redis, self.keys, self.node_id, settings.node_heartbeat_ms, settings.node_ttl_ms)
        self.queries = Queries(
            self.store, self.catalog.compiled, self.ownership.alive, self.catalog.declared_attributes
        )
        self.search = self.queries.search
        """The execution list's filters (`Search.matching_ids`: every match of a filter, page by page)."""
        self.history = HistoryStore(redis, self.keys)
        self.metrics = metrics or Metrics()
        self.ctx = ActorContext(
            self.store,
            settings,
            self.clock,
            handlers,
            self.node_id,
            self.metrics,
            children=Children(self),
            processes=self.catalog,
        )
        self.registry = Registry(self.ctx, self.catalog, self.ownership)
        self.metrics.active_actors.set_function(lambda: len(self.registry))
        self.health = StoreHealth(redis, self.keys, interval_s=settings.store_check_interval_ms / 1000)
        self.control = ControlListener(
            redis,
            self.keys,
            self,
            self.store,
            self.metrics,
            on_subscribed=self.health.check_soon,
            listening_channel=self.keys.listening(self.node_id),
        )
        self.router = Router(redis, self.keys, self.node_id, settings.redis_timeout_s)
        self.idempotent = IdempotentStarts(redis, self.keys, self.store, wait_s=settings.redis_timeout_s)
        self.batch_starts = BatchStarts(self)
        self._starting: set[int] = set()
        self._background: list[asyncio.Task[None]] = []
        self._draining = False
        self.feeds = Feeds(
            self.store,
            settings.max_event_streams,
            # one blocking read waits less than the Redis socket timeout, which would end it
            block_ms=max(100, int(settings.redis_timeout_s * 1000) - 1000),
            draining=lambda: self._draining,
        )
        self.probe = StoreProbe(redis, timeout_s=STORE_PROBE_S, keep_s=STORE_PROBE_S / 2)
        self._reconcile_now = asyncio.Event()
        """Set when another node has left: reconcile (adopt its executions) now, not at the next interval."""
        self.reconciler = Reconciler(
            redis,
            self.keys,
            self.store,
            self.ownership,
            self.registry,
            self.metrics,
            self.clock,
            tenants=settings.tenants,
            starting=self._starting,
            activate=self._activate,
        )
        self.bulk_store = BulkJobStore(redis, self.keys)
        self._runners = {}
        self.reconciler.sweep_also.append(self.adopt_jobs_of)  # a dead node's bulk operations, with its executions
        self.schedule_store = ScheduleStore(redis, self.keys)
        self.schedule_runner = ScheduleLoop(self, self.schedule_store, self.clock, lambda: settings.tenants)
        self.schedule_loop = self.schedule_runner

    # --- life ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.ownership.renew()
        with store_errors():
            await self.redis.hset(self.keys.statuses, mapping={s.value: s.id for s in Status})
        await self.health.start()
        gc_pause = self.metrics.gc_pause
        self._stop_gc_watch = observe_pauses(lambda generation, s: gc_pause.labels(str(generation)).observe(s))
        self._background = [
            asyncio.create_task(self.health.watch_forever(self.registry.highest, self._stop_actors), name="health"),
            asyncio.create_task(sample_loop_lag(self.metrics.loop_lag.observe), name="loop-lag"),
            asyncio.create_task(self.ownership.heartbeat_forever(self._stop_actors), name="heartbeat"),
            asyncio.create_task(self._reconcile_forever(), name="reconciler"),
            asyncio.create_task(self._watch_leases_forever(), name="leases"),
            asyncio.create_task(self.control.run_forever(), name="control-channel"),
            asyncio.create_task(self.router.serve_forever(self._serve_forwarded), name="inbox"),
            asyncio.create_task(self._sweep_forever(), name="sweeper"),
        ]
        if self.settings.fire_schedules:
            self._background.append(asyncio.create_task(self.schedule_runner.run_forever(), name="schedules"))
        # started means ready when Redis is: the control channel is subscribed before the front door opens (a
        # message published at once would otherwise reach no one); bounded, /ready says so if it is not yet
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.redis_timeout_s):
                await self.control.subscribed.wait()
        log.info("node %s: engine started (prefix %s)", self.node_id, self.settings.prefix)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop_schedules()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        self._stop_gc_watch()
        await self.stop_bulk_runners()
        await self.registry.stop_all()
        await self.store.aclose()
        await self.probe.aclose()
        with contextlib.suppress(Exception):
            await self.ownership.leave()
        log.info("node %s: engine stopped", self.node_id)

    def metrics_text(self) -> tuple[bytes, str]:
        """The node's metrics in Prometheus text format, and the content type."""
        return self.metrics.render()

    async def ready(self) -> str | None:
        """None when Redis answers and this node is not shutting down; else why not."""
        if self._draining:
            return "this node is shutting down"
        if unsafe := self.health.unsafe():  # eviction, or Redis lost data (store/health.py)
            return unsafe
        try:
            if not await self.redis.ping():
                return "the store cannot be reached"
            # ready means listening too: a control message published now must reach this node (pub/sub keeps
            # nothing for a node that is not subscribed at that moment)
            if not await self.control.listening():
                return "the control channel is not subscribed (yet)"
        except Exception:
            return "the store cannot be reached"
        return None

    async def store_answers(self) -> bool:
        """Whether Redis answers a PING within STORE_PROBE_S now (asked by the front door of a slow request)."""
        return await self.probe.answers()

    def store_silent(self) -> bool:
        """Whether the last probe found Redis silent (no I/O)."""
        return self.probe.silent

    async def drain(self) -> None:
        """Leave gracefully (SIGTERM): take no new work (requests for actors answer 503 with Retry-After, /ready
        says no), let every actor finish its running tasks within the pause grace and checkpoint, then give up the
        heartbeat and say so on the nodes channel, so that the other nodes adopt the executions at once instead
        of after the heartbeat's TTL."""
        self._draining = True
        log.info("node %s: draining", self.node_id)
        await self._stop_background("reconciler")  # adopt nothing more here
        await self._stop_schedules()  # fire nothing more here: the other nodes fire them
        await self.stop_bulk_runners()  # the other nodes go on with them from their cursors
        await self.registry.drain_all(timeout_s=self.settings.pause_grace_ms / 1000 + 5)
        await self._stop_background("heartbeat")
        with contextlib.suppress(Exception):  # best effort: without it the others adopt after the TTL
            await self.ownership.leave()
            await self.redis.publish(self.keys.nodes, self.node_id)
        log.info("node %s: drained; its executions are up for adoption", self.node_id)

    def node_left(self, node_id: str) -> None:
        if node_id != self.node_id:
            self.reconciler.node_left(node_id)
            self._reconcile_now.set()

    async def _stop_actors(self) -> None:
        """The watchdog's (and the data-loss check's): stop every actor without writing; the reconciler takes back,
        once it can, those of its executions that nobody took meanwhile."""
        self.reconciler.watchdog_fired = True
        await self.registry.stop_all()

    async def _stop_background(self, name: str) -> None:
        for task in [t for t in self._background if t.get_name() == name]:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._background.remove(task)

    async def _stop_schedules(self) -> None:
        """The schedule loop ends after its pass under way (bounded: else it is cancelled like the other tasks)."""
        self.schedule_runner.stop()
        for task in [t for t in self._background if t.get_name() == "schedules"]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self.settings.redis_timeout_s)
            await self._stop_background("schedules")

    def _refuse_if_draining(self) -> None:
        if self._draining:
            raise Unavailable(f"node {self.node_id} is shutting down; try again", retry_after_s=1)

    # --- processes ----------------------------------------------------------------------------

    async def register_process(self, caller: Caller, document: Any) -> tuple[ProcessSummary, bool]:
        return await self.catalog.register(caller.tenant, document)

    async def list_processes(self, caller: Caller) -> ProcessList:
        return await self.catalog.list(caller.tenant)

    async def get_process(self, caller: Caller, process_id: int) -> ProcessView:
        return await self.catalog.read(caller.tenant, process_id)

    async def deprecate_process(self, caller: Caller, process_id: int, request: ProcessPatch) -> ProcessView:
        return await self.catalog.set_deprecated(caller, process_id, request.deprecated, request.reason)

    async def delete_process(self, caller: Caller, process_id: int, reason: str | None = None) -> ProcessDeleted:
        return await self.catalog.delete(caller, process_id, reason)

    # --- starting -----------------------------------------------------------------------------

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

    # --- control ------------------------------------------------------------------------------

    async def pause(self, caller: Caller, execution_id: int, request: ControlRequest) -> PauseResult:
        return await self._ask(execution_id, Command("pause", caller, request.reason), PauseResult)

    async def resume(self, caller: Caller, execution_id: int, request: ControlRequest) -> ResumeResult:
        return await self._ask(execution_id, Command("resume", caller, request.reason), ResumeResult)

    async def _refuse_under_paused_parent(self, caller: Caller, execution_id: int, reason: str | None) -> None:
        """A paused child of a paused parent is not resumed alone (409 naming the parent, logged as `refused`): a
        parent's pause holds its whole call tree, as a Camunda call activity's suspension or a Temporal parent's
        pause would, and its resume resumes the children it paused. Read before the child's actor is asked, not
        in its write (the parent's hash is in another slot): a parent resumed meanwhile has resumed the child
        itself, so a refusal in that race names a state that was true a moment before and changes nothing.
        docs/api.md, "Pause, resume, cancel", says what the other race (a parent paused meanwhile) leaves."""
        [fields] = await self.store.many_fields([execution_id], ["parentExecutionID", "tenant", "status"])
        parent = fields.get("parentExecutionID")
        if not parent or fields.get("tenant") != caller.tenant or fields.get("status") != Status.PAUSED.value:
            return  # not a child, not the caller's (404), or not paused (the actor refuses it as it is)
        [parent_fields] = await self.store.many_fields([int(parent)], ["status", "pausedChildren"])
        if parent_fields.get("status") != Status.PAUSED.value:
            return
        try:
            cascaded = execution_id in json.loads(parent_fields.get("pausedChildren") or "[]")
        except ValueError:
            cascaded = False
        then = "which resumes it" if cascaded else "then this one"
        why = f"its parent execution {parent} is paused: resume the parent, {then}"
        await log_refusal(self.ctx, execution_id, caller, "resume", reason, Status.PAUSED.value, why)
        raise InvalidTransition(f"cannot resume execution {execution_id}: {why}", Status.PAUSED.value)

    async def cancel(self, caller: Caller, execution_id: int, request: ControlRequest) -> CancelResult:
        return await self._ask(execution_id, Command("cancel", caller, request.reason), CancelResult)

    async def signal(
        self, caller: Caller, execution_id: int, name: str, payload: Any, idempotency_key: str | None = None
    ) -> SignalResult:
        try:
            size = len(encode(payload))
        except CodecError as exc:
            raise ValidationFailed("signal payload cannot be stored", [exc.message]) from None
        if size > self.settings.max_signal_bytes:
            raise PayloadTooLarge(
                f"signal payload of {size} bytes is over the {self.settings.max_signal_bytes} a signal may take "
                "(--max-signal-bytes)"
            )
        command = Command("signal", caller, signal=name, payload=payload, signal_key=idempotency_key)
        return await self._ask(execution_id, command, SignalResult)

    # --- repair -------------------------------------------------------------------------------

    async def retry(self, caller: Caller, execution_id: int, request: RetryRequest) -> RetryResult:
        """A failed execution goes on from what failed (actors/repairs.py), its variables patched in the same
        write if asked; 409 unless failed (or a retry with the same idempotencyKey was applied: its answer)."""
        if request.variables is not None:
            self._check_patch(request.variables)
        command = Command("retry", caller, request.reason, patch=request.variables, retry_key=request.idempotencyKey)
        return await self._ask(execution_id, command, RetryResult)

    async def edit_variables(
        self, caller: Caller, execution_id: int, patch: Any, reason: str | None = None
    ) -> VariablesResult:
        """Merge-patch (RFC 7396) a paused execution's variables; 409 unless paused."""
        if not isinstance(patch, dict):
            shown = "null" if patch is None else type(patch).__name__
            raise ValidationFailed(
                "the body must be a JSON object: a merge patch of the variables",
                [f"body: a JSON object of variable names (null removes one), not {shown}"],
            )
        if reason is not None and len(reason) > 1000:
            raise ValidationFailed("reason is too long", ["reason: at most 1000 characters"])
        self._check_patch(patch)
        return await self._ask(execution_id, Command("edit", caller, reason, patch=patch), VariablesResult)

    async def migrate(self, caller: Caller, execution_id: int, request: MigrateRequest) -> MigrateResult:
        """A paused or failed execution to another version of its process (actors/migrate.py): the plan validated,
        every problem listed (422), or only answered (`dryRun`); applied in one fenced write by its actor."""
        order = {"version": request.version, "mapping": dict(request.mapping), "dryRun": request.dryRun}
        return await self._ask(execution_id, Command("migrate", caller, request.reason, payload=order), MigrateResult)

    def _check_patch(self, patch: dict[str, Any]) -> None:
        """What can be checked before the execution is read: the patch alone storable, and within the memory limit
        (the actor checks the variables it gives: how many, and the whole memory's size)."""
        self._check_fits(patch, "variables", "variables", "do")

    async def control_command(self, execution_id: int, command: Command) -> BaseModel:
        """The control channel's way in: like the REST calls, but never forwarded (every node hears the message,
        and the owner acts on it): OwnedElsewhere if another live node drives the execution."""
        return await self._ask(execution_id, command, RESULTS[command.verb], forward=False)

    async def _serve_forwarded(self, execution_id: int, command: Command) -> dict[str, Any]:
        """A request another node forwarded here: answered by our actor (not forwarded again: 503 if the execution
        has moved on to yet another node)."""
        result = await self._ask(execution_id, command, RESULTS[command.verb], forward=False)
        return result.model_dump(mode="json")

    async def _ask(self, execution_id: int, command: Command, result: type[M], *, forward: bool = True) -> M:
        """Deliver `command` to the execution's actor (activated here if no live node drives it) and return its
        answer; forwarded through Redis to the owner when another live node drives it."""
        deadline_s = self.settings.pause_grace_ms / 1000 + 30
        caller = command.caller
        for _ in range(5):
            self._refuse_if_draining()  # each round: the actor may have stopped because the node is draining
            try:
                actor = await self.registry.activate(
                    execution_id, caller.tenant, repair=REPAIR_VERBS.get(command.verb, frozenset())
                )
            except OwnedElsewhere as elsewhere:
                if not forward:
                    raise
                wait_s = self.settings.pause_grace_ms / 1000 + max(2.0, self.settings.redis_timeout_s)
                answer = await self.router.forward(elsewhere.owner, execution_id, command, wait_s)
                return result.model_validate(answer)
            if actor is None:
                return result.model_validate(await self._answer_final(execution_id, command))
            if command.verb == "resume":  # here, on the node that drives it: checked (and refused) once
                await self._refuse_under_paused_parent(caller, execution_id, command.reason)
            reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            try:
                actor.mailbox.put(Request(command, reply))
            except MailboxClosed:
                await actor.stopped.wait()
                continue
            except MailboxFull:
                raise Unavailable(f"execution {execution_id} is busy; try again") from None
            try:
                async with asyncio.timeout(deadline_s):
                    answer = await reply
            except TimeoutError:
                # `reply` is cancelled with the wait: the actor will not start it now (a request whose requester
                # has given up is never applied afterwards)
                raise Unavailable(f"execution {execution_id} did not answer within {deadline_s:.0f}s") from None
            except ProcEngineError as exc:
                if exc.code == "UNAVAILABLE" and not reply.cancelled() and actor.stopped.is_set():
                    continue
                raise
            assert isinstance(answer, result)
            return answer
        raise Unavailable(f"execution {execution_id} could not be reached; try again")

    async def _answer_final(self, execution_id: int, command: Command) -> dict[str, Any]:
        """A command for a final execution: refused (409, logged), but for a retried signal whose key was
        delivered before the execution ended, which answers as the first time."""
        caller = command.caller
        fields = await self.queries.require(caller.tenant, execution_id)
        status = fields["status"]
        if command.signal_key is not None and f"{SIGNAL_KEY_FIELD}{command.signal_key}" in fields:
            return SignalResult(executionID=execution_id, signal=command.signal).model_dump(mode="json")
        retried = None if command.retry_key is None else retried_answer(fields, command.retry_key)
        if retried is not None:  # retried with this key, and final again since
            return retried.model_dump(mode="json")
        if command.verb in TRANSITION_TARGETS:
            why = f"execution is {status}"
            await log_refusal(self.ctx, execution_id, caller, command.verb, command.reason, status, why)
        if command.step is not None:
            action, element = command.step.phrase, command.step.element
            message = f"cannot {action} element {element!r} of an execution that is {status}"
            raise InvalidTransition(message, status)
        retriable = status == "failed" and command.verb in ("resume", "edit")
        hint = "; retry it instead (POST …/{id}/retry, procengine retry ID)" if retriable else ""
        verb = VERB_PHRASES.get(command.verb, command.verb)
        raise InvalidTransition(f"cannot {verb} an execution that is {status}{hint}", status)

    # --- reads --------------------------------------------------------------------------------

    async def list_executions(
        self,
        caller: Caller,
        *,
        status: str | None,
        process_id: int | None,
        limit: int,
        cursor: str | None,
        filters: ExecutionFilter | None = None,
    ) -> ExecutionList:
        return await self.queries.list(
            caller.tenant, status=status, process_id=process_id, limit=limit, cursor=cursor, filters=filters
        )

    async def status(self, caller: Caller, execution_id: int) -> ExecutionStatusView:
        return ExecutionStatusView.model_validate_json(await self.status_json(caller, execution_id))

    async def status_json(self, caller: Caller, execution_id: int) -> bytes:
        rendered = self._live_status(caller, execution_id) or await self.queries.status(caller.tenant, execution_id)
        return rendered.json(self.clock.now_ms())

    def _live_status(self, caller: Caller, execution_id: int) -> RenderedStatus | None:
        """The status of an execution a live actor here drives, without a round trip: the actor is its only
        writer, so its copy is what Redis holds. Rendered once per write. None: read it from Redis."""
        actor = self.registry.get(execution_id)
        if actor is None or actor.tenant != caller.tenant or actor.corrupted or not actor.copy_known:
            return None
        if actor.rendered_status is None:
            actor.rendered_status = render_running(actor)  # the common case in one pass; None: the general one
        if actor.rendered_status is None:
            blocked = live_blocked_on(actor)
            if blocked is None:  # it needs what only Redis holds (a child's status, say)
                return None
            doc = status_doc(execution_id, actor.fields, actor.thread_records.values())
            actor.rendered_status = RenderedStatus.of({**doc, "blockedOn": blocked})
        return actor.rendered_status

    async def log(self, caller: Caller, execution_id: int) -> LogView:
        return await self.queries.log(caller.tenant, execution_id)

    async def elements(
        self, caller: Caller, execution_id: int, *, limit: int = ELEMENTS_PAGE, cursor: str | None = None
    ) -> ElementsView:
        return await self.queries.elements(caller.tenant, execution_id, limit=limit, cursor=cursor)

    async def state(self, caller: Caller, execution_id: int) -> StateView:
        return await self.queries.state(caller.tenant, execution_id)

    # --- retention ----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Take the executions whose retention is over out of every tenant's index (their keys expired by
        themselves, set in their final write); how many. Any node may do it: it is idempotent."""
        swept = 0
        now = self.clock.now_ms()
        for tenant in self.settings.tenants:
            while True:  # one round trip for a tenant with fewer than a batch due
                found = await self.store.sweep(tenant, now, SWEEP_BATCH)
                swept += found
                if found < SWEEP_BATCH:
                    break
        return swept

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_ms / 1000)
            try:
                await self.sweep()
            except Exception as exc:  # Redis away: the next round catches up
                log.warning("node %s: sweep failed: %s", self.node_id, exc)

    # --- event streams ------------------------------------------------------------------------

    async def log_feed(self, caller: Caller, execution_id: int, after: str | None) -> Feed[list[LogEntry] | None]:
        """The execution's log entries after the entry `after` (None: from its first), as they are written, in
        batches; None when nothing came for a while (a heartbeat); the feed ends after the final transition.
        NotFound before anything is read; Unavailable past `max_event_streams`."""
        await self.queries.require(caller.tenant, execution_id)
        return self.feeds.log(execution_id, after or "0-0")

    async def status_feed(self, caller: Caller, after: str | None) -> Feed[list[StatusEvent] | None]:
        """The status changes of the tenant's executions after the event `after` (None: from now), as they
        happen, in batches; None when nothing came for a while (a heartbeat). It does not end."""
        start = after if after is not None else await self.store.last_status_event(caller.tenant)
        return self.feeds.status(caller.tenant, start)

    # --- adoption -----------------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            check_cancelled()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                check_cancelled()
                log.exception("node %s: reconcile pass failed", self.node_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.reconcile_interval_ms / 1000):
                    await self._reconcile_now.wait()
            self._reconcile_now.clear()

    async def check_leases(self) -> int:
        """Stop at once the actors whose execution another node has taken while a task of theirs runs (after a
        Redis failover, say, that made this node look dead for a moment): their handlers are cancelled now, not
        when their next write is refused, so that one attempt does not run on two nodes for long. How many."""
        actors = self.registry.with_tasks_in_flight()
        if not actors:
            return 0
        rows = await self.store.many_fields([actor.execution_id for actor in actors], ["owner", "epoch"])
        lost = 0
        for actor, row in zip(actors, rows, strict=True):
            if not row:  # gone: the next write says so (Redis lost data is another matter)
                continue
            epoch = row.get("epoch", "")
            held = int(epoch) if epoch.isascii() and epoch.isdigit() else 0
            if row.get("owner") != self.node_id or held != actor.epoch:
                self.registry.lose(actor, row.get("owner", ""), held)
                lost += 1
        return lost

    async def _watch_leases_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_heartbeat_ms / 1000)
            try:
                await self.check_leases()
            except Exception as exc:  # Redis away: the heartbeat's watchdog deals with that
                check_cancelled()
                log.debug("node %s: lease check failed: %r", self.node_id, exc)

    async def _activate(self, execution_id: int) -> int:
        """Drive a running execution no actor drives; 1 if an actor now drives it here, 0 if not (a failure is
        logged: one bad execution must not starve the others)."""
        try:
            if await self.registry.activate(execution_id, None) is None:
                return 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            check_cancelled()
            log.warning("execution %s: not activated: %r", execution_id, exc, extra={"executionID": execution_id})
            return 0
        return 1

    async def reconcile(self) -> int:
        """One reconcile pass (node/reconciler.py): adopt the running executions of nodes whose heartbeat lapsed, take
        back this node's own that no actor drives; how many were adopted."""
        return await self.reconciler.run()
