"""The API's answers as short text for people; `--json` prints the answer's data instead.

Each function takes a model of `procengine.api.views` and gives what `rich` prints, so the commands hold no
formatting and a changed answer shows up here only.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from procengine.api.views import (
    BatchStartResult,
    BlockedOn,
    BreakpointsResult,
    CancelResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointView,
    ExecutionList,
    ExecutionStatusView,
    LogEntry,
    MigrateResult,
    PauseResult,
    ProcessSummary,
    ResumeResult,
    RetryResult,
    RewindResult,
    SignalResult,
    StartResult,
    SteppedResult,
    StepResult,
    VariablesResult,
)

__all__ = [
    "STATUS_STYLES",
    "blocked_line",
    "breakpoints",
    "cancelled",
    "checkpoint",
    "checkpoint_diff",
    "checkpoints",
    "edited",
    "executions",
    "forked",
    "log_line",
    "paused",
    "registered",
    "resumed",
    "retried",
    "rewound",
    "signalled",
    "started",
    "status",
    "stepped_mode",
]

# Never cut short in the list: the id is what the other commands take, the status and the parent are short.
_WHOLE_COLUMNS = frozenset({"ID", "STATUS", "PARENT"})

STATUS_STYLES = {
    "running": "cyan",
    "paused": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def started(result: StartResult) -> Text:
    version = f", version {result.processVersion}" if result.processVersion is not None else ""
    process = f" of processID {result.processID}{version}" if result.processID is not None else ""
    return Text.assemble(f"started execution {result.executionID}{process}: ", _status(result.status))


def started_many(result: BatchStartResult, lines: list[int]) -> Text:
    """A line per start of `start --batch` (by its line in the file), then the counts."""
    text = Text()
    for item in result.items:
        where = f"line {lines[item.index]}: " if item.index < len(lines) else f"start {item.index}: "
        if item.error is not None:
            text.append(f"{where}failed ", style="red")
            text.append(f"{item.error.code} ({item.error.status}): {item.error.message}\n")
        else:
            text.append(f"{where}{item.outcome} execution {item.executionID}\n")
    text.append(f"{result.started} started, {result.existing} existing, {result.failed} failed")
    return text


def paused(result: PauseResult) -> Text:
    return Text(
        f"paused execution {result.executionID} at {result.pausedAt}: {result.completedNodes}/{result.totalNodes} "
        f"elements done, {result.inflightNodes} in flight when asked"
    )


def resumed(result: ResumeResult) -> Text:
    return Text(
        f"resumed execution {result.executionID} at {result.resumedAt} after {result.pausedDurationMs} ms paused; "
        f"{result.pendingNodes} pending"
    )


def cancelled(result: CancelResult) -> Text:
    return Text(f"cancelled execution {result.executionID} at {result.cancelledAt}")


def retried(result: RetryResult) -> Text:
    what = ", ".join(result.retried) or "nothing failed on its stack"
    children = (
        f"; child executions retried: {', '.join(map(str, result.retriedChildren))}" if result.retriedChildren else ""
    )
    return Text.assemble(
        f"retried execution {result.executionID} at {result.retriedAt} from {what}{children}; "
        f"{result.pendingNodes} pending: ",
        _status(result.status),
    )


def edited(result: VariablesResult) -> Text:
    changed = ", ".join(result.changed) or "nothing"
    return Text(f"execution {result.executionID} ({result.status}): variables changed: {changed}")


_DONE = {
    "retry": "retried",
    "skip": "skipped",
    "complete": "completed",
    "fail": "failed",
    "move": "moved a lane to",
    "run-now": "ran now",
    "policy": "changed the policy of",
}


def stepped(result: StepResult) -> Text:
    caught = f"; caught, goes on at {result.caught}" if result.caught else ""
    pending = ", ".join(f"{e.elementKey} ({e.lane})" for e in result.stack) or "nothing"
    return Text.assemble(
        f"{_DONE[result.action]} element {result.elementKey} ({result.lane}) of execution {result.executionID}"
        f"{caught}; pending: {pending}; now ",
        _status(result.status),
    )


def signalled(result: SignalResult) -> Text:
    verb = "accepted" if result.accepted else "not accepted"
    return Text(f"signal {result.signal!r} {verb} by execution {result.executionID}")


def registered(summary: ProcessSummary) -> Text:
    return Text(f"registered {summary.key!r} version {summary.version} (processID {summary.processID})")


def status(view: ExecutionStatusView) -> RenderableType:
    """The status, progress, timing, relations and error of an execution, then its threads."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row(
        f"execution {view.executionID}",
        Text.assemble(f"{view.processKey} v{view.processVersion} (processID {view.processID})  ", _status(view.status)),
    )
    progress = view.progress
    facts.add_row(
        "progress",
        f"{progress.completedNodes}/{progress.totalNodes} elements, {progress.failedNodes} failed "
        f"({progress.percentage:g}%)",
    )
    timing = view.timing
    when = f"started {timing.startedAt}"
    if timing.stoppedAt is not None:
        when += f", stopped {timing.stoppedAt}"
    when += f", {timing.durationMs} ms"
    if timing.pausedAt is not None:
        when += f", paused since {timing.pausedAt}"
    if timing.pausedDurationMs:
        when += f" ({timing.pausedDurationMs} ms paused in all)"
    facts.add_row("timing", when)
    if view.parentExecutionID is not None:
        facts.add_row("parent", str(view.parentExecutionID))
    if view.children:
        facts.add_row("children", ", ".join(str(child) for child in view.children))
    if view.error is not None:
        facts.add_row("error", Text(_error(view.error), style="red"))
    for entry in view.blockedOn:
        facts.add_row("blocked", Text(blocked_line(entry), style="yellow"))
    threads = Table(box=None, pad_edge=False, show_edge=False)
    for heading in ("THREAD", "STATUS", "DONE"):
        threads.add_column(heading)
    for thread in view.threads:
        threads.add_row(thread.threadKey, _status(thread.status), f"{thread.completedNodes}/{thread.totalNodes}")
    return Group(facts, Text(""), threads)


