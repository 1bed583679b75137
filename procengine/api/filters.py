"""The filter of the execution list as the caller gave it (the query of `GET …/executions/processes`, a bulk
operation's `filter`): names and texts, checked by the node against what the tenant's definitions declare
(`node/search.py`), which lists every problem at once (422)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

__all__ = ["ATTR_PREFIX", "OPERATORS", "AttributeFilter", "ExecutionFilter", "Operator"]

Operator = Literal["eq", "gte", "lte", "gt", "lt"]
OPERATORS: Final[tuple[Operator, ...]] = get_args(Operator)
_BY_NAME: Final[dict[str, Operator]] = {op: op for op in OPERATORS}
ATTR_PREFIX: Final = "attr."
"""Query parameters `attr.<name>` (equality) and `attr.<name>.<gte|lte|gt|lt>` (a number's or a time's range)."""


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    name: str
    op: Operator
    value: str
    """As given: the node reads it by the attribute's declared type."""

    @property
    def parameter(self) -> str:
        """The query parameter it came as (what a problem names)."""
        return f"{ATTR_PREFIX}{self.name}" + ("" if self.op == "eq" else f".{self.op}")


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """Every filter of the list; None or empty: any."""

    status: str | None = None
    process_id: int | None = None
    process_key: str | None = None
    started_after: str | None = None
    """ISO-8601: executions started at or after it."""
    started_before: str | None = None
    """ISO-8601: executions started before it."""
    error_type: str | None = None
    """Failed executions whose error has this type."""
    attributes: tuple[AttributeFilter, ...] = field(default=())

    @classmethod
    def parameters(cls, given: dict[str, str]) -> tuple[tuple[AttributeFilter, ...], list[str]]:
        """The `attr.*` query parameters as filters, and the names among them that are not of that form."""
        found: list[AttributeFilter] = []
        bad: list[str] = []
        for parameter, value in given.items():
            rest = parameter[len(ATTR_PREFIX) :]
            name, _, op = rest.partition(".")
            operator = _BY_NAME.get(op or "eq")
            if not name or operator is None or op == "eq":
                bad.append(parameter)
                continue
            found.append(AttributeFilter(name, operator, value))
        return tuple(found), bad
