"""`procengine processes`: the tenant's definitions as text for people (`--json` prints the answers' data)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from procengine.api.process_views import ProcessDeleted
from procengine.api.views import ProcessList, ProcessView

__all__ = ["COUNT_COLUMNS", "deleted", "deprecated", "processes"]

COUNT_COLUMNS = ("running", "paused", "completed", "failed", "cancelled")


def processes(listed: ProcessList, *, plain: bool = False) -> RenderableType:
    """A row per version, by key then version: its processID, `latest` and/or `deprecated`, and how many of its
    executions are in each status. `plain` (not a terminal): columns of text, no colours."""
    latest: dict[str, int] = {}
    for item in listed.items:
        latest[item.key] = max(latest.get(item.key, 0), item.version)
    headings = ("KEY", "VERSION", "ID", "STATE", *(name.upper() for name in COUNT_COLUMNS))
    rows = []
    for item in sorted(listed.items, key=lambda p: (p.key, p.version)):
        counts = item.executions.model_dump() if item.executions is not None else {}
        state = ", ".join(
            word for word, on in (("latest", latest[item.key] == item.version), ("deprecated", item.deprecated)) if on
        )
        rows.append(
            (
                item.key,
                str(item.version),
                str(item.processID),
                state or "-",
                *(str(counts.get(n, 0)) for n in COUNT_COLUMNS),
            )
        )
    if not rows:
        return Text("no processes")
    if plain:
        widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]
        return Group(
            *(
                Text("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
                for row in (headings, *rows)
            )
        )
    table = Table(box=None, pad_edge=False, show_edge=False)
    for heading in headings:
        table.add_column(heading, no_wrap=True, justify="right" if heading.lower() in COUNT_COLUMNS else "left")
    for row in rows:
        table.add_row(*row[:3], Text(row[3], style="yellow" if "deprecated" in row[3] else ""), *row[4:])
    return table


def deprecated(view: ProcessView) -> Text:
    word = "deprecated: it takes no new start" if view.deprecated else "no longer deprecated: it takes new starts"
    return Text(f"process {view.key} version {view.version} (processID {view.processID}) {word}")


def deleted(result: ProcessDeleted) -> Text:
    latest = (
        "no version of it is left"
        if result.latestProcessID is None
        else f"its latest is now version {result.latestVersion} (processID {result.latestProcessID})"
    )
    return Text(f"deleted process {result.key} version {result.version} (processID {result.processID}); {latest}")
