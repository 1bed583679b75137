"""The chaos run's audit: what the run saw (final statuses, logs, variables, the tasks' side effects, what the
clients were told) against what a correct engine must show. Pure functions over plain data, so that a test can
feed it a broken run and see it fail.

Every execution of the chaos definition must end `completed` (it cannot fail); only those a client was allowed to
cancel may end `cancelled`. Each check gives problems (the run fails on any) under one name:

- `not completed`: an execution failed (with its error), was cancelled without leave, or was not final (lost);
- `completed twice`: an element completed more often than it ran (the loop's counter tells how often);
- `missing`: an acknowledged transition or signal (200, 202) that the log does not show;
- `signal not once`: a keyed signal the log received more or fewer than once, or that landed in `notes` more or
  fewer than once;
- `moved while paused`: an element event between `paused` and `resumed`; or a pause never resumed;
- `side effects`: an element completed with no side effect, a run that never completed, or a re-run the log does
  not name (a retry, a re-run after a pause, an adoption after a kill);
- `concurrent run`: two runs of one attempt (execution, element, run, attempt) overlapping in time;
- `duplicate start`: one start idempotency key answered with two executions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from procengine.runtime.clock import parse_iso

FINAL = ("completed", "failed", "cancelled")
NOTES = 3
"""Keyed `note` signals each execution of the chaos definition takes (its inbox thread ends after this many)."""
LOOP = ("work", "nap", "count", "more")
"""The elements of the chaos definition's loop: they complete once per round."""
INBOX = ("inbox", "file", "full")
"""The elements of the inbox thread's loop: they complete once per note signal."""
TASKS = ("work", "side_work", "last")
"""The chaos definition's task elements (handler chaos-work): each run leaves a side effect."""
ELEMENT_EVENTS = ("element-started", "element-completed", "element-failed", "element-retry")

Entry = dict[str, Any]
"""A log entry as GET …/log answers it: at, event, elementKey, detail."""


@dataclass(frozen=True)
class Effect:
    """One run of a task attempt, as the chaos handler recorded it in its own Redis."""

    run: str
    key: str
    """The attempt: `execution:element:executionOrder:attempt` (TaskContext.idempotency_key)."""
    node: str
    pid: int
    start: float
    end: float | None
    """None when the process died while it ran (kill -9)."""
    outcome: str | None = None

    @property
    def execution(self) -> int:
        return int(self.key.split(":")[0])

    @property
    def element(self) -> str:
        return self.key.split(":")[1]

    @property
    def order(self) -> int:
        return int(self.key.split(":")[2])


def parse_effects(lines: Iterable[bytes | str]) -> list[Effect]:
    """The records of chaos_handlers (S and E lines) as one Effect per run."""
    starts: dict[str, list[str]] = {}
    ends: dict[str, list[str]] = {}
    for raw in lines:
        parts = (raw.decode() if isinstance(raw, bytes) else raw).split()
        (starts if parts[0] == "S" else ends)[parts[1]] = parts
    effects = []
    for run, (_, _, key, node, pid, at) in starts.items():
        end = ends.get(run)
        effects.append(
            Effect(run, key, node, int(pid), float(at), float(end[2]) if end else None, end[3] if end else None)
        )
    return effects


@dataclass
class Observed:
    """Everything the chaos run collected, as the audit's input."""

    statuses: dict[int, str]
    """Final status of every execution the clients started (absent: never final, lost)."""
    logs: dict[int, list[Entry]]
    variables: dict[int, dict[str, Any]]
    """Each execution's variables at the end (memory of GET …/state)."""
    limits: dict[int, int]
    """Each execution's loop rounds (its `limit` variable)."""
    effects: list[Effect]
    acknowledged: list[tuple[int, str, str]] = field(default_factory=list)
    """(execution, log event, request id or signal key) the clients were told took effect."""
    notes: dict[int, list[str]] = field(default_factory=dict)
    """The keys of the `note` signals acknowledged (202) to each execution: each must be taken exactly once."""
    cancellable: set[int] = field(default_factory=set)
    starts: dict[str, set[int]] = field(default_factory=dict)
    """Start idempotency key -> the executions its answers named (one each)."""
    gone_at: dict[int, float] = field(default_factory=dict)
    """pid -> when that node was killed (its runs without an end ended then at the latest)."""
    last_seen: dict[int, str] = field(default_factory=dict)
    """The status a lost execution was last seen in."""


