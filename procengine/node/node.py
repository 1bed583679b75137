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

from opentelemetry.trace import TracerProvider
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from procengine.actors.actor import SIGNAL_KEY_FIELD, TRANSITION_TARGETS, ActorContext, log_refusal
from procengine.actors.external import ExternalTasks
from procengine.actors.messages import Command, Request, Verb
from procengine.actors.repairs import retried_answer
from procengine.api.process_views import ProcessDeleted, ProcessPatch
from procengine.api.service import Caller
from procengine.api.task_views import (
    ExtendResult,
    FetchRequest,
    FetchResult,
    QueueList,
    SettleResult,
    TaskCompleteRequest,
    TaskExtendRequest,
    TaskFailRequest,
)
from procengine.api.views import (
    BreakpointsResult,
    CancelResult,
    ControlRequest,
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
    SteppedResult,
    StepResult,
    VariablesResult,
)
from procengine.errors import (
    VERB_PHRASES,
    CodecError,
    InvalidTransition,
    MailboxClosed,
    MailboxFull,
    OwnedElsewhere,
    PayloadTooLarge,
    ProcEngineError,
    Unavailable,
    ValidationFailed,
)
from procengine.node.bulk import BulkOperations
from procengine.node.catalog import Catalog
from procengine.node.children import Children
from procengine.node.control import ControlListener
from procengine.node.feeds import Feeds
from procengine.node.idempotency import IdempotentStarts
from procengine.node.ownership import Ownership, new_node_id
from procengine.node.queries import Queries
from procengine.node.reads import Reads
from procengine.node.reconciler import Reconciler
from procengine.node.registry import Registry
from procengine.node.routing import Router
from procengine.node.schedule_loop import ScheduleLoop
from procengine.node.schedules import ScheduleOperations
from procengine.node.starting import BatchStarts
from procengine.node.starts import Starts
from procengine.node.steps import StepControls
from procengine.node.task_queues import TaskQueues
from procengine.node.travel import TimeTravel
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.clock import Clock, SystemClock
from procengine.runtime.collector import observe_pauses
from procengine.runtime.metrics import Metrics, sample_loop_lag
from procengine.runtime.tracing import Tracing
from procengine.settings import Settings
from procengine.statuses import Status
from procengine.store.bulk_jobs import BulkJobStore
from procengine.store.codec import encode
from procengine.store.executions import (
    ExecutionStore,
    HistoryBounds,
)
from procengine.store.failures import store_errors
from procengine.store.health import StoreHealth
from procengine.store.history import HistoryStore
from procengine.store.keys import Keys
from procengine.store.probe import StoreProbe
from procengine.store.processes import ProcessStore
from procengine.store.schedules import ScheduleStore
from procengine.store.scripts import Scripts
from procengine.store.task_queues import TaskQueueStore
from procengine.tasks import HandlerRegistry

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

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


class Node(Starts, Reads, StepControls, TimeTravel, BulkOperations, ScheduleOperations):
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        handlers: HandlerRegistry,
        *,
        clock: Clock | None = None,
        node_id: str | None = None,
        metrics: Metrics | None = None,
        tracer_provider: TracerProvider | None = None,
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
        self.external = ExternalTasks(TaskQueueStore(redis, self.keys), self.clock, self.node_id)
        self.ctx = ActorContext(
            self.store,
            settings,
            self.clock,
            handlers,
            self.node_id,
            self.metrics,
            children=Children(self),
            processes=self.catalog,
            tracing=None if tracer_provider is None else Tracing(tracer_provider),
            external=self.external,
        )
        self.tasks = TaskQueues(
            redis, self.keys, self.external.store, self.external, self.clock, settings.redis_timeout_s
        )
        """External task workers' fetch, complete, fail, extend (node/task_queues.py)."""
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
        await self.probe.open()
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
            asyncio.create_task(self.tasks.listen_forever(), name="tasks-settled"),
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
        self.external.leaving = True  # tasks in workers' hands stay there for the node that adopts their executions
        await self.registry.stop_all()
        await self.store.aclose()
        await self.external.store.aclose()
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
        self.external.leaving = True  # tasks in workers' hands stay there for the nodes that adopt their executions
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

    # --- external task workers (node/task_queues.py) ------------------------------------------

    async def fetch_tasks(self, caller: Caller, request: FetchRequest) -> FetchResult:
        self._refuse_if_draining()
        return await self.tasks.fetch(caller, request)

    async def complete_task(self, caller: Caller, task_id: str, request: TaskCompleteRequest) -> SettleResult:
        return await self.tasks.complete(caller, task_id, request)

    async def fail_task(self, caller: Caller, task_id: str, request: TaskFailRequest) -> SettleResult:
        return await self.tasks.fail(caller, task_id, request)

    async def extend_task(self, caller: Caller, task_id: str, request: TaskExtendRequest) -> ExtendResult:
        return await self.tasks.extend(caller, task_id, request)

    async def task_queues(self, caller: Caller) -> QueueList:
        return await self.tasks.queues(caller)

    # --- adoption -----------------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            check_cancelled()
            try:
                await self.reconcile()
                await self.tasks.refresh_metrics(self.metrics, list(self.settings.tenants))
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
