"""`procengine watch ID`: a live progress bar per thread until the execution ends, then its final status.

The bars are read from GET .../status (the truth); the execution's event stream only says when to read it
again. Events that arrive while a read is under way are folded into the next read, so a burst of events (a
for-each of thousands of items) costs a few reads, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from procengine.api.views import ExecutionStatusView
from procengine.cli import render
from procengine.cli.output import Output
from procengine.client.async_client import FINAL_EVENTS, AsyncClient

__all__ = ["watch"]

_SETTLE_S = 2.0
"""How long a status read may still show the execution active after its event stream has ended."""


async def watch(client: AsyncClient, execution_id: int, output: Output) -> str:
    """Follow the execution to its end and print its final status (as the `status` command does); how it
    ended: `completed`, `failed` or `cancelled`."""
    view = await client.status(execution_id)
    if output.as_json:
        final_event = await _follow(client, execution_id, lambda _: None) if view.isActive else None
        view = await _settled(client, execution_id, final_event)
        output.json(view)
        return _outcome(view, final_event)
    console = output.console
    console.print(f"execution {execution_id}: {view.processKey} v{view.processVersion}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        console=console,
    ) as progress:
        bars = _Bars(progress)
        bars.show(view)
        final_event = await _follow(client, execution_id, bars.show) if view.isActive else None
        view = await _settled(client, execution_id, final_event)
        bars.show(view)
    console.print(render.status(view))
    return _outcome(view, final_event)


class _Bars:
    """One bar per thread of the execution, kept as its status says."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[int, TaskID] = {}
        self.blocked: list[str] = []

    def show(self, view: ExecutionStatusView) -> None:
        for thread in view.threads:
            task = self.tasks.get(thread.threadExecutionID)
            if task is None:
                task = self.progress.add_task(thread.threadKey, total=thread.totalNodes, state=thread.status)
                self.tasks[thread.threadExecutionID] = task
            self.progress.update(
                task, total=thread.totalNodes, completed=thread.completedNodes, state=thread.status, refresh=True
            )
        # why lanes do not move, printed above the bars each time it changes (a wait that began, a pause, ...)
        blocked = [render.blocked_line(entry) for entry in view.blockedOn]
        if blocked != self.blocked:
            self.blocked = blocked
            for line in blocked:
                self.progress.console.print(f"blocked  {line}", style="yellow", highlight=False)


async def _follow(client: AsyncClient, execution_id: int, show: Callable[[ExecutionStatusView], None]) -> str | None:
    """Read the status again after events until the execution's event stream ends; the last event seen."""
    changed = asyncio.Event()

    async def refresh() -> None:
        while True:
            await changed.wait()
            changed.clear()
            show(await client.status(execution_id))

    refresher = asyncio.create_task(refresh())
    last: str | None = None
    try:
        async with contextlib.aclosing(client.events(execution_id)) as events:
            async for entry in events:
                last = entry.event
                changed.set()
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
    return last


async def _settled(client: AsyncClient, execution_id: int, final_event: str | None) -> ExecutionStatusView:
    """The status once it shows the end the event stream announced. The server may answer a status read from
    its copy of a live execution, which can trail the log for a moment; this waits that out (bounded)."""
    view = await client.status(execution_id)
    if final_event not in FINAL_EVENTS:
        return view
    deadline = asyncio.get_running_loop().time() + _SETTLE_S
    while view.isActive and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
        view = await client.status(execution_id)
    return view


def _outcome(view: ExecutionStatusView, final_event: str | None) -> str:
    """The final status; the stream's final event if the status still trails it."""
    if view.isActive and final_event in FINAL_EVENTS:
        return str(final_event)
    return view.status
