"""The bodies and answers of bulk operations (`/bulk-operations`, issue 23): one action over many executions, run as
a durable job (node/bulk.py)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from procengine.api.views import Storable

__all__ = [
    "BULK_ACTIONS",
    "MAX_BULK_IDS",
    "BulkAction",
    "BulkAnswer",
    "BulkCreated",
    "BulkDryRun",
    "BulkItem",
    "BulkItems",
    "BulkJobList",
    "BulkJobStatus",
    "BulkJobView",
    "BulkRequest",
    "BulkSteerRequest",
]

SignalName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]
"""A name a wait-signal element could wait for (as engine/definitions.py's Identifier)."""
BulkAction = Literal["pause", "resume", "cancel", "signal", "retry", "edit-variables", "migrate"]
BULK_ACTIONS: Final = ("pause", "resume", "cancel", "signal", "retry", "edit-variables", "migrate")
BulkJobStatus = Literal["running", "paused", "completed", "cancelled", "failed"]
MAX_BULK_IDS: Final = 10_000
"""The most executions a request may name by id (`ids`); a filter may match more (node/bulk.py's MAX_MATCHED)."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class BulkRequest(_Request):
    """`POST …/bulk-operations`: an action over the executions a `filter` matches (the list filter of `GET
    …/executions/processes`, its query parameters as names: `status`, `processID`, `processKey`, `startedAfter`,
    `startedBefore`, `errorType`, `attr.<name>[.gte|.gt|.lte|.lt]`) or over `ids`, exactly one of the two. `signal`
    (and `payload`) for a signal; `variables` a JSON merge patch for edit-variables (required) and retry (optional);
    `version` (and `mapping`) for migrate. `dryRun` answers how many match and a sample, and touches nothing."""

    action: BulkAction
    filter: dict[str, Any] | None = None
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None, min_length=1, max_length=MAX_BULK_IDS
    )
    reason: str | None = Field(default=None, max_length=1000)
    dryRun: bool = False
    maxPerSecond: int | None = Field(default=None, ge=1, le=100_000)
    variables: dict[str, Storable] | None = None
    signal: SignalName | None = None
    payload: Storable | None = None
    version: int | None = Field(default=None, ge=1, le=2**63 - 1)
    mapping: dict[str, str] | None = None


class BulkSteerRequest(_Request):
    """`POST …/bulk-operations/{jobID}/pause|resume|cancel|undo`: all optional."""

    reason: str | None = Field(default=None, max_length=1000)


class BulkDryRun(_View):
    """A dry run: how many executions the request matches now, and the first of them (at most 20)."""

    action: BulkAction
    matched: int
    sample: list[int]


class BulkCreated(_View):
    """A job was created (202): follow it at `GET …/bulk-operations/{jobID}`."""

    jobID: int
    status: BulkJobStatus
    matched: int


class BulkAnswer(RootModel[BulkCreated | BulkDryRun]):
    """What `POST …/bulk-operations` answers: a job created (202), or a dry run's count and sample (200)."""


class BulkJobView(_View):
    """A bulk operation: its action, status, how many executions it matched, and how many of them are done, refused
    (by reason) or failed so far."""

    jobID: int
    action: BulkAction
    status: BulkJobStatus
    matched: int
    done: int
    refused: dict[str, int]
    failed: int
    createdAt: str
    updatedAt: str | None = None
    endedAt: str | None = None
    reason: str | None = None
    by: str
    filter: dict[str, Any] | None = None
    maxPerSecond: int | None = None
    undoOf: int | None = None
    """The bulk pause this job undoes (a resume job made by `POST …/{jobID}/undo`)."""
    undoneBy: int | None = None
    """The resume job that undoes this bulk pause."""
    error: str | None = None


class BulkJobList(_View):
    items: list[BulkJobView]
    nextCursor: str | None


class BulkItem(_View):
    """What one execution came to in a job: done, refused (its state did not allow it: 409, or not found), failed."""

    executionID: int
    outcome: Literal["done", "refused", "failed"]
    reason: str | None = None
    at: str


class BulkItems(_View):
    items: list[BulkItem]
    nextCursor: str | None
