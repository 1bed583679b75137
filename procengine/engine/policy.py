"""A task's retry policy and timeout for one run of it: the ones an operator changed for that run
(`StackEntry.policy`, `PATCH …/elements/{elementKey}`), else the definition's."""

from __future__ import annotations

from procengine.engine.definitions import RetryPolicy, TaskElement
from procengine.engine.state import StackEntry

__all__ = ["retry_policy", "timeout_ms"]


def retry_policy(entry: StackEntry, element: TaskElement) -> RetryPolicy:
    """The task's retry policy: the one changed for this run of it (`entry.policy`), else the definition's."""
    override = entry.policy.get("retry") if entry.policy is not None else None
    if override is None:
        return element.retry
    try:
        return RetryPolicy.model_validate(override)
    except ValueError:  # stored by hand, not as the API validated it: the definition's
        return element.retry


def timeout_ms(entry: StackEntry, element: TaskElement) -> int | None:
    """The task's timeout: the one changed for this run of it (`entry.policy`), else the definition's."""
    if entry.policy is not None and isinstance(entry.policy.get("timeoutMs"), int):
        return int(entry.policy["timeoutMs"])
    return element.timeoutMs
