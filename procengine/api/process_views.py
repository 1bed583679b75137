"""What the API takes and answers about one process version's life: deprecating it, deleting it, and how many
executions of it are in each status (`GET /processes`, `PATCH` and `DELETE /processes/{processID}`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExecutionCounts", "ProcessDeleted", "ProcessPatch"]


class ExecutionCounts(BaseModel):
    """How many of the tenant's stored executions of a version are in each status (its indexes' sizes, O(1) each;
    an execution past its retention counts until the sweeper takes it out)."""

    model_config = ConfigDict(frozen=True)

    running: int = 0
    paused: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class ProcessPatch(BaseModel):
    """`PATCH /processes/{processID}`: a deprecated version takes no new start (single, batch, child or fork, by
    its processID or, while it is its key's latest, by its key: 409 PROCESS_DEPRECATED); its executions go on."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    deprecated: bool
    reason: str | None = Field(default=None, max_length=1000, description="Why, for the server's log.")


class ProcessDeleted(BaseModel):
    """The answer of `DELETE /processes/{processID}`: the version deleted, and its key's latest version now (the
    highest left: a start by key takes it), null when none is left."""

    model_config = ConfigDict(frozen=True)

    processID: int
    key: str
    version: int
    deleted: bool = True
    latestProcessID: int | None = None
    latestVersion: int | None = None
