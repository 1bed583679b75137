"""The execution actor as its transitions and its finishing see it.

`transitions.py` and `finishing.py` are functions of the actor (`actor.py: ExecutionActor`), which calls them:
they take it as this protocol, so that neither imports the module that imports them.
"""

from __future__ import annotations

from typing import Protocol

from procengine.actors.checkpoints import CheckpointWriter
from procengine.actors.context import ActorContext
from procengine.actors.lanes import LaneRunners
from procengine.engine.compiled import CompiledProcess
from procengine.engine.interpreter import Interpreter
from procengine.engine.state import ExecutionState
from procengine.statuses import Status
from procengine.store.executions import Commit, StoredExecution

__all__ = ["Host"]


class Host(Protocol):
    status: Status
    state: ExecutionState
    corrupted: bool

    @property
    def execution_id(self) -> int: ...

    @property
    def tenant(self) -> str: ...

    @property
    def process(self) -> CompiledProcess: ...

    @property
    def ctx(self) -> ActorContext: ...

    @property
    def interpreter(self) -> Interpreter: ...

    @property
    def writer(self) -> CheckpointWriter: ...

    @property
    def lanes(self) -> LaneRunners: ...

    @property
    def fields(self) -> dict[str, str]: ...

    async def stored(self) -> StoredExecution | None:
        """The execution as Redis holds it (the activation's read, once, if nothing was written since)."""

    async def write(self, commit: Commit, *, expect: Status, not_after_ms: int | None = None) -> None:
        """`CheckpointWriter.write`, and an error when the request's deadline passed first."""

    async def settle(self) -> bool:
        """Finish the execution if its threads are done or one failed; True if it is final now."""

    def use_version(self, process: CompiledProcess) -> None:
        """Run another version of the process from now on (a migration, once written)."""

    async def announce(self) -> None:
        """Tell the tenant's status-events stream the status just written."""