def blocked_line(entry: BlockedOn) -> str:
    """One `blockedOn` entry as a line: the lane, its element, and why it does not move."""
    return f"{entry.lane}: {entry.elementKey} {_why(entry.kind, entry.detail, entry.since, entry.until)}"


def _why(kind: str, detail: dict[str, Any], since: str | None, until: str | None) -> str:
    since_text = f" since {since}" if since else ""
    if kind == "signal":
        timeout = f", times out at {detail['timeoutAt']}" if detail.get("timeoutAt") else ""
        return f"waits for signal {detail.get('signal')!r} ({detail.get('buffered', 0)} buffered{timeout}){since_text}"
    if kind == "delay":
        return f"is delayed until {detail.get('dueAt')}"
    if kind == "backoff":
        last = f"; last error: {detail['lastError']}" if detail.get("lastError") else ""
        return f"retries (attempt {detail.get('attempt')}) at {detail.get('retryAt')}{last}"
    if kind == "task":
        timeout = f", times out at {detail['timeoutAt']}" if detail.get("timeoutAt") else ""
        return f"runs attempt {detail.get('attempt')} on node {detail.get('node')}{since_text}{timeout}"
    if kind == "child":
        return f"waits for child execution {detail.get('childExecutionID')} ({detail.get('childStatus')}){since_text}"
    waiting = detail.get("waiting")
    then = ""
    if isinstance(waiting, dict):
        inner = {k: v for k, v in waiting.items() if k != "kind"}
        then = f"; then it {_why(str(waiting.get('kind')), inner, None, None)}"
        if waiting.get("remainingMs") is not None:
            then += f" ({waiting['remainingMs']} ms left)"
    if kind == "paused":
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        return f"is paused by {detail.get('by') or '?'}{since_text}{reason}{then}"
    if kind == "owner-dead":
        return (
            f"does not move: its node {detail.get('owner') or '(none)'} is gone and no node has adopted it yet "
            f"(last checkpoint {detail.get('lastCheckpointAt')}){then}"
        )
    return f"{kind}{since_text}"


