"""The client's repair verbs: retry, edit variables, fork, rewind, migrate (whole executions) and the step controls
(one element of a paused or failed execution: step, breakpoints, retry, skip, complete, fail, move, run now,
change policy). Mixed into `AsyncClient` (client/async_client.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from pydantic import BaseModel

from procengine.api.views import (
    BreakpointsRequest,
    BreakpointsResult,
    CompleteRequest,
    ElementPolicyRequest,
    ElementRetryRequest,
    FailRequest,
    ForkRequest,
    MigrateRequest,
    MigrateResult,
    MoveRequest,
    RetryRequest,
    RetryResult,
    RewindRequest,
    RewindResult,
    RunNowRequest,
    SkipRequest,
    StartResult,
    SteppedResult,
    StepRequest,
    StepResult,
    VariablesResult,
)
from procengine.client.transport import AsyncTransport, dump, execution_path, request_body

__all__ = ["NO_OUTPUT", "AsyncRepair", "breakpoint_item"]


class _NoOutput:
    def __repr__(self) -> str:
        return "NO_OUTPUT"


NO_OUTPUT: Final = _NoOutput()
"""`skip`'s default: no output given (None sends `null`, which is stored)."""


class AsyncRepair(AsyncTransport):
    async def retry(
        self,
        execution_id: int,
        *,
        variables: Mapping[str, Any] | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RetryResult:
        """Retry a failed execution, same id: it goes on from the elements that failed (attempts reset), with
        `variables` merge-patched (RFC 7396: None removes a name) in the same write. InvalidTransition unless
        failed. With `idempotency_key` a repeat answers as the first (and it may be retried)."""
        given = {"variables": None if variables is None else dict(variables), "reason": reason,
                 "idempotencyKey": idempotency_key}  # fmt: skip
        body = {name: value for name, value in given.items() if value is not None}
        request_body(RetryRequest, body)  # refused here as the server would; sent as given (null removes)
        return await self._data(
            "POST",
            execution_path(execution_id, "retry"),
            RetryResult,
            body=dump(body),
            retry=idempotency_key is not None,
        )

    async def edit_variables(
        self, execution_id: int, patch: Mapping[str, Any], *, reason: str | None = None
    ) -> VariablesResult:
        """Change a paused execution's variables by a JSON merge patch (RFC 7396: None removes a name, a mapping
        merges into the mapping it names). InvalidTransition unless paused."""
        params = {"reason": reason} if reason is not None else None
        return await self._data(
            "PATCH", execution_path(execution_id, "variables"), VariablesResult, body=dump(dict(patch)), params=params
        )

    # --- step controls: one element of a paused or failed execution (it is paused after) ---------------

    async def fork(
        self,
        execution_id: int,
        checkpoint: int | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        paused: bool = False,
        reason: str | None = None,
    ) -> StartResult:
        """Start a new execution of the same process version from kept checkpoint `checkpoint` of this one (its
        latest if None), `variables` merge-patched, running unless `paused`. NotFound unless kept."""
        given = {"checkpoint": checkpoint, "variables": None if variables is None else dict(variables),
                 "paused": paused or None, "reason": reason}  # fmt: skip
        body = {name: value for name, value in given.items() if value is not None}
        request_body(ForkRequest, body)
        return await self._data("POST", execution_path(execution_id, "fork"), StartResult, body=dump(body))

    async def rewind(
        self,
        execution_id: int,
        checkpoint: int,
        *,
        variables: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> RewindResult:
        """Put a paused, failed or cancelled execution back to its kept checkpoint `checkpoint` (a `seq` of
        `checkpoints`), same id, `variables` merge-patched in the same write: paused there. NotFound for a checkpoint
        not kept, InvalidTransition while running."""
        given = {
            "checkpoint": checkpoint,
            "variables": None if variables is None else dict(variables),
            "reason": reason,
        }
        body = {name: value for name, value in given.items() if value is not None}
        request_body(RewindRequest, body)
        return await self._data("POST", execution_path(execution_id, "rewind"), RewindResult, body=dump(body))

    async def migrate(
        self,
        execution_id: int,
        version: int,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> MigrateResult:
        """Move a paused or failed execution to `version` of its process (same id, same status), the elements
        renamed in it named by `mapping` ({old key: new key}). `dry_run`: only the plan and its problems, nothing
        written. ValidationError listing every problem of a plan that cannot be applied, NotFound for a version the
        process lacks, InvalidTransition in any other status."""
        given = {
            "version": version,
            "mapping": None if mapping is None else dict(mapping),
            "dryRun": dry_run or None,
            "reason": reason,
        }
        body = {name: value for name, value in given.items() if value is not None}
        request_body(MigrateRequest, body)
        return await self._data("POST", execution_path(execution_id, "migrate"), MigrateResult, body=dump(body))

    async def step(self, execution_id: int, *, lane: str | None = None, reason: str | None = None) -> SteppedResult:
        """Step mode: a paused execution runs exactly the next element of each lane (or of `lane`) and pauses again;
        the answer says what ran. InvalidTransition unless paused."""
        body = {name: value for name, value in {"lane": lane, "reason": reason}.items() if value is not None}
        request_body(StepRequest, body)
        return await self._data("POST", execution_path(execution_id, "step"), SteppedResult, body=dump(body))

    async def set_breakpoints(
        self, execution_id: int, pause_before: Sequence[str | Mapping[str, str]], *, reason: str | None = None
    ) -> BreakpointsResult:
        """Set where a running or paused execution pauses before an element (the whole set; [] clears it): element
        keys, or {"element": key, "when": CEL}. The answer's `alreadyStarted` are the runs that had begun (they will
        not stop); before every other run of those elements the execution will pause."""
        body: dict[str, Any] = {"pauseBefore": [breakpoint_item(item) for item in pause_before]}
        if reason is not None:
            body["reason"] = reason
        request_body(BreakpointsRequest, body)
        return await self._data("PUT", execution_path(execution_id, "breakpoints"), BreakpointsResult, body=dump(body))

    async def retry_element(
        self, execution_id: int, element: str, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        """Start `element` of a paused or failed execution's stack again (attempt 1); the execution is paused after
        it (resume goes on). `lane` names where it stands when it stands in several (branches, iterations)."""
        return await self._step(execution_id, element, "retry", ElementRetryRequest, {"lane": lane, "reason": reason})

    async def skip(
        self,
        execution_id: int,
        element: str,
        *,
        output: Any = NO_OUTPUT,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Skip `element`: recorded skipped, its `next` followed; an `output` given (None too) is stored as if it
        had run. The execution is paused after it."""
        body: dict[str, Any] = {"lane": lane, "reason": reason}
        if output is not NO_OUTPUT:
            body["output"] = output
        return await self._step(execution_id, element, "skip", SkipRequest, body, keep=("output",))

    async def complete(
        self,
        execution_id: int,
        element: str,
        output: Any = None,
        *,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Complete the task `element` as if its handler had returned `output`. The execution is paused after it."""
        body = {"output": output, "lane": lane, "reason": reason}
        return await self._step(execution_id, element, "complete", CompleteRequest, body, keep=("output",))

    async def fail(
        self,
        execution_id: int,
        element: str,
        error: str,
        *,
        type: str = "Error",
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Fail `element` with `error` of `type`: a catch clause for it takes the lane on (paused after), else the
        execution ends failed."""
        body = {"error": error, "type": type, "lane": lane, "reason": reason}
        return await self._step(execution_id, element, "fail", FailRequest, body)

    async def move(self, execution_id: int, lane: str, before: str, *, reason: str | None = None) -> StepResult:
        """Put `lane` (a thread's key, or a branch or iteration path) of a paused or failed execution before the
        element `before` of its thread or branch: a fresh entry, attempt 1. The execution is paused after it."""
        given = {"lane": lane, "before": before, "reason": reason}
        body = {name: value for name, value in given.items() if value is not None}
        request_body(MoveRequest, body)
        return await self._data("POST", execution_path(execution_id, "move"), StepResult, body=dump(body))

    async def run_now(
        self, execution_id: int, element: str, *, lane: str | None = None, reason: str | None = None
    ) -> StepResult:
        """End the retry backoff or the delay `element` of a running execution waits on: it goes on at once.
        InvalidTransition unless running and waiting on such a timer."""
        return await self._step(execution_id, element, "run-now", RunNowRequest, {"lane": lane, "reason": reason})

    async def change_policy(
        self,
        execution_id: int,
        element: str,
        *,
        retry: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        lane: str | None = None,
        reason: str | None = None,
    ) -> StepResult:
        """Change the pending task `element`'s retry policy (`retry`: maxAttempts, backoffMs, backoffMultiplier,
        maxBackoffMs, as a definition's) and/or timeout for this run of it, on a running or paused execution."""
        given = {"retry": None if retry is None else dict(retry), "timeoutMs": timeout_ms, "lane": lane,
                 "reason": reason}  # fmt: skip
        body = {name: value for name, value in given.items() if value is not None}
        request_body(ElementPolicyRequest, body)
        path = execution_path(execution_id, f"elements/{quote(element, safe='')}")
        return await self._data("PATCH", path, StepResult, body=dump(body))

    async def _step(
        self,
        execution_id: int,
        element: str,
        action: str,
        model: type[BaseModel],
        given: dict[str, Any],
        keep: tuple[str, ...] = (),
    ) -> StepResult:
        body = {name: value for name, value in given.items() if value is not None or name in keep}
        request_body(model, body)  # refused here as the server would
        path = execution_path(execution_id, f"elements/{quote(element, safe='')}/{action}")
        return await self._data("POST", path, StepResult, body=dump(body))


def breakpoint_item(given: str | Mapping[str, str]) -> str | dict[str, str]:
    """A breakpoint as the API takes it: an element key, or {"element": key, "when": CEL}."""
    return given if isinstance(given, str) else dict(given)
