"""Process definitions as the engine uses them: validated on registration, compiled once, cached.

A version's body is immutable, so a compiled definition is cached by (tenant, processID) for the node's life. What
may change is whether the version exists and whether it is deprecated (`delete`, `set_deprecated`, through any node):
every start reads that fresh (`resolve`), and the API's reads of a version read it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from procengine.api.problems import refusal
from procengine.api.process_views import ExecutionCounts, ProcessDeleted
from procengine.api.service import Caller
from procengine.api.views import ProcessList, ProcessSummary, ProcessView
from procengine.engine.compiled import CompiledProcess, compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.validation import validate_definition
from procengine.errors import NotFound, ProcessDeprecated, ProcessInUse, ValidationFailed
from procengine.runtime.clock import Clock, iso
from procengine.store.processes import ProcessStore, StoredProcess
from procengine.tasks import HandlerRegistry

log = logging.getLogger(__name__)
DECLARED_FRESH_MS = 5_000
"""How long the attributes a tenant declares are taken as read (a version deleted meanwhile may still be in them: a
filter on an attribute it alone declared then finds nothing, rather than a 422)."""


class Catalog:
    def __init__(
        self,
        store: ProcessStore,
        handlers: HandlerRegistry,
        clock: Clock,
        max_elements: int | None = None,
        max_variables: int | None = None,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.clock = clock
        self.max_elements = max_elements
        self.max_variables = max_variables
        self._compiled: dict[tuple[str, int], CompiledProcess] = {}
        self._stored: dict[tuple[str, int], StoredProcess] = {}
        self._versions: dict[tuple[str, str, int], int] = {}
        """(tenant, key, version) -> processID: versions never change."""
        self._declared: dict[str, tuple[tuple[int, int], dict[str, str], int]] = {}
        """tenant -> (its versions' `generation`, the attributes they declare, when that was read, epoch ms)."""

    async def register(self, tenant: str, document: Any) -> tuple[ProcessSummary, bool]:
        """Register a definition document (parsed JSON or YAML); ValidationFailed lists every problem."""
        known: dict[str, set[int]] = {}
        others = await self.store.list(tenant)
        for stored in others:
            known.setdefault(stored.key, set()).add(stored.version)
        checked = validate_definition(document, self.handlers.names(), known, self.max_elements, self.max_variables)
        definition = checked.definition
        clashes = type_clashes(definition.attributes, others)
        if clashes:
            raise refusal(f"process definition {definition.key!r} is not valid", clashes)
        process_id, version, created = await self.store.register(
            tenant, definition.key, definition.name, definition.canonical(), iso(self.clock.now_ms())
        )
        return ProcessSummary(processID=process_id, key=definition.key, version=version), created

    async def get(self, tenant: str, process_id: int) -> StoredProcess:
        """A registered version; versions never change, so each is read from Redis once per node."""
        stored = self._stored.get((tenant, process_id))
        if stored is None:
            stored = await self.store.get(tenant, process_id)
            if stored is None:
                raise NotFound(f"process {process_id} not found")
            self._stored[(tenant, process_id)] = stored
        return stored

    async def resolve(
        self, tenant: str, process_id: int | None, process_key: str | None, *, check: bool = True
    ) -> StoredProcess:
        """The version a start names (by processID, or its key's latest), and with `check` whether it may be started
        now (`check_startable`); a start with an idempotency key reads that before it claims its key and refuses after,
        so that a repeat of a start made before a deprecation still answers its execution."""
        if process_id is None and process_key is None:
            raise ValidationFailed("start needs a process", ["give processID or processKey"])
        by_key = process_id is None
        if process_id is None:
            assert process_key is not None
            latest = await self.store.latest_id(tenant, process_key)
            if latest is None:
                raise NotFound(f"process {process_key!r} not found")
            process_id = latest
        stored = await self.get(tenant, process_id)
        if process_key is not None and stored.key != process_key:
            # The two name no process together: as for any process that is not there, 404.
            raise NotFound(
                f"process {process_key!r} has no processID {process_id} (processID {process_id} is {stored.key!r})"
            )
        if check:
            await self.check_startable(tenant, stored, by_key=by_key)
        return stored

    async def check_startable(self, tenant: str, stored: StoredProcess, *, by_key: bool) -> None:
        """NotFound if the version was deleted, ProcessDeprecated if it is deprecated: read fresh (another node may
        have changed it since this one cached it); `by_key`: the start named its key (the message says so)."""
        problem = self.unstartable(stored, (await self.store.startable_many(tenant, [stored.process_id]))[0], by_key)
        if problem is not None:
            raise problem

    async def unstartable_many(
        self, tenant: str, wanted: list[tuple[StoredProcess, bool]]
    ) -> list[NotFound | ProcessDeprecated | None]:
        """`check_startable` for many versions (stored, by_key) in one round trip: the problem of each, or None."""
        found = await self.store.startable_many(tenant, [stored.process_id for stored, _ in wanted])
        return [self.unstartable(stored, ok, by_key) for (stored, by_key), ok in zip(wanted, found, strict=True)]

    def unstartable(
        self, stored: StoredProcess, startable: bool | None, by_key: bool
    ) -> NotFound | ProcessDeprecated | None:
        if startable is None:
            self._forget(stored.tenant, stored.process_id)
            return NotFound(f"process {stored.process_id} not found")
        if startable:
            return None
        how = f", the latest version of {stored.key!r}," if by_key else ""
        return ProcessDeprecated(
            f"process {stored.key!r} version {stored.version} (processID {stored.process_id}){how} is deprecated: it "
            "takes no new start; start another version, or PATCH it with deprecated false",
            details={"processID": stored.process_id, "key": stored.key, "version": stored.version},
        )

    async def version_id(self, tenant: str, key: str, version: int | None) -> int:
        """The processID of a key's version (None: the latest); NotFound if there is none."""
        if version is None:
            latest = await self.store.latest_id(tenant, key)
            if latest is None:
                raise NotFound(f"process {key!r} not found")
            return latest
        found = self._versions.get((tenant, key, version))
        if found is None:
            for stored in await self.store.list(tenant):
                self._versions[(tenant, stored.key, stored.version)] = stored.process_id
            found = self._versions.get((tenant, key, version))
            if found is None:
                raise NotFound(f"process {key!r} has no version {version}")
        return found

    async def compiled(self, tenant: str, process_id: int) -> CompiledProcess:
        cached = self._compiled.get((tenant, process_id))
        if cached is None:
            stored = await self.get(tenant, process_id)
            cached = compile_process(ProcessDefinition.model_validate(stored.body))
            self._compiled[(tenant, process_id)] = cached
        return cached

    async def declared_attributes(self, tenant: str, names: Collection[str] = ()) -> dict[str, str]:
        """Every attribute a definition of the tenant declares, name -> type (one type per name: `register`
        refuses another). Read again only when the tenant's versions changed, which is looked at (one round trip)
        unless every one of `names` was declared when it was looked at less than DECLARED_FRESH_MS ago: a filtered
        list page then costs no read of the catalog."""
        now = self.clock.now_ms()
        cached = self._declared.get(tenant)
        if cached is not None and now - cached[2] < DECLARED_FRESH_MS and names and all(n in cached[1] for n in names):
            return cached[1]
        generation = await self.store.generation(tenant)
        if cached is not None and cached[0] == generation:
            self._declared[tenant] = (generation, cached[1], now)
            return cached[1]
        declared: dict[str, str] = {}
        for stored in await self.store.list(tenant):
            attributes = stored.body.get("attributes") if isinstance(stored.body, dict) else None
            if isinstance(attributes, dict):
                declared.update({str(name): str(kind) for name, kind in attributes.items()})
        self._declared[tenant] = (generation, declared, now)
        return declared

    async def list(self, tenant: str) -> ProcessList:
        """Every version of the tenant, each with its deprecation and how many executions are in each status."""
        stored = await self.store.list(tenant)
        counts = await self.store.counts(tenant, [p.process_id for p in stored])
        return ProcessList(items=[view(p, counts[p.process_id]) for p in stored])

    async def read(self, tenant: str, process_id: int) -> ProcessView:
        """One version as the API shows it, read fresh (another node may have deprecated or deleted it)."""
        stored = await self.store.get(tenant, process_id)
        if stored is None:
            self._forget(tenant, process_id)
            raise NotFound(f"process {process_id} not found")
        counts = await self.store.counts(tenant, [process_id])
        return view(stored, counts[process_id])

    async def set_deprecated(
        self, caller: Caller, process_id: int, deprecated: bool, reason: str | None = None
    ) -> ProcessView:
        """Mark a version deprecated (no new start) or not; its executions go on either way. Logged (processes
        have no audit stream of their own): the line says who, why and the request."""
        if not await self.store.set_deprecated(caller.tenant, process_id, deprecated):
            raise NotFound(f"process {process_id} not found")
        found = await self.read(caller.tenant, process_id)
        event = "process-deprecated" if deprecated else "process-undeprecated"
        log.info(
            "process %s (%s v%s) %s by %s (request %s)%s",
            process_id,
            found.key,
            found.version,
            event.removeprefix("process-"),
            caller.by,
            caller.request_id,
            f": {reason}" if reason else "",
            extra=_audit(caller, process_id, event, reason),
        )
        return found

    async def delete(self, caller: Caller, process_id: int, reason: str | None = None) -> ProcessDeleted:
        """Delete a version no stored execution uses (ProcessInUse says how many do); its key's latest becomes the
        highest version left. Its number is never given again. Logged like `set_deprecated`."""
        tenant = caller.tenant
        stored = await self.store.get(tenant, process_id)
        if stored is None:
            raise NotFound(f"process {process_id} not found")
        done = await self.store.delete(tenant, process_id)
        if done.outcome == "missing":
            raise NotFound(f"process {process_id} not found")
        if done.outcome == "used":
            raise ProcessInUse(
                f"process {stored.key!r} version {stored.version} (processID {process_id}) is used by "
                f"{done.executions} stored execution{'s' * (done.executions != 1)}; it can be deleted once none is "
                "left (deprecate it to stop new starts)",
                details={"processID": process_id, "executions": done.executions},
            )
        self._forget(tenant, process_id)
        latest = None if done.latest_id is None else await self.store.get(tenant, done.latest_id)
        log.info(
            "process %s (%s v%s) deleted by %s (request %s)%s; latest of %r now: %s",
            process_id,
            stored.key,
            stored.version,
            caller.by,
            caller.request_id,
            f": {reason}" if reason else "",
            stored.key,
            "none" if latest is None else f"v{latest.version} (processID {latest.process_id})",
            extra=_audit(caller, process_id, "process-deleted", reason),
        )
        return ProcessDeleted(
            processID=process_id,
            key=stored.key,
            version=stored.version,
            latestProcessID=None if latest is None else latest.process_id,
            latestVersion=None if latest is None else latest.version,
        )

    def _forget(self, tenant: str, process_id: int) -> None:
        """A deleted version out of this node's caches (ids are never given again: the others are only stale)."""
        stored = self._stored.pop((tenant, process_id), None)
        self._compiled.pop((tenant, process_id), None)
        if stored is not None:
            self._versions.pop((tenant, stored.key, stored.version), None)


def _audit(caller: Caller, process_id: int, event: str, reason: str | None) -> dict[str, Any]:
    """The fields of a process's audit line (processes have no log stream: the server's log is their audit)."""
    return {
        "audit": event,
        "tenant": caller.tenant,
        "processID": process_id,
        "by": caller.by,
        "requestID": caller.request_id,
        "reason": reason,
    }


def view(stored: StoredProcess, counts: dict[str, int] | None = None) -> ProcessView:
    return ProcessView(
        processID=stored.process_id,
        key=stored.key,
        version=stored.version,
        name=stored.name,
        tenant=stored.tenant,
        createdAt=stored.created_at,
        definition=stored.body,
        deprecated=stored.deprecated,
        executions=None if counts is None else ExecutionCounts(**counts),
    )


def type_clashes(declared: Mapping[str, str], others: list[StoredProcess]) -> list[str]:
    """An attribute this definition declares with another type than a registered definition of the tenant does:
    one name has one index, so one type in a tenant."""
    problems = []
    for stored in others:
        theirs = stored.body.get("attributes") if isinstance(stored.body, dict) else None
        if not isinstance(theirs, dict):
            continue
        for name, kind in declared.items():
            if name in theirs and theirs[name] != kind:
                problems.append(
                    f"attributes.{name}: declared {kind}, but process {stored.key!r} version {stored.version} "
                    f"declares it {theirs[name]} (an attribute has one type in a tenant)"
                )
    return list(dict.fromkeys(problems))