def executions(page: ExecutionList, *, plain: bool = False) -> RenderableType:
    """One page of the execution list, and how to get the next one.

    On a terminal, the id, status and parent columns keep their full width (the id is what every other command
    takes); when the terminal is narrow the process and the times wrap (a time between its date and its time of
    day) instead of being cut. `plain` (stdout is not a terminal) gives columns of text as wide as their widest
    value, without colours, whatever the width, for scripts and pipes.
    """
    attributed = any(item.attributes for item in page.items)  # the column only when some execution has any
    headings: tuple[str, ...] = ("ID", "PROCESS", "STATUS", "STARTED", "STOPPED", "PARENT")
    headings += ("ATTRIBUTES",) if attributed else ()
    rows = [
        (
            str(item.executionID),
            f"{item.processKey} v{item.processVersion}",
            item.status,
            item.startedAt,
            item.stoppedAt or "-",
            str(item.parentExecutionID) if item.parentExecutionID is not None else "-",
            *([_attributes(item.attributes)] if attributed else []),
        )
        for item in page.items
    ]
    lines: list[RenderableType] = []
    if not rows:
        lines.append(Text("no executions"))
    elif plain:
        widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]
        for row in (headings, *rows):
            lines.append(Text("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()))
    else:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for heading in headings:
            table.add_column(heading, no_wrap=heading in _WHOLE_COLUMNS, overflow="fold")
        for row in rows:  # a time breaks between its date and its time of day when the terminal is narrow
            table.add_row(*row[:2], _status(row[2]), *(cell.replace("T", " ", 1) for cell in row[3:5]), *row[5:])
        lines.append(table)
    if page.nextCursor is not None:
        lines.append(Text(f"more: --cursor {page.nextCursor}", style="" if plain else "dim"))
    return Group(*lines)


def _attributes(attributes: dict[str, Any]) -> str:
    """An execution's attributes in a list row: name=value, comma separated ("-": none)."""
    shown = [
        f"{name}={json.dumps(value) if not isinstance(value, str) else value}" for name, value in attributes.items()
    ]
    return ", ".join(shown) or "-"


def stepped_mode(result: SteppedResult) -> Text:
    ran = ", ".join(f"{run.elementKey} in {run.lane} ({run.outcome})" for run in result.ran) or "nothing"
    return Text.assemble(f"execution {result.executionID} ran {ran}; now ", _status(result.status))


def breakpoints(result: BreakpointsResult) -> Text:
    wanted = [b if isinstance(b, str) else f"{b['element']} when {b['when']}" for b in result.pauseBefore]
    text = (
        f"execution {result.executionID} pauses before: {', '.join(wanted)}"
        if wanted
        else (f"execution {result.executionID} has no breakpoints")
    )
    if result.alreadyStarted:
        runs = ", ".join(f"{run.elementKey} in {run.lane}" for run in result.alreadyStarted)
        text += f"; already begun (will not stop): {runs}"
    return Text(text)


def forked(result: StartResult, source: int) -> Text:
    return Text.assemble(
        f"forked execution {source} as execution {result.executionID} of processID {result.processID}, "
        f"version {result.processVersion}: ",
        _status(result.status),
    )


def rewound(result: RewindResult) -> Text:
    changed = result.variables
    counts = ", ".join(f"{len(changed.get(part, {}))} {part}" for part in ("added", "removed", "changed"))
    return Text.assemble(
        f"rewound execution {result.executionID} ({result.rewoundFrom}) to checkpoint {result.checkpoint} at "
        f"{result.rewoundAt}; variables {counts}; {result.pendingNodes} pending: ",
        _status(result.status),
    )


def migrated(result: MigrateResult) -> RenderableType:
    """The plan (lane, from, to, type), then what was done, or the problems (a dry run, or refused)."""
    verb = "migrated" if result.applied else "plan to migrate"
    lines: list[RenderableType] = [
        Text.assemble(
            f"{verb} execution {result.executionID} ({result.status}) from version {result.fromVersion} to "
            f"{result.toVersion}" + (f" at {result.migratedAt}" if result.migratedAt else "")
        )
    ]
    for step in result.plan:
        moved = step.from_ if step.from_ == step.to else f"{step.from_} -> {step.to}"
        lines.append(Text(f"  {step.lane}: {moved} ({step.type}" + (", parked)" if step.parked else ")")))
    if result.problems:
        lines.append(Text(f"{len(result.problems)} problem(s):", style="red"))
        lines.extend(Text(f"  - {problem}") for problem in result.problems)
    elif not result.applied:
        lines.append(Text("no problems: it can be applied (without --dry-run)", style="green"))
    return Group(*lines)


def checkpoints(page: CheckpointList) -> RenderableType:
    """The kept checkpoints, newest first: number, when, after which element, the lanes pending, bytes."""
    rows = [
        (str(item.seq), item.savedAt, item.elementKey or "-", ",".join(item.lanes) or "-", str(item.bytes))
        for item in page.items
    ]
    headings = ("SEQ", "SAVED AT", "AFTER", "LANES", "BYTES")
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]
    lines: list[RenderableType] = [
        Text("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        for row in ((headings, *rows) if rows else ())
    ]
    if not page.items:
        lines.append(Text("no checkpoints kept (--history-checkpoints 0, or none written yet)"))
    if page.nextCursor is not None:
        lines.append(Text(f"more: --cursor {page.nextCursor}", style="dim"))
    return Group(*lines)


def checkpoint(view: CheckpointView) -> RenderableType:
    """One kept checkpoint: its heading, then its stack and memory as JSON."""
    heading = f"checkpoint {view.seq} of execution {view.executionID}, saved {view.savedAt}"
    if view.elementKey is not None:
        heading += f" after {view.elementKey}"
    return Group(
        Text(heading),
        Text("stack  " + json.dumps(view.stack, ensure_ascii=False, sort_keys=True)),
        Text("memory " + json.dumps(view.memory, ensure_ascii=False, sort_keys=True)),
    )


def checkpoint_diff(diff: CheckpointDiff) -> RenderableType:
    """What changed from one checkpoint to another, a line per change."""
    lines: list[RenderableType] = [Text(f"from checkpoint {diff.fromSeq} to {diff.toSeq} of {diff.executionID}")]
    for part, changes in (("variable", diff.variables), ("output", diff.nodeOutputs)):
        for name, value in changes.get("added", {}).items():
            lines.append(Text(f"+ {part} {name} = {_compact(value)}", style="green"))
        for name, value in changes.get("removed", {}).items():
            lines.append(Text(f"- {part} {name} (was {_compact(value)})", style="red"))
        for name, change in changes.get("changed", {}).items():
            lines.append(Text(f"~ {part} {name}: {_compact(change['from'])} -> {_compact(change['to'])}"))
    for sign, entries in (("+", diff.stack.get("added", [])), ("-", diff.stack.get("removed", []))):
        for entry in entries:
            lane = entry.get("path") or entry.get("thread_key")
            lines.append(Text(f"{sign} pending {entry.get('element_key')} in {lane}"))
    if len(lines) == 1:
        lines.append(Text("no change"))
    return Group(*lines)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def log_line(entry: LogEntry) -> Text:
    """One audit-log entry on one line: when, what, which element, and its detail as compact JSON."""
    line = Text.assemble((entry.at, "dim"), "  ", (entry.event, _event_style(entry.event)))
    if entry.elementKey is not None:
        line.append(f"  {entry.elementKey}")
    if entry.detail:
        line.append("  " + json.dumps(entry.detail, separators=(",", ":"), ensure_ascii=False), style="dim")
    return line


def _status(name: str) -> Text:
    return Text(name, style=STATUS_STYLES.get(name, ""))


def _event_style(event: str) -> str:
    if event in STATUS_STYLES:
        return STATUS_STYLES[event]
    return "red" if event.endswith("failed") or event == "refused" else ""


def _error(error: dict[str, Any]) -> str:
    attempts = error.get("attempts")
    tried = f", {attempts} attempt{'s' if attempts != 1 else ''}" if attempts is not None else ""
    return f"{error.get('element')}: {error.get('error')} ({error.get('type')}{tried})"
