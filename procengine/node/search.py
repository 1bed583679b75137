"""The execution list's filters: checked against what the tenant's definitions declare, planned over the tenant's
indexes, and read a batch at a time.

A filter becomes a set of index checks (each a sorted set of the tenant's slot) and a row test. The read of the
indexes is one call of store/lua/search.lua (every check's key is in the tenant's slot, so a Redis Cluster runs it
too): it drives with the most selective check, by the sizes it reads first (ZCARD of a set scored by execution
id, ZCOUNT of a range of a set scored by value), and checks the others for each batch of the driver's ids with
one ZMSCORE each: a page costs O(page / the selectivity of the others), never O(matches). A range check (a
number's, a time's, the start time) cannot be read newest first; when it is the most selective and small
(MATERIALIZE ids at most) its ids are read whole and sorted instead. The rows of the ids it gives are read in a
second round trip and tested against the whole filter: an index may lag behind its execution (on a Redis
Cluster, edited beside the execution's write), and a row that does not match is skipped. With only status and
process filters, their one index holds exactly the matches and is paged directly. docs/architecture.md,
"Indexes", tells the plan.

`Search.matching_ids` is the same read for a caller that wants every match, page by page (bulk operations).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from procengine.api.filters import AttributeFilter, ExecutionFilter
from procengine.api.problems import refusal
from procengine.engine.attributes import parse_time, value_problem
from procengine.runtime.clock import parse_iso
from procengine.statuses import Status
from procengine.store import indexes
from procengine.store.executions import ExecutionStore
from procengine.store.failures import translated
from procengine.store.search import ATTRIBUTES_FIELD, BY_VALUE, decode_attributes, error_type, member_value, words

__all__ = ["MATERIALIZE", "Check", "Plan", "Scan", "Search"]

Declared = Callable[[str, Collection[str]], Awaitable[dict[str, str]]]
"""(tenant, the names a filter needs) -> the attributes its definitions declare, name -> type
(`Catalog.declared_attributes`)."""

MATERIALIZE: Final = 5_000
"""The most ids of a range check read whole to drive a page (past it, a set scored by id drives)."""
BUDGET_PAGES: Final = 20
"""A page reads at most this many pages' worth of the driver's ids (at least MIN_BUDGET): past it the page is
answered short, with a cursor to go on from, so one request never walks a whole index."""
MIN_BUDGET: Final = 2_000
BATCH_MIN: Final = 100
BATCH_MAX: Final = 1_000
LIVE_STATUSES: Final = frozenset((Status.RUNNING.value, Status.PAUSED.value))
"""The driver's ids read at a time beside other checks: twice the page, within these."""
ROW_FIELDS: Final = [
    "status",
    "processID",
    "processKey",
    "processVersion",
    "startedAt",
    "stoppedAt",
    "tenant",
    "parentExecutionID",
    ATTRIBUTES_FIELD,
    "error",
]


@dataclass(frozen=True, slots=True)
class Check:
    """One sorted set an execution must be in: scored by id (any score), or by value within bounds."""

    key: str
    by_id: bool = True
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def admits(self, score: float | None) -> bool:
        if score is None:
            return False
        if self.by_id:
            return True
        above = score > self.low if self.low_open else score >= self.low
        below = score < self.high if self.high_open else score <= self.high
        return above and below

    def narrowed(self, other: Check) -> Check:
        """Both range checks of one set in one (`attr.amount.gte=1&attr.amount.lt=9`)."""
        # the higher low and the lower high; at a tie the open bound (the stricter) wins
        low, low_open = max((self.low, self.low_open), (other.low, other.low_open))
        high, high_closed = min((self.high, not self.high_open), (other.high, not other.high_open))
        return Check(self.key, False, low, high, low_open, not high_closed)


@dataclass(frozen=True, slots=True)
class Plan:
    tenant: str
    filter: ExecutionFilter
    checks: tuple[Check, ...]
    started: tuple[int | None, int | None] = (None, None)
    """startedAfter (inclusive), startedBefore (exclusive), epoch ms."""
    attributes: tuple[tuple[AttributeFilter, str, Any], ...] = ()
    """Each attribute filter with its declared type and its value read by that type."""

    def shows(self, row: Mapping[str, str]) -> bool:
        """The row matches the whole filter (an index may lag behind it: see the module's docstring)."""
        wanted = self.filter
        if not row or row.get("tenant") != self.tenant:
            return False
        if wanted.status is not None and row.get("status") != wanted.status:
            return False
        if wanted.process_id is not None and row.get("processID") != str(wanted.process_id):
            return False
        if wanted.process_key is not None and row.get("processKey") != wanted.process_key:
            return False
        if wanted.error_type is not None and error_type(row) != wanted.error_type:
            return False
        after, before = self.started
        if after is not None or before is not None:
            try:
                started = parse_iso(row.get("startedAt", ""))
            except ValueError:
                return False
            if (after is not None and started < after) or (before is not None and started >= before):
                return False
        if self.attributes:
            held = decode_attributes(row.get(ATTRIBUTES_FIELD))
            return all(_holds(held.get(f.name), f, kind, value) for f, kind, value in self.attributes)
        return True


