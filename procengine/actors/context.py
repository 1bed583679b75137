"""What every execution actor of a node shares: the store, the settings, the clock, the handlers, the metrics, and
the node's hand on children (a protocol, so that the actor never imports the node)."""

from __future__ import annotations

from dataclasses import dataclass, field

from procengine.actors.child_control import ChildControl
from procengine.actors.inflight import InFlight
from procengine.runtime.clock import Clock
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.store.executions import ExecutionStore
from procengine.tasks import HandlerRegistry

__all__ = ["ActorContext"]


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
