"""The node's step controls (issue 20, point 3): the service methods of `POST …/{id}/elements/{key}/retry|skip|
complete|fail`. What can be checked without the execution is checked here (an output storable and within the
memory limit); the rest is the owner's actor's (`actors/steps.py`), reached like any command (`Node._ask`:
activated here, or forwarded to the node that drives it; a failed execution's actor is activated for it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from procengine.actors.messages import Command, StepOrder
from procengine.api.service import Caller
from procengine.api.views import (
    CompleteRequest,
    ElementPolicyRequest,
    ElementRetryRequest,
    FailRequest,
    MoveRequest,
    RunNowRequest,
    SkipRequest,
    StepResult,
)
from procengine.engine.interpreter import MEMORY_RESERVE
from procengine.engine.sizes import bounded_size
from procengine.errors import CodecError, PayloadTooLarge, ValidationFailed
from procengine.settings import Settings

__all__ = ["StepControls"]

M = TypeVar("M", bound=BaseModel)


class StepControls:
    """Mixed into `Node`, which provides `settings` and `_ask`."""

    settings: Settings

    if TYPE_CHECKING:

        async def _ask(self, execution_id: int, command: Command, result: type[M], *, forward: bool = True) -> M: ...

    async def retry_element(
        self, caller: Caller, execution_id: int, element_key: str, request: ElementRetryRequest
    ) -> StepResult:
        """An element of a paused or failed execution's stack starts again (attempt 1); it is (or becomes) paused."""
        return await self._step(caller, execution_id, StepOrder("retry", element_key, request.lane), request.reason)

    async def skip_element(
        self, caller: Caller, execution_id: int, element_key: str, request: SkipRequest
    ) -> StepResult:
        """The element is recorded skipped and its `next` followed (an output given stored as if it had run)."""
        given = "output" in request.model_fields_set
        if given:
            self._check_output(request.output)
        order = StepOrder("skip", element_key, request.lane, request.output, has_output=given)
        return await self._step(caller, execution_id, order, request.reason)

    async def complete_element(
        self, caller: Caller, execution_id: int, element_key: str, request: CompleteRequest
    ) -> StepResult:
        """A pending task completes as if its handler had returned `output`."""
        self._check_output(request.output)
        order = StepOrder("complete", element_key, request.lane, request.output, has_output=True)
        return await self._step(caller, execution_id, order, request.reason)

    async def fail_element(
        self, caller: Caller, execution_id: int, element_key: str, request: FailRequest
    ) -> StepResult:
        """The element fails with the error and type given: a catch takes it, or the execution ends failed."""
        order = StepOrder("fail", element_key, request.lane, error=request.error, error_type=request.type)
        return await self._step(caller, execution_id, order, request.reason)

    async def run_now(self, caller: Caller, execution_id: int, element_key: str, request: RunNowRequest) -> StepResult:
        """A running execution's element waiting on a retry backoff or a delay goes on at once."""
        command = Command("run-now", caller, request.reason, step=StepOrder("run-now", element_key, request.lane))
        return await self._ask(execution_id, command, StepResult)

    async def change_policy(
        self, caller: Caller, execution_id: int, element_key: str, request: ElementPolicyRequest
    ) -> StepResult:
        """A pending task's retry policy and/or timeout, for this run of it; on a running or paused execution."""
        policy: dict[str, Any] = {}
        if request.retry is not None:
            policy["retry"] = request.retry.model_dump(exclude_none=True)  # over the policy in force (the actor)
        if request.timeoutMs is not None:
            policy["timeoutMs"] = request.timeoutMs
        order = StepOrder("policy", element_key, request.lane, policy=policy)
        return await self._ask(execution_id, Command("policy", caller, request.reason, step=order), StepResult)

    async def move(self, caller: Caller, execution_id: int, request: MoveRequest) -> StepResult:
        """A lane of a paused or failed execution is put before another element of its thread or branch."""
        return await self._step(caller, execution_id, StepOrder("move", request.before, request.lane), request.reason)

    async def _step(self, caller: Caller, execution_id: int, order: StepOrder, reason: str | None) -> StepResult:
        return await self._ask(execution_id, Command("step", caller, reason, step=order), StepResult)

    def _check_output(self, output: Any) -> None:
        """An output given by an operator: storable, and within the memory limit on its own."""
        self._check_fits(output, "the output", "output", "does")

    def _check_fits(self, value: Any, what: str, field: str, verb: str) -> None:
        """A value an operator gives (a patch of the variables, an element's output) storable, and within the memory
        limit on its own: 422 or 413 naming `what` before anything is read (the actor checks the whole memory)."""
        room = self.settings.max_snapshot_bytes - MEMORY_RESERVE
        try:
            size = bounded_size(value, room)
        except CodecError as exc:
            raise ValidationFailed(f"{what} cannot be stored", [f"{field}: {exc.message}"]) from None
        if size is None:
            raise PayloadTooLarge(
                f"{what} {verb} not fit in the execution's memory: its snapshot may take "
                f"{self.settings.max_snapshot_bytes} bytes (--max-snapshot-bytes)"
            )