@dataclass
class Audit:
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    outcomes: Counter[str] = field(default_factory=Counter)
    figures: Counter[str] = field(default_factory=Counter)
    standstills: list[float] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(self.problems.values())


def audit(seen: Observed) -> Audit:
    result = Audit()
    for execution_id in sorted(seen.limits):
        log = seen.logs.get(execution_id, [])
        status = seen.statuses.get(execution_id, "lost")
        result.outcomes[status] += 1
        allowed = ("completed", "cancelled") if execution_id in seen.cancellable else ("completed",)
        if status not in allowed:
            seen_as = (
                f" (still {seen.last_seen[execution_id]})"
                if status == "lost" and execution_id in seen.last_seen
                else ""
            )
            result.problems["not completed"].append(f"{execution_id}: {status}{seen_as}{_why(log, status)}")
        result.problems["completed twice"] += completed_twice(execution_id, log, seen.limits[execution_id], status)
        result.problems["moved while paused"] += still_while_paused(execution_id, log, status, result.figures)
        result.standstills.append(longest_standstill(log))
    result.problems["missing"] += missing(seen)
    result.problems["signal not once"] += signals_once(seen, result.figures)
    effects(seen, result)
    for key, ids in seen.starts.items():
        if len(ids) > 1:
            result.problems["duplicate start"].append(f"start key {key}: executions {sorted(ids)}")
    return result


def _why(log: list[Entry], status: str) -> str:
    """The error of a failed execution, as its log's `failed` entry says it."""
    for entry in reversed(log):
        if entry["event"] == status == "failed":
            detail = entry.get("detail") or {}
            what = {k: detail[k] for k in ("element", "elementKey", "error", "errorType") if k in detail}
            return f" ({what or detail})"
    return ""


def completed_twice(execution_id: int, log: list[Entry], rounds: int, outcome: str, notes: int = NOTES) -> list[str]:
    """Elements that completed more often than they can have run: the loop's at most `rounds` times (exactly, once
    the execution completed), the inbox's at most `notes` times, every other element at most once."""
    done = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
    problems = []
    for key, times in done.items():
        most = rounds if key in LOOP else notes if key in INBOX else 1
        if times > most:
            problems.append(f"{execution_id}: {key} completed {times} times (at most {most})")
    if outcome == "completed" and done["count"] != rounds:
        problems.append(f"{execution_id}: the loop's counter completed {done['count']} times, not {rounds}")
    return problems


def still_while_paused(execution_id: int, log: list[Entry], outcome: str, figures: Counter[str]) -> list[str]:
    """No element may start, end or retry between `paused` and `resumed`; a completed execution's every pause
    was resumed. Counts the pauses checked."""
    problems = []
    paused_at: str | None = None
    for entry in log:
        event = entry["event"]
        if event == "paused":
            paused_at = entry["at"]
            figures["pauses checked"] += 1
        elif event in ("resumed", "cancelled"):
            paused_at = None
        elif paused_at is not None and event in ELEMENT_EVENTS:
            problems.append(
                f"{execution_id}: {event} {entry.get('elementKey')} at {entry['at']}, paused at {paused_at}"
            )
        elif paused_at is not None and event == "completed":
            problems.append(f"{execution_id}: completed while paused (since {paused_at})")
    if paused_at is not None and outcome == "completed":
        problems.append(f"{execution_id}: paused at {paused_at} and never resumed")
    return problems


def missing(seen: Observed) -> list[str]:
    """Acknowledged transitions and signals the log does not show."""
    problems = []
    for execution_id, event, ref in seen.acknowledged:
        key = "idempotencyKey" if event == "signal-received" else "requestId"
        if not any(
            e["event"] == event and (e.get("detail") or {}).get(key) == ref for e in seen.logs.get(execution_id, [])
        ):
            problems.append(f"{execution_id} {event} {ref}")
    return problems


def signals_once(seen: Observed, figures: Counter[str]) -> list[str]:
    """Each acknowledged `note` signal: received once by the log, and in the `notes` variable once (when the
    execution completed: its inbox thread took every note). Any keyed signal received twice is a problem."""
    problems = []
    for execution_id, log in seen.logs.items():
        received = Counter(
            (e.get("detail") or {}).get("idempotencyKey") for e in log if e["event"] == "signal-received"
        )
        received.pop(None, None)
        for key, times in received.items():
            if times > 1:
                problems.append(f"{execution_id}: signal {key} received {times} times")
        sent = seen.notes.get(execution_id, [])
        figures["signals sent (acknowledged keys)"] += len(sent)
        figures["signals taken (log)"] += sum(received[key] for key in sent)
        for key in sent:
            if received[key] != 1:
                problems.append(f"{execution_id}: signal {key} acknowledged, received {received[key]} times")
        if seen.statuses.get(execution_id) == "completed":
            landed = Counter(seen.variables.get(execution_id, {}).get("notes") or [])
            for key in set(landed) | set(sent):
                if landed[key] != 1:
                    problems.append(f"{execution_id}: signal {key} is in notes {landed[key]} times")
    return problems


