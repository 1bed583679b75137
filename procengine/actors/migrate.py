"""Migration to another version (issue 23, point 3): a paused or failed execution moves to another version of its
process, same id, under a plan validated first (`engine/migration.py`), and stays in its status (a paused one goes
on in the new version on resume, a failed one on retry).

A command of the actor's mailbox like rewind (`rewind.py`): the state as Redis holds it is planned against the
target version; a dry run answers the plan and its problems and writes nothing; a plan with problems is refused
(422 listing every one, logged `refused`); otherwise one fenced write, expecting the status the execution has,
rewrites the stack's elements (keys and ids) to the new version's, sets the hash's `processID`, `processVersion` and
`totalNodes` (and the threads' totals), moves the execution from the old version's indexes to the new one's, with
a `migrated` log entry naming both versions, the plan, who, why and the request id. The actor then runs the new
version's definition.
"""

from __future__ import annotations

import json
from typing import Any

from procengine.actors.host import Host
from procengine.actors.messages import Command
from procengine.actors.records import snapshot_commit, transition_log, under_way_records
from procengine.actors.snapshot import load_state
from procengine.actors.transitions import log_refusal
from procengine.api.problems import refusal
from procengine.api.views import MigrateResult, MigrationStep
from procengine.engine.breakpoints import Breakpoint, from_field, to_field
from procengine.engine.migration import MigrationPlan, apply_plan, plan_migration
from procengine.errors import StateCorrupted, Unavailable
from procengine.runtime.clock import iso
from procengine.store.indexes import Indexed, IndexOp, removal_note
from procengine.store.keys import Keys

__all__ = ["migrate", "version_moved"]


async def migrate(actor: Host, message: Command) -> MigrateResult:
    ctx = actor.ctx
    if ctx.processes is None:
        raise Unavailable(f"execution {actor.execution_id}: this node cannot read process versions")
    order = message.payload if isinstance(message.payload, dict) else {}
    version, mapping, dry_run = int(order["version"]), dict(order.get("mapping") or {}), order.get("dryRun") is True
    source = actor.process
    from_id, from_version = int(actor.fields["processID"]), int(actor.fields.get("processVersion") or 0)
    to_id = await ctx.processes.version_id(actor.tenant, source.definition.key, version)  # NotFound: 404
    if to_id == from_id:
        raise refusal("nothing to migrate", [f"version: {version} is the execution's own version; give another one"])
    target = await ctx.processes.compiled(actor.tenant, to_id)
    state = load_state(await _stored(actor, message), source)
    breakpoints = from_field(actor.fields)
    plan = plan_migration(state, source, target, mapping, tuple(b.element for b in breakpoints))
    answer = _answer(actor, from_version, version, from_id, to_id, plan)
    if dry_run:
        return answer
    if plan.problems:
        why = f"the migration plan to version {version} has {len(plan.problems)} problem(s): " + "; ".join(
            plan.problems[:5]
        )
        status = actor.status.value
        await log_refusal(ctx, actor.execution_id, message.caller, "migrate", message.reason, status, why)
        raise refusal(f"execution {actor.execution_id} cannot be migrated to version {version}", plan.problems)
    renamed = {step.lane for step in plan.steps if step.source != step.target}
    apply_plan(state, target, plan)
    now = ctx.clock.now_ms()
    commit = snapshot_commit(state, [], now)
    commit.elements.update(
        {
            field: record
            for field, record in under_way_records(state).items()
            if record.get("path", record["threadKey"]) in renamed
        }
    )
    commit.execution.update(processID=to_id, processVersion=version, totalNodes=target.total_nodes)
    if plan.breakpoints:
        commit.execution["pauseBefore"] = to_field(_renamed(breakpoints, plan.breakpoints))
    error = _renamed_error(actor.fields.get("error", ""), {step.source: step.target for step in plan.steps})
    if error is not None:
        commit.execution["error"] = error
    status = actor.status.value
    detail: dict[str, Any] = {
        "fromVersion": from_version,
        "toVersion": version,
        "fromProcessID": from_id,
        "toProcessID": to_id,
        "plan": plan.to_docs(),
    }
    if mapping:
        detail["mapping"] = mapping
    commit.log.append(transition_log(now, "migrated", message.caller, status, status, message.reason, **detail))
    commit.index = await _index_moves(actor, from_id, to_id)
    await actor.write(commit, expect=actor.status, not_after_ms=message.not_after_ms)
    actor.state = state
    actor.corrupted = False
    actor.use_version(target)
    return answer.model_copy(update={"applied": True, "migratedAt": iso(now)})


async def _stored(actor: Host, message: Command) -> Any:
    stored = await actor.stored()
    if stored is None:
        why = "the execution's keys are gone"
        await log_refusal(
            actor.ctx, actor.execution_id, message.caller, "migrate", message.reason, actor.status.value, why
        )
        raise StateCorrupted(f"execution {actor.execution_id} cannot be migrated: {why}")
    return stored


def _answer(
    actor: Host, from_version: int, to_version: int, from_id: int, to_id: int, plan: MigrationPlan
) -> MigrateResult:
    return MigrateResult(
        executionID=actor.execution_id,
        status=actor.status.value,
        fromVersion=from_version,
        toVersion=to_version,
        fromProcessID=from_id,
        toProcessID=to_id,
        plan=[MigrationStep.model_validate(doc) for doc in plan.to_docs()],
        problems=plan.problems,
        applied=False,
    )


def _renamed(breakpoints: tuple[Breakpoint, ...], renamed: dict[str, str]) -> tuple[Breakpoint, ...]:
    return tuple(Breakpoint(renamed.get(b.element, b.element), b.when) for b in breakpoints)


def _renamed_error(raw: str, renamed: dict[str, str]) -> str | None:
    """A failed execution's `error` naming the element under its new key (None: unchanged)."""
    try:
        error = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(error, dict) or error.get("element") not in renamed:
        return None
    new = renamed[error["element"]]
    return None if new == error["element"] else json.dumps({**error, "element": new})


async def _index_moves(actor: Host, from_id: int, to_id: int) -> list[IndexOp]:
    """Out of the old version's indexes and into the new one's; a failed execution's retention note names its
    version too, so it is moved with its score (read first: only this owner writes it while the keys live)."""
    store = actor.ctx.store
    status = actor.status.value
    ops = version_moved(store.keys, actor.tenant, actor.execution_id, from_id, to_id, status)
    if actor.status.is_final:
        old = removal_note(Indexed(actor.tenant, actor.execution_id, from_id), status)
        score = await store.redis.zscore(store.keys.removals(actor.tenant), old)
        if score is not None:
            new = removal_note(Indexed(actor.tenant, actor.execution_id, to_id), status)
            ops += [
                IndexOp("ZREM", store.keys.removals(actor.tenant), (old,)),
                IndexOp("ZADD", store.keys.removals(actor.tenant), (str(int(score)), new)),
            ]
    return ops


def version_moved(keys: Keys, tenant: str, execution_id: int, from_id: int, to_id: int, status: str) -> list[IndexOp]:
    """An execution from one process version's two indexes (all, and by status) into another's."""
    member = str(execution_id)
    return [
        IndexOp("ZREM", keys.process_index(tenant, from_id), (member,)),
        IndexOp("ZREM", keys.process_status_index(tenant, from_id, status), (member,)),
        IndexOp("ZADD", keys.process_index(tenant, to_id), (member, member)),
        IndexOp("ZADD", keys.process_status_index(tenant, to_id, status), (member, member)),
    ]
