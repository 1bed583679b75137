"""Child executions of call-process elements: started once, read when they end, told when their parent is paused,
resumed or cancelled.

A child is an execution like any other (same tenant, same limits, its own actor and owner), started through the
engine with an idempotency key made of its parent and the call's place in the parent's stack (in a key space of the
engine's own, apart from clients' idempotency keys), so that a parent that crashes before it has checkpointed the
child's id starts no second child. The child's hash names its parent
(`parentExecutionID`), the parent's hash lists its children (`children`). A parent learns that its child ended
from the child's actor when both live on one node, and else by reading the child's status every
`POLL_S` seconds: what it acts on is always what Redis holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Literal, Protocol

from procengine.actors.child_control import ChildEnd
from procengine.api.service import Caller
from procengine.api.views import (
    CancelResult,
    ControlRequest,
    PauseResult,
    ResumeResult,
    RetryRequest,
    RetryResult,
    StartRequest,
    StartResult,
)
from procengine.engine.outcomes import StartChild
from procengine.errors import CodecError, ProcEngineError, ValidationFailed
from procengine.node.catalog import Catalog
from procengine.node.registry import Registry
from procengine.statuses import Status
from procengine.store.codec import decode
from procengine.store.executions import ExecutionStore

log = logging.getLogger(__name__)

MAX_DEPTH = 10
"""How deep call-process elements may nest at run time (a child of a child ...): deeper fails with ChildFailed."""

Verb = Literal["pause", "resume", "cancel"]


class ChildHost(Protocol):
    """What children need of their node (the Node): starting executions, the three transitions, and its parts."""

    catalog: Catalog
    store: ExecutionStore
    registry: Registry

    async def start_execution(
        self,
        caller: Caller,
        request: StartRequest,
        *,
        parent: int | None = None,
        depth: int = 0,
        child_key: str | None = None,
    ) -> tuple[StartResult, bool]: ...

    async def pause(self, caller: Caller, execution_id: int, request: ControlRequest) -> PauseResult: ...

    async def resume(self, caller: Caller, execution_id: int, request: ControlRequest) -> ResumeResult: ...

    async def cancel(self, caller: Caller, execution_id: int, request: ControlRequest) -> CancelResult: ...

    async def retry(self, caller: Caller, execution_id: int, request: RetryRequest) -> RetryResult: ...


class Children:
    def __init__(self, engine: ChildHost) -> None:
        self.engine = engine

    async def start(
        self, tenant: str, parent_id: int, step: StartChild, depth: int, trace: Mapping[str, str] | None = None
    ) -> int:
        """The child's execution id: started now, or earlier by the same call (same idempotency key). `depth`:
        the child's, 1 for a child of an execution nobody called; past MAX_DEPTH it is refused (422). `trace`: the
        parent's trace context, which the child's joins."""
        if depth > MAX_DEPTH:
            raise ValidationFailed(
                f"call-process nests {depth} deep; at most {MAX_DEPTH} (a process that calls itself without end?)",
                [f"process {step.process!r} at depth {depth}"],
            )
        engine = self.engine
        process_id = await engine.catalog.version_id(tenant, step.process, step.version)
        key = f"{parent_id}.{step.start_key}"  # the engine's own key space: no client's idempotency key reaches it
        request = StartRequest(processID=process_id, variables=step.input)
        trace = trace or {}
        caller = Caller(
            tenant=tenant,
            by=f"execution {parent_id}",
            request_id="",
            traceparent=trace.get("traceparent"),
            tracestate=trace.get("tracestate"),
        )
        result, created = await engine.start_execution(caller, request, parent=parent_id, depth=depth, child_key=key)
        if not created:  # started by an earlier try of this call; or the key was taken by someone else's start
            fields = await engine.store.fields(result.executionID)
            if fields.get("parentExecutionID") != str(parent_id):
                raise ValidationFailed(
                    f"idempotency key {key!r} names execution {result.executionID}, which is no child of "
                    f"execution {parent_id}",
                    [key],
                )
        return result.executionID

    async def running(self, child_ids: list[int]) -> list[int]:
        """Those of the children that are running now (no round trip for none: every pause asks)."""
        if not child_ids:
            return []
        rows = await self.engine.store.many_fields(child_ids, ["status"])
        return [child for child, row in zip(child_ids, rows, strict=True) if row.get("status") == "running"]

    async def ended(self, child_id: int) -> ChildEnd | None:
        """How the child ended; None while it runs or is paused."""
        fields = await self.engine.store.fields(child_id)
        if not fields:
            return ChildEnd("gone", None, "its keys are gone")
        # Edited by hand into something unreadable: the call fails (ChildFailed) rather than the parent's lane
        # raising, which its node's take-backs would repeat every reconcile pass. Such a child is driven by no one.
        try:
            status = Status(fields.get("status", ""))
        except ValueError:
            return ChildEnd("unreadable", None, f"its status {fields.get('status')!r} is not one procengine knows")
        if not status.is_final:
            return None
        if status is Status.COMPLETED:
            stored = await self.engine.store.load(child_id)
            try:
                memory = decode(stored.state["memory"]) if stored is not None and stored.state.get("memory") else {}
            except CodecError as exc:
                return ChildEnd("unreadable", None, f"its memory cannot be read: {exc.message}")
            variables = memory.get("variables") if isinstance(memory, dict) else None
            return ChildEnd(status.value, variables if isinstance(variables, dict) else {}, None)
        error = json.loads(fields["error"]).get("error") if fields.get("error") else None
        return ChildEnd(status.value, None, error)

    async def control(
        self, tenant: str, verb: Verb, child_ids: list[int], parent_id: int, reason: str | None
    ) -> list[int]:
        """Pass a parent's pause, resume or cancel on to its children; the ids it took effect on (a child that
        is already in the state asked for, or has ended, is left as it is)."""
        caller = Caller(tenant=tenant, by=f"execution {parent_id}", request_id="")
        said = f"parent execution {parent_id}" + (f": {reason}" if reason else "")
        request = ControlRequest(reason=said[:1000])
        commands = {"pause": self.engine.pause, "resume": self.engine.resume, "cancel": self.engine.cancel}[verb]

        async def one(child_id: int) -> int | None:
            try:
                await commands(caller, child_id, request)
            except ProcEngineError as exc:
                if exc.status >= 500:
                    log.warning("execution %s: could not %s child %s: %s", parent_id, verb, child_id, exc.message)
                return None
            except Exception:  # the parent's own transition stands; the child is left as it is
                log.exception("execution %s: could not %s child %s", parent_id, verb, child_id)
                return None
            return child_id

        done = await asyncio.gather(*(one(child_id) for child_id in child_ids))
        return [child_id for child_id in done if child_id is not None]

    async def retry(self, tenant: str, child_id: int, parent_id: int, reason: str | None) -> None:
        """A parent's retry of its call-process whose child failed: the child is retried in place, through its
        owner like any retry (its refusal is raised: the parent's retry is refused with it)."""
        caller = Caller(tenant=tenant, by=f"execution {parent_id}", request_id="")
        said = f"parent execution {parent_id}" + (f": {reason}" if reason else "")
        await self.engine.retry(caller, child_id, RetryRequest(reason=said[:1000]))

    def notify_parent(self, parent_id: int) -> None:
        """A child ended: wake its parent's lanes if its actor lives here (else the parent's poll finds it)."""
        actor = self.engine.registry.get(parent_id)
        if actor is not None:
            actor.wake_lanes()
