"""The execution list's filters: checked against what the tenant's definitions declare, planned over the tenant's
indexes, and read a batch at a time.

A filter becomes a set of index checks (each a sorted set of the tenant's slot) and a row test. The plan drives
the read with the most selective check, by the sizes Redis gives at once (ZCARD of a set scored by execution id,
ZCOUNT of a range of a set scored by value), and checks the others for each batch of the driver's ids with one
ZMSCORE each, in one round trip: a page costs O(page / the selectivity of the others), never O(matches). A range
check (a number's, a time's, the start time) scored by value cannot be read newest first; when it is the most
selective and small (MATERIALIZE ids at most) its ids are read whole and sorted instead. Each row read is tested
against the whole filter too: an index may lag behind its execution (on a Redis Cluster, edited beside the
execution's write), and a row that does not match is skipped. docs/architecture.md, "Indexes", tells the plan.

`Search.matching_ids` is the same read for a caller that wants every match, page by page (bulk operations).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from procengine.api.filters import AttributeFilter, ExecutionFilter
from procengine.api.problems import refusal
from procengine.engine.attributes import parse_time, value_problem
from procengine.runtime.clock import parse_iso
from procengine.store import indexes
from procengine.store.executions import ExecutionStore
from procengine.store.failures import translated
from procengine.store.search import ATTRIBUTES_FIELD, BY_VALUE, decode_attributes, error_type, member_value, words

__all__ = ["MATERIALIZE", "Check", "Plan", "Scan", "Search"]

Declared = Callable[[str], Awaitable[dict[str, str]]]
"""tenant -> the attributes its definitions declare, name -> type (`Catalog.declared_attributes`)."""

MATERIALIZE: Final = 5_000
"""The most ids of a range check read whole to drive a page (past it, a set scored by id drives)."""
BUDGET_PAGES: Final = 20
"""A page reads at most this many pages' worth of the driver's ids (at least MIN_BUDGET): past it the page is
answered short, with a cursor to go on from, so one request never walks a whole index."""
MIN_BUDGET: Final = 2_000
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

    def bounds(self) -> tuple[str, str]:
        """ZCOUNT / ZRANGEBYSCORE bounds."""
        low = "-inf" if self.low == -math.inf else f"{'(' if self.low_open else ''}{_number(self.low)}"
        high = "+inf" if self.high == math.inf else f"{'(' if self.high_open else ''}{_number(self.high)}"
        return low, high

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
        declared = await self.declared(tenant) if wanted.attributes else {}
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
        """Up to `wanted` matching rows, newest first, of ids below `after` (None: from the newest)."""
        redis = self.store.redis
        async with redis.pipeline(transaction=False) as pipe:
            for check in plan.checks:
                if check.by_id:
                    pipe.zcard(check.key)
                else:
                    pipe.zcount(check.key, *check.bounds())
            sizes = [int(size) for size in await pipe.execute()]
        found = Scan(last=after)
        if min(sizes) == 0:
            return found
        order = sorted(range(len(plan.checks)), key=lambda i: (sizes[i], not plan.checks[i].by_id))
        by_id = [i for i in order if plan.checks[i].by_id]
        first = order[0]
        if plan.checks[first].by_id or sizes[first] > MATERIALIZE:
            first = by_id[0]  # the pick of status and process is always one: there is always one scored by id
            materialized = None
        else:
            materialized = await self._materialize(plan.checks[first], after)
        driver, others = plan.checks[first], [plan.checks[i] for i in order if i != first]
        # one more than the page: whether more come. Beside other checks a batch is larger, as some of it is left out
        batch = wanted + 1 if not others else min(max(2 * (wanted + 1), 100), 1000)
        budget = max(MIN_BUDGET, BUDGET_PAGES * wanted)
        cursor = after
        while len(found.rows) < wanted and budget > 0:
            if materialized is not None:
                ids, materialized = materialized[:batch], materialized[batch:]
                exhausted = not materialized
            else:
                ids = await self.store.page(driver.key, cursor, batch)
                exhausted = len(ids) < batch
            if not ids:
                found.more = False
                break
            budget -= len(ids)
            kept = await self._checked(ids, others)
            room = wanted - len(found.rows)
            taken = kept[:room]  # only the rows the page can show are read
            rows = await self.store.many_fields(taken, fields) if taken else []
            found.rows += [(i, row) for i, row in zip(taken, rows, strict=True) if plan.shows(row)]
            if len(kept) > room:  # the index has more after the last row read: go on from it
                cursor = found.last = taken[-1]
                found.more = True
                if materialized is not None:
                    materialized = [i for i in ids if i < cursor] + materialized
                continue
            cursor = found.last = ids[-1]
            found.more = not exhausted
            if exhausted:
                break
        return found

    async def _materialize(self, check: Check, after: int | None) -> list[int]:
        raw: Any = await self.store.redis.zrangebyscore(check.key, *check.bounds())
        ids = sorted((int(member) for member in raw), reverse=True)
        return ids if after is None else [i for i in ids if i < after]

    async def _checked(self, ids: list[int], others: list[Check]) -> list[int]:
        """The ids in every other check's set (and in its range): one ZMSCORE per check, in one round trip."""
        if not others:
            return ids
        members = [str(i) for i in ids]
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for check in others:
                pipe.zmscore(check.key, members)
            scores = await pipe.execute()
        return [i for n, i in enumerate(ids) if all(c.admits(s[n]) for c, s in zip(others, scores, strict=True))]

    async def matching_ids(
        self, tenant: str, wanted: ExecutionFilter, *, page: int = 500, after: int | None = None
    ) -> AsyncIterator[list[int]]:
        """Every execution of `tenant` that matches `wanted`, newest first, `page` ids at a time (a page may be
        shorter, never empty), from below `after` (None: the newest). ValidationFailed as `plan`. Each page is read
        when asked for: an execution started or changed meanwhile may be in it or not, one whose status changed
        may be left out; none is given twice. The id of a page's last execution is a cursor to go on from."""
        plan = await self.plan(tenant, wanted)
        cursor = after
        while True:
            found = await self.scan(plan, after=cursor, wanted=page, fields=["tenant", *_needed(plan)])
            if found.rows:
                yield [execution_id for execution_id, _ in found.rows]
            if not found.more:
                return
            cursor = found.last


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
