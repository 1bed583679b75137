"""What every execution actor of a node shares: the store, the settings, the clock, the handlers, the metrics, and
the node's hand on children (a protocol, so that the actor never imports the node)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from procengine.actors.child_control import ChildControl
from procengine.actors.external import ExternalTasks
from procengine.actors.inflight import InFlight
from procengine.engine.compiled import CompiledProcess
from procengine.runtime.clock import Clock
from procengine.runtime.metrics import Metrics
from procengine.runtime.tracing import Tracing
from procengine.settings import Settings
from procengine.store.executions import ExecutionStore
from procengine.tasks import HandlerRegistry

__all__ = ["ActorContext", "ProcessVersions"]


class ProcessVersions(Protocol):
    """The node's process versions, as a migration reads them (the node's `Catalog`)."""

    async def version_id(self, tenant: str, key: str, version: int | None) -> int: ...

    async def compiled(self, tenant: str, process_id: int) -> CompiledProcess: ...


@dataclass(frozen=True, slots=True)
class ActorContext:
    """What every actor of a node shares."""

    store: ExecutionStore
    settings: Settings
    clock: Clock
    handlers: HandlerRegistry
    node_id: str
    metrics: Metrics
    children: ChildControl
    in_flight: InFlight = field(default_factory=InFlight)
    """The node's executions with a task in flight (kept by the lanes, read by the lease check)."""
    processes: ProcessVersions | None = None
    """The process versions a migration moves an execution to (None: a context made without them, in tests)."""
    tracing: Tracing | None = None
    """The node's tracer; None when tracing is off, and then no span is made (actors/spans.py)."""
    external: ExternalTasks | None = None
    """Where attempts of tasks with a `queue` go for workers (None: a context made without them, in tests)."""
