"""JSON merge patch (RFC 7396) of an execution's variables: what a retry's `variables` and a paused execution's
`PATCH …/variables` apply. Pure: the actor checks the result against the limits and writes it."""

from __future__ import annotations

from typing import Any

__all__ = ["applied", "merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 §2: an object patch merges into an object (a `null` member removes that name, an object member
    merges again one level down); any other patch replaces the target. Neither argument is changed."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


_ABSENT = object()


def applied(variables: dict[str, Any], patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The variables after `patch`, and what changed, for the log: {"before": {...}, "after": {...}} with the names
    the patch touched whose value differs (a name absent on one side is absent from that side's map)."""
    after = merge_patch(variables, patch)
    before_changed: dict[str, Any] = {}
    after_changed: dict[str, Any] = {}
    for name in patch:
        old, new = variables.get(name, _ABSENT), after.get(name, _ABSENT)
        if (old is _ABSENT and new is _ABSENT) or old == new:
            continue
        if old is not _ABSENT:
            before_changed[name] = old
        if new is not _ABSENT:
            after_changed[name] = new
    return after, {"before": before_changed, "after": after_changed}
