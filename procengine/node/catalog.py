"""Process definitions as the engine uses them: validated on registration, compiled once, cached.

Versions are immutable, so a compiled definition is cached by (tenant, processID) for the node's life.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from procengine.api.problems import refusal
from procengine.api.views import ProcessList, ProcessSummary, ProcessView
from procengine.engine.compiled import CompiledProcess, compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.validation import validate_definition
from procengine.errors import NotFound, ValidationFailed
from procengine.runtime.clock import Clock, iso
from procengine.store.processes import ProcessStore, StoredProcess
from procengine.tasks import HandlerRegistry

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

    async def resolve(self, tenant: str, process_id: int | None, process_key: str | None) -> StoredProcess:
        if process_id is None and process_key is None:
            raise ValidationFailed("start needs a process", ["give processID or processKey"])
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
        return stored

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
        return ProcessList(items=[view(p) for p in await self.store.list(tenant)])


def view(stored: StoredProcess) -> ProcessView:
    return ProcessView(
        processID=stored.process_id,
        key=stored.key,
        version=stored.version,
        name=stored.name,
        tenant=stored.tenant,
        createdAt=stored.created_at,
        definition=stored.body,
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
