"""What a node reads for a caller straight from Redis (lists, status, log, elements, state), or from a live actor
it drives (a status without a round trip); the event streams; the retention sweep. Mixed into `Node`
(node/node.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from procengine.api.feeds import Feed
from procengine.api.filters import ExecutionFilter
from procengine.api.rendered import RenderedStatus
from procengine.api.service import Caller
from procengine.api.views import (
    ELEMENTS_PAGE,
    ElementsView,
    ExecutionList,
    ExecutionStatusView,
    LogEntry,
    LogView,
    StateView,
    StatusEvent,
)
from procengine.node.blocked import live_blocked_on
from procengine.node.feeds import Feeds
from procengine.node.live_status import render_running
from procengine.node.queries import Queries, status_doc
from procengine.node.registry import Registry
from procengine.runtime.clock import Clock
from procengine.settings import Settings
from procengine.store.executions import (
    ExecutionStore,
)

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
"""How many expired executions one sweep deletes per call, per tenant."""

__all__ = ["Reads"]


class Reads:
    if TYPE_CHECKING:
        settings: Settings
        clock: Clock
        node_id: str
        store: ExecutionStore
        registry: Registry
        queries: Queries
        feeds: Feeds

    # --- reads --------------------------------------------------------------------------------

    async def list_executions(
        self,
        caller: Caller,
        *,
        status: str | None,
        process_id: int | None,
        limit: int,
        cursor: str | None,
        filters: ExecutionFilter | None = None,
    ) -> ExecutionList:
        return await self.queries.list(
            caller.tenant, status=status, process_id=process_id, limit=limit, cursor=cursor, filters=filters
        )

    async def status(self, caller: Caller, execution_id: int) -> ExecutionStatusView:
        return ExecutionStatusView.model_validate_json(await self.status_json(caller, execution_id))

    async def status_json(self, caller: Caller, execution_id: int) -> bytes:
        rendered = self._live_status(caller, execution_id) or await self.queries.status(caller.tenant, execution_id)
        return rendered.json(self.clock.now_ms())

    def _live_status(self, caller: Caller, execution_id: int) -> RenderedStatus | None:
        """The status of an execution a live actor here drives, without a round trip: the actor is its only
        writer, so its copy is what Redis holds. Rendered once per write. None: read it from Redis."""
        actor = self.registry.get(execution_id)
        if actor is None or actor.tenant != caller.tenant or actor.corrupted or not actor.copy_known:
            return None
        if actor.rendered_status is None:
            actor.rendered_status = render_running(actor)  # the common case in one pass; None: the general one
        if actor.rendered_status is None:
            blocked = live_blocked_on(actor)
            if blocked is None:  # it needs what only Redis holds (a child's status, say)
                return None
            doc = status_doc(execution_id, actor.fields, actor.thread_records.values())
            actor.rendered_status = RenderedStatus.of({**doc, "blockedOn": blocked})
        return actor.rendered_status

    async def log(self, caller: Caller, execution_id: int) -> LogView:
        return await self.queries.log(caller.tenant, execution_id)

    async def elements(
        self, caller: Caller, execution_id: int, *, limit: int = ELEMENTS_PAGE, cursor: str | None = None
    ) -> ElementsView:
        return await self.queries.elements(caller.tenant, execution_id, limit=limit, cursor=cursor)

    async def state(self, caller: Caller, execution_id: int) -> StateView:
        return await self.queries.state(caller.tenant, execution_id)

    # --- retention ----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Take the executions whose retention is over out of every tenant's index (their keys expired by
        themselves, set in their final write); how many. Any node may do it: it is idempotent."""
        swept = 0
        now = self.clock.now_ms()
        for tenant in self.settings.tenants:
            while True:  # one round trip for a tenant with fewer than a batch due
                found = await self.store.sweep(tenant, now, SWEEP_BATCH)
                swept += found
                if found < SWEEP_BATCH:
                    break
        return swept

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_ms / 1000)
            try:
                await self.sweep()
            except Exception as exc:  # Redis away: the next round catches up
                log.warning("node %s: sweep failed: %s", self.node_id, exc)

    # --- event streams ------------------------------------------------------------------------

    async def log_feed(self, caller: Caller, execution_id: int, after: str | None) -> Feed[list[LogEntry] | None]:
        """The execution's log entries after the entry `after` (None: from its first), as they are written, in
        batches; None when nothing came for a while (a heartbeat); the feed ends after the final transition.
        NotFound before anything is read; Unavailable past `max_event_streams`."""
        await self.queries.require(caller.tenant, execution_id)
        return self.feeds.log(execution_id, after or "0-0")

    async def status_feed(self, caller: Caller, after: str | None) -> Feed[list[StatusEvent] | None]:
        """The status changes of the tenant's executions after the event `after` (None: from now), as they
        happen, in batches; None when nothing came for a while (a heartbeat). It does not end."""
        start = after if after is not None else await self.store.last_status_event(caller.tenant)
        return self.feeds.status(caller.tenant, start)
