"""The client's bulk operations (`/bulk-operations`): mixed into `AsyncClient` (`AsyncBulk`) and `Client` (`Bulk`).

job = engine.bulk("pause", filter={"status": "running"}, reason="maintenance window")
while (progress := engine.bulk_job(job.jobID)).status == "running":
    print(progress.done, "of", progress.matched)
engine.bulk_undo(job.jobID)            # resume exactly what it paused and still holds paused
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from procengine.api.bulk_views import (
    BulkCreated,
    BulkDryRun,
    BulkItems,
    BulkJobList,
    BulkJobView,
    BulkRequest,
    BulkSteerRequest,
)
from procengine.client.transport import AsyncTransport, checked_body, page_params

__all__ = ["AsyncBulk", "Bulk"]

T = TypeVar("T")
_BULK = "/bulk-operations"
ENDED = ("completed", "cancelled", "failed")
"""The statuses in which a job does nothing more."""


class AsyncBulk(AsyncTransport):
    async def bulk(
        self,
        action: str,
        *,
        filter: Mapping[str, Any] | None = None,
        ids: Sequence[int] | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        max_per_second: int | None = None,
        signal: str | None = None,
        payload: Any = None,
        variables: Mapping[str, Any] | None = None,
        version: int | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> BulkDryRun | BulkCreated:
        """Run `action` (pause, resume, cancel, signal, retry, edit-variables, migrate) over the executions `filter`
        matches (the list's filter, its query parameters as names: status, processID, "attr.customer", ...) or over
        `ids`, as a durable job: BulkCreated with its jobID to follow with `bulk_job`; with `dry_run`, BulkDryRun (how
        many match, a sample) and nothing is touched."""
        given: dict[str, Any] = {
            "action": action,
            "filter": None if filter is None else dict(filter),
            "ids": None if ids is None else list(ids),
            "reason": reason,
            "dryRun": dry_run or None,
            "maxPerSecond": max_per_second,
            "signal": signal,
            "payload": payload,
            "variables": None if variables is None else dict(variables),
            "version": version,
            "mapping": None if mapping is None else dict(mapping),
        }
        body = checked_body(BulkRequest, {name: value for name, value in given.items() if value is not None})
        if dry_run:
            return await self._data("POST", _BULK, BulkDryRun, body=body)
        return await self._data("POST", _BULK, BulkCreated, body=body, retry=False)

    async def bulk_job(self, job_id: int) -> BulkJobView:
        """A job's status and progress: matched, done, refused (by reason), failed."""
        return await self._data("GET", f"{_BULK}/{int(job_id)}", BulkJobView)

    async def bulk_jobs(self, *, limit: int | None = None, cursor: str | None = None) -> BulkJobList:
        """A page of the tenant's jobs, newest first."""
        return await self._data("GET", _BULK, BulkJobList, params=page_params(limit, cursor))

    async def bulk_items(self, job_id: int, *, limit: int | None = None, cursor: str | None = None) -> BulkItems:
        """A page of a job's per-execution outcomes, oldest first; give back `nextCursor` for the next page."""
        return await self._data("GET", f"{_BULK}/{int(job_id)}/items", BulkItems, params=page_params(limit, cursor))

    async def _steer(self, job_id: int, verb: str, reason: str | None) -> BulkJobView:
        body = None if reason is None else checked_body(BulkSteerRequest, {"reason": reason})
        return await self._data("POST", f"{_BULK}/{int(job_id)}/{verb}", BulkJobView, body=body)

    async def bulk_pause(self, job_id: int, reason: str | None = None) -> BulkJobView:
        """Pause a running job (InvalidTransition otherwise)."""
        return await self._steer(job_id, "pause", reason)

    async def bulk_resume(self, job_id: int, reason: str | None = None) -> BulkJobView:
        """Resume a paused job from where it stopped."""
        return await self._steer(job_id, "resume", reason)

    async def bulk_cancel(self, job_id: int, reason: str | None = None) -> BulkJobView:
        """Cancel a running or paused job (what it did stays done)."""
        return await self._steer(job_id, "cancel", reason)

    async def bulk_undo(self, job_id: int, reason: str | None = None) -> BulkCreated:
        """Undo an ended bulk pause: a resume job over what it paused and still holds paused."""
        body = None if reason is None else checked_body(BulkSteerRequest, {"reason": reason})
        return await self._data("POST", f"{_BULK}/{int(job_id)}/undo", BulkCreated, body=body, retry=False)


class Bulk:
    """The blocking forms of `AsyncBulk`'s methods."""

    if TYPE_CHECKING:
        _async: AsyncBulk

        def _run(self, coroutine: Coroutine[Any, Any, T]) -> T: ...

    def bulk(
        self,
        action: str,
        *,
        filter: Mapping[str, Any] | None = None,
        ids: Sequence[int] | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        max_per_second: int | None = None,
        signal: str | None = None,
        payload: Any = None,
        variables: Mapping[str, Any] | None = None,
        version: int | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> BulkDryRun | BulkCreated:
        return self._run(
            self._async.bulk(
                action, filter=filter, ids=ids, reason=reason, dry_run=dry_run, max_per_second=max_per_second,
                signal=signal, payload=payload, variables=variables, version=version, mapping=mapping,
            )
        )  # fmt: skip

    def bulk_job(self, job_id: int) -> BulkJobView:
        return self._run(self._async.bulk_job(job_id))

    def bulk_jobs(self, *, limit: int | None = None, cursor: str | None = None) -> BulkJobList:
        return self._run(self._async.bulk_jobs(limit=limit, cursor=cursor))

    def bulk_items(self, job_id: int, *, limit: int | None = None, cursor: str | None = None) -> BulkItems:
        return self._run(self._async.bulk_items(job_id, limit=limit, cursor=cursor))

    def bulk_pause(self, job_id: int, reason: str | None = None) -> BulkJobView:
        return self._run(self._async.bulk_pause(job_id, reason))

    def bulk_resume(self, job_id: int, reason: str | None = None) -> BulkJobView:
        return self._run(self._async.bulk_resume(job_id, reason))

    def bulk_cancel(self, job_id: int, reason: str | None = None) -> BulkJobView:
        return self._run(self._async.bulk_cancel(job_id, reason))

    def bulk_undo(self, job_id: int, reason: str | None = None) -> BulkCreated:
        return self._run(self._async.bulk_undo(job_id, reason))