def effects(seen: Observed, result: Audit) -> None:
    """The tasks' side effects against the log, and runs of one attempt that overlapped in time."""
    figures, problems = result.figures, result.problems
    figures["side effects"] = len(seen.effects)
    by_element: dict[tuple[int, str], list[Effect]] = defaultdict(list)
    by_attempt: dict[str, list[Effect]] = defaultdict(list)
    for effect in seen.effects:
        by_element[(effect.execution, effect.element)].append(effect)
        by_attempt[effect.key].append(effect)
    for execution_id, log in seen.logs.items():
        status = seen.statuses.get(execution_id)
        if status is None:  # not final: it may have run on after its log was read (and fails the audit anyway)
            continue
        completed = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
        named = named_reruns(log)
        for element in TASKS:
            runs = by_element.get((execution_id, element), [])
            orders = {effect.order for effect in runs}
            # a completed execution completed every run it started; another may have one run cut short
            if len(orders) < completed[element]:
                problems["side effects"].append(
                    f"{execution_id}: {element} completed {completed[element]} times, with side effects of "
                    f"{len(orders)} runs"
                )
            elif len(orders) > completed[element] + (status != "completed"):
                problems["side effects"].append(
                    f"{execution_id}: {element} ran {len(orders)} times, completed {completed[element]} times"
                )
            again = len(runs) - len(orders)
            figures["re-runs"] += again
            if again > named[element]:
                problems["side effects"].append(
                    f"{execution_id}: {element} re-ran {again} times, the log names {named[element]} "
                    f"(retries, re-runs, adoptions while it ran)"
                )
    for key, runs in by_attempt.items():
        for first, second in overlapping(runs, seen.gone_at):
            figures["concurrent runs"] += 1
            problems["concurrent run"].append(
                f"{key}: on {first.node} (pid {first.pid}) from {first.start:.3f} and on {second.node} "
                f"(pid {second.pid}) from {second.start:.3f}"
            )


def named_reruns(log: list[Entry]) -> Counter[str]:
    """How many extra runs of each task element the log accounts for: a retry (a new attempt), a re-run after a
    pause or cancel cut it short (`rerun`), an adoption (`adopted`) while it was started and not ended."""
    named: Counter[str] = Counter()
    running: set[str] = set()
    for entry in log:
        event, key = entry["event"], entry.get("elementKey")
        detail = entry.get("detail") or {}
        if event == "element-started" and key is not None:
            running.add(key)
            if detail.get("rerun"):
                named[key] += 1
        elif event == "element-retry" and key is not None:
            named[key] += 1
        elif event in ("element-completed", "element-failed") and key is not None:
            running.discard(key)
        elif event == "adopted":
            for key in running:
                named[key] += 1
    return named


def overlapping(runs: list[Effect], gone_at: dict[int, float]) -> list[tuple[Effect, Effect]]:
    """Pairs of runs that overlap in time. A run without an end ended when its process was killed, or (a
    process still up) has not ended."""

    def end(effect: Effect) -> float:
        if effect.end is not None:
            return effect.end
        return gone_at.get(effect.pid, float("inf"))

    ordered = sorted(runs, key=lambda effect: effect.start)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :] if b.start < end(a)]


def longest_standstill(log: list[Entry]) -> float:
    """The longest time, in seconds, between two entries of the main thread's loop while the execution was
    running (not paused), before it reached its wait."""
    longest = 0.0
    last: float | None = None
    paused = False
    for entry in log:
        at = parse_iso(entry["at"]) / 1000
        event, key = entry["event"], entry.get("elementKey")
        if event == "paused":
            paused, last = True, None
        elif event == "resumed":
            paused, last = False, at
        elif event in ("element-started", "element-completed") and key in LOOP:
            if last is not None and not paused:
                longest = max(longest, at - last)
            last = at
        elif event == "element-completed" and key == "go":
            break  # from here the execution waits for the client's signal
        elif event in FINAL:
            break
    return longest