@dataclass(slots=True)
class Scan:
    """What one read of a plan found: the matching rows in order, the last id it looked at, and whether the
    driver may hold more."""

    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    last: int | None = None
    more: bool = False


class Search:
    def __init__(self, store: ExecutionStore, declared: Declared) -> None:
        self.store = store
        self.declared = declared

    async def plan(self, tenant: str, wanted: ExecutionFilter) -> Plan:
        """The checks of a filter; ValidationFailed naming every bad parameter (an attribute no definition of the
        tenant declares, a value its type cannot read, a range on a type that has none, a time that is none)."""
        keys = self.store.keys
        problems: list[str] = []
        checks: list[Check] = [Check(indexes.pick(keys, tenant, wanted.status, wanted.process_id))]
        started: list[int | None] = [None, None]
        for at, (name, text) in enumerate(
            (("startedAfter", wanted.started_after), ("startedBefore", wanted.started_before))
        ):
            if text is None:
                continue
            ms = parse_time(text)
            if ms is None:
                problems.append(f"{name}: {text[:50]!r} is not an ISO-8601 time")
            started[at] = ms
        if started[0] is not None or started[1] is not None:
            low = -math.inf if started[0] is None else float(started[0])
            high = math.inf if started[1] is None else float(started[1])
            checks.append(Check(keys.started(tenant), False, low, high, False, started[1] is not None))
        if wanted.error_type is not None:
            checks.append(Check(keys.error_index(tenant, wanted.error_type)))
        names = {each.name for each in wanted.attributes}
        declared = await self.declared(tenant, names) if names else {}
        read: list[tuple[AttributeFilter, str, Any]] = []
        ranges: dict[str, Check] = {}
        for each in wanted.attributes:
            kind = declared.get(each.name)
            if kind is None:
                known = ", ".join(sorted(declared)) or "none"
                problems.append(
                    f"{each.parameter}: no definition of the tenant declares {each.name!r} (declared: {known})"
                )
                continue
            value, problem = _read(kind, each)
            if problem is not None:
                problems.append(f"{each.parameter}: {problem}")
                continue
            read.append((each, kind, value))
            if kind in BY_VALUE:
                check = _range(keys.attribute_range(tenant, each.name), each, float(value))
                ranges[each.name] = ranges[each.name].narrowed(check) if each.name in ranges else check
            elif kind == "text":
                checks += [Check(keys.attribute_word(tenant, each.name, word)) for word in words(str(value))]
            else:
                checks.append(Check(keys.attribute_value(tenant, each.name, member_value(kind, value))))
        if problems:
            raise refusal("the list's filter is invalid", problems)
        return Plan(tenant, wanted, tuple(checks + list(ranges.values())), (started[0], started[1]), tuple(read))

    @translated
    async def scan(self, plan: Plan, *, after: int | None, wanted: int, fields: list[str] = ROW_FIELDS) -> Scan:
        """Up to `wanted` matching rows, newest first, of ids below `after` (None: from the newest). With one check
        (status and process only) its index holds exactly the matches: a page of it. With more, search.lua picks
        the driver and checks the others in one round trip; the rows of what it gives are read in a second."""
        found = Scan(last=after)
        budget = max(MIN_BUDGET, BUDGET_PAGES * wanted)
        while len(found.rows) < wanted and budget > 0:
            room = wanted - len(found.rows)
            if len(plan.checks) == 1:
                ids = await self.store.page(plan.checks[0].key, found.last, room + 1)  # one more: whether more come
                found.more = len(ids) > room
                ids = ids[:room]
                cursor = ids[-1] if ids else found.last
                budget -= room + 1
            else:
                ids, cursor, found.more = await self._indexed(plan, found.last, room, budget)
                budget = 0 if len(ids) < room else budget - room  # short: the script's budget ran out, or no more
            rows = await self.store.many_fields(ids, fields) if ids else []
            # a row that no longer matches (an index one change behind, keys expired): skipped, the page goes on
            found.rows += [(i, row) for i, row in zip(ids, rows, strict=True) if plan.shows(row)]
            found.last = cursor
            if not found.more:
                break
        return found

    async def _indexed(
        self, plan: Plan, after: int | None, wanted: int, budget: int
    ) -> tuple[list[int], int | None, bool]:
        """search.lua: up to `wanted` ids in every check below `after`, the cursor after them, whether more may
        come (at most `budget` ids looked at)."""
        args: list[str | int] = [
            "" if after is None else str(after),
            wanted,
            min(max(2 * (wanted + 1), BATCH_MIN), BATCH_MAX),
            budget,
            MATERIALIZE,
        ]
        for check in plan.checks:
            args += [
                "id" if check.by_id else "range",
                "" if check.low == -math.inf else _number(check.low),
                "1" if check.low_open else "0",
                "" if check.high == math.inf else _number(check.high),
                "1" if check.high_open else "0",
            ]
        raw: Any = await self.store.scripts.search(keys=[check.key for check in plan.checks], args=args)
        ids, cursor, more = raw
        return [int(i) for i in ids], int(cursor) if cursor else after, bool(int(more))

    async def matching_ids(
        self, tenant: str, wanted: ExecutionFilter, *, page: int = 500, after: int | None = None
    ) -> AsyncIterator[list[int]]:
        """Every execution of `tenant` that matches `wanted`, newest first, `page` ids at a time (a page may be
        shorter, never empty), from below `after` (None: the newest). ValidationFailed as `plan`. Each page is read
        when asked for: an execution started or changed meanwhile may be in it or not, one whose status changed
        may be left out; none is given twice. The id of a page's last execution is a cursor to go on from."""
        plan = await self.plan(tenant, wanted)
        cursor = after
        if self._index_only(plan):  # its index holds exactly the matches: no row to read
            while True:
                ids = await self.store.page(plan.checks[0].key, cursor, page + 1)  # one more: whether more come
                if ids[:page]:
                    yield ids[:page]
                if len(ids) <= page:
                    return
                cursor = ids[page - 1]
        while True:
            found = await self.scan(plan, after=cursor, wanted=page, fields=["tenant", *_needed(plan)])
            if found.rows:
                yield [execution_id for execution_id, _ in found.rows]
            if not found.more:
                return
            cursor = found.last

    def _index_only(self, plan: Plan) -> bool:
        """Whether the plan's one index holds exactly its matches, so that reading their rows would only repeat it:
        a status (and process) index of live executions (they do not expire, so the index names none whose keys
        are gone) edited in the executions' own writes (`indexes_in_script`: never one change behind)."""
        wanted = plan.filter
        return (
            len(plan.checks) == 1
            and self.store.indexes_in_script
            and wanted.status in LIVE_STATUSES
            and wanted.process_key is None
        )


