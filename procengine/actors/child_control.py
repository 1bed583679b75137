"""What an actor asks of its node for the children of its call-process elements: a protocol the node's `Children`
(procengine/node/children.py) implements, so that the actor, one layer down, never imports the node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from procengine.engine.outcomes import StartChild

__all__ = ["POLL_S", "RETRY_S", "ChildControl", "ChildEnd"]

POLL_S = 1.0
"""How often a parent whose child runs on another node reads the child's status."""
RETRY_S = 1.0
"""How long a call-process waits before it tries again to start a child the engine could not start (503)."""


@dataclass(frozen=True, slots=True)
class ChildEnd:
    status: str
    """completed, failed, cancelled, gone (its keys were removed) or unreadable (edited by hand)."""
    variables: dict[str, Any] | None
    error: str | None


class ChildControl(Protocol):
    """What an actor asks of the engine for the children of its call-process elements (see `children.py`)."""

    async def start(
        self, tenant: str, parent_id: int, step: StartChild, depth: int, trace: Mapping[str, str] | None = None
    ) -> int: ...

    async def running(self, child_ids: list[int]) -> list[int]: ...

    async def ended(self, child_id: int) -> ChildEnd | None: ...

    async def control(
        self,
        tenant: str,
        verb: Literal["pause", "resume", "cancel"],
        child_ids: list[int],
        parent_id: int,
        reason: str | None,
    ) -> list[int]: ...

    def notify_parent(self, parent_id: int) -> None: ...

    async def retry(self, tenant: str, child_id: int, parent_id: int, reason: str | None) -> None:
        """Retry a failed child in place (a retry of its parent's call-process); the child's refusal if it is
        refused."""
        ...