def _needed(plan: Plan) -> list[str]:
    """The fields `Plan.shows` reads, beyond the tenant."""
    wanted = plan.filter
    names = ["status", "processID", "processKey", "startedAt"]
    if wanted.error_type is not None:
        names += ["error"]
    if wanted.attributes:
        names += [ATTRIBUTES_FIELD]
    return names


def _read(kind: str, given: AttributeFilter) -> tuple[Any, str | None]:
    """A filter's value read by its attribute's type, or the problem."""
    text = given.value
    if given.op != "eq" and kind not in BY_VALUE:
        return None, f"{given.op} compares numbers and times; {given.name!r} is a {kind}"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return None, f"{text[:50]!r} is not a number"
        return (number, None) if math.isfinite(number) else (None, f"{text[:50]!r} is not a finite number")
    if kind == "bool":
        if text not in ("true", "false"):
            return None, f"{text[:50]!r} is not true or false"
        return text == "true", None
    if kind == "text":
        found = words(text)
        return (text, None) if found else (None, f"{text[:50]!r} has no word to look for")
    return value_problem(kind, text)


def _range(key: str, given: AttributeFilter, value: float) -> Check:
    if given.op == "eq":
        return Check(key, False, value, value)
    if given.op in ("gte", "gt"):
        return Check(key, False, low=value, low_open=given.op == "gt")
    return Check(key, False, high=value, high_open=given.op == "lt")


def _holds(held: list[Any] | None, given: AttributeFilter, kind: str, value: Any) -> bool:
    """The execution's attribute (as stored, [type, value]) passes one attribute filter."""
    if held is None or held[0] != kind:
        return False
    have = held[1]
    if kind == "text":
        return set(words(str(value))) <= set(words(str(have)))
    if kind not in BY_VALUE:
        return bool(have == value)
    if isinstance(have, bool) or not isinstance(have, int | float):
        return False
    return _range("", given, float(value)).admits(float(have))


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
