"""Every Redis key procengine writes, built in one place (docs/redis-keys.md lists them for operators).

Every key of one execution carries the hash tag `{<executionID>}` so that all of them live in one Redis
Cluster slot and one Lua script may touch them together. Per-tenant keys carry `{<tenant>}` likewise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExecutionKeys:
    """The keys of one execution, in the order the Lua scripts take them."""

    execution: str
    state: str
    elements: str
    threads: str
    log: str
    history: str
    """List: the execution's last checkpoints, oldest first (commit.lua appends and trims it)."""

    def all(self) -> list[str]:
        return [self.execution, self.state, self.elements, self.threads, self.log, self.history]


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # every checkpoint names its six keys: built once per execution (of the recently written ones)
        self.execution = functools.lru_cache(maxsize=16_384)(self._execution)

    # --- one execution ------------------------------------------------------------------------

    def _execution(self, execution_id: int) -> ExecutionKeys:
        base = f"{self.prefix}:exec:{{{execution_id}}}"
        return ExecutionKeys(
            execution=base,
            state=f"{base}:state",
            elements=f"{base}:elements",
            threads=f"{base}:threads",
            log=f"{base}:log",
            history=f"{base}:history",
        )

    # --- one tenant ---------------------------------------------------------------------------

    def processes(self, tenant: str) -> str:
        """Sorted set: processID -> processID, every version of every process of the tenant."""
        return f"{self.prefix}:tenant:{{{tenant}}}:processes"

    def process(self, tenant: str, process_id: int) -> str:
        """Hash: one registered version of a definition."""
        return f"{self.process_stem(tenant)}{process_id}"

    def process_stem(self, tenant: str) -> str:
        """`process(tenant, id)` but for the id: register_process.lua appends the id it takes (in the tenant's
        slot, so a Redis Cluster finds it where the script's other keys are)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:process:"

    def process_key(self, tenant: str, key: str) -> str:
        """Hash: latestID, latestVersion, latestHash of the definitions registered under `key`."""
        return f"{self.prefix}:tenant:{{{tenant}}}:process-key:{key}"

    def executions(self, tenant: str) -> str:
        """Sorted set: executionID -> executionID, the tenant's executions (newest = highest)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:executions"

    def status_index(self, tenant: str, status: str) -> str:
        """Sorted set: executionID -> executionID, the tenant's executions whose status is `status`."""
        return f"{self.prefix}:tenant:{{{tenant}}}:executions:status:{status}"

    def process_index(self, tenant: str, process_id: int) -> str:
        """Sorted set: executionID -> executionID, the tenant's executions of one process version."""
        return f"{self.prefix}:tenant:{{{tenant}}}:executions:process:{process_id}"

    def process_status_index(self, tenant: str, process_id: int, status: str) -> str:
        """Sorted set: executionID -> executionID, the tenant's executions of one process version in one status."""
        return f"{self.prefix}:tenant:{{{tenant}}}:executions:process:{process_id}:status:{status}"

    def started(self, tenant: str) -> str:
        """Sorted set: executionID -> its start time (epoch ms), the tenant's executions (`startedAfter`)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:executions:started"

    def error_index(self, tenant: str, error_type: str) -> str:
        """Sorted set: executionID -> executionID, the tenant's failed executions whose error has this type."""
        return f"{self.prefix}:tenant:{{{tenant}}}:executions:error:{error_type}"

    def attribute_value(self, tenant: str, name: str, value: str) -> str:
        """Sorted set: executionID -> executionID, the tenant's executions whose keyword or bool attribute `name`
        is `value` (a bool's: `true`, `false`)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:attr:{name}:eq:{value}"

    def attribute_word(self, tenant: str, name: str, word: str) -> str:
        """Sorted set: executionID -> executionID, the tenant's executions whose text attribute `name` has the
        (lowercased) word `word`."""
        return f"{self.prefix}:tenant:{{{tenant}}}:attr:{name}:word:{word}"

    def attribute_range(self, tenant: str, name: str) -> str:
        """Sorted set: executionID -> the value, the tenant's executions with the number or time (epoch ms)
        attribute `name`."""
        return f"{self.prefix}:tenant:{{{tenant}}}:attr:{name}:range"

    def search(self, tenant: str) -> str:
        """Hash: executionID -> JSON {a: its attributes, e: its error type}, what of the search indexes (beyond
        `started`) it is in, for the sweeper once its own keys have expired (store/search.py)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:search"

    def starts(self, tenant: str, second: int) -> str:
        """String counter, expiring: the tenant's starts in one second (epoch seconds), for its rate limit."""
        return f"{self.prefix}:tenant:{{{tenant}}}:starts:{second}"

    def removals(self, tenant: str) -> str:
        """Sorted set: `<executionID>:<processID>:<status>` -> when its retention ends (epoch ms): what the
        sweeper takes out of the indexes."""
        return f"{self.prefix}:tenant:{{{tenant}}}:removals"

    def status_events(self, tenant: str) -> str:
        """Stream: the tenant's executions' status changes, newest last (about the last 10,000)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:status-events"

    def idempotency(self, tenant: str, key: str) -> str:
        """String: the executionID a start with this idempotency key created."""
        return f"{self.prefix}:tenant:{{{tenant}}}:idem:{key}"

    def child_start(self, tenant: str, key: str) -> str:
        """String: the executionID a call-process started as its child, by the engine's own key
        `<parent>.<order>.<attempt>`; apart from clients' idempotency keys (`idem:`), which cannot reach it."""
        return f"{self.prefix}:tenant:{{{tenant}}}:child-start:{key}"

    def bulk_jobs(self, tenant: str) -> str:
        """Sorted set: jobID -> jobID, the tenant's bulk operations (newest = highest)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:bulk-jobs"

    def bulk_job(self, tenant: str, job_id: int) -> str:
        """Hash: one bulk operation: action, status, counts, cursor, owner and fencing epoch (store/bulk_jobs.py)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:bulk:{job_id}"

    def bulk_targets(self, tenant: str, job_id: int) -> str:
        """List: the executionIDs a bulk operation acts on, in order, fixed when it is created (its `cursor` is an
        index into it)."""
        return f"{self.bulk_job(tenant, job_id)}:targets"

    def bulk_items(self, tenant: str, job_id: int) -> str:
        """Stream: a bulk operation's per-execution outcomes, oldest first (`e` executionID, `o` outcome, `r` reason,
        `t` time in epoch ms)."""
        return f"{self.bulk_job(tenant, job_id)}:items"

    def bulk_seen(self, tenant: str, job_id: int) -> str:
        """Hash: executionID -> outcome, the executions whose outcome a bulk operation has recorded (so that an item
        applied again after a failover is counted once)."""
        return f"{self.bulk_job(tenant, job_id)}:seen"

    def bulk_paused(self, tenant: str, job_id: int) -> str:
        """Hash: executionID -> pausedAt, the executions a bulk pause paused, and when (what its undo resumes)."""
        return f"{self.bulk_job(tenant, job_id)}:paused"

    def task_queue(self, tenant: str, queue: str) -> str:
        """Stream with the consumer group `workers`: one entry `{task: <taskID>}` per offered attempt of an external
        task (docs/workers.md); an entry stays in the group's pending list while a worker holds its lock and is
        acknowledged and deleted when the task is completed, failed or revoked."""
        return f"{self.prefix}:tenant:{{{tenant}}}:queue:{queue}"

    def task_locks(self, tenant: str, queue: str) -> str:
        """Sorted set: taskID -> lockExpiresAt (epoch ms), the queue's locked tasks: a fetch takes those whose lock
        has expired before it reads new entries."""
        return f"{self.prefix}:tenant:{{{tenant}}}:queue:{queue}:locks"

    def task(self, tenant: str, task_id: str) -> str:
        """Hash, expiring: one offered attempt of an external task (status queued, locked, completed, failed, taken,
        revoked; its input, lock and result)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:task:{task_id}"

    def task_queues(self, tenant: str) -> str:
        """Set: the names of the tenant's queues that ever had a task (metrics and the console list them)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:queues"

    def task_stats(self, tenant: str) -> str:
        """Hash: `<queue>:locksExpired` -> how many locks of the queue expired and were taken again."""
        return f"{self.prefix}:tenant:{{{tenant}}}:queue-stats"

    @property
    def task_settled(self) -> str:
        """Pub/sub channel: `<tenant> <taskID>` when a worker completed or failed a task, for the node whose actor
        waits for it."""
        return f"{self.prefix}:tasks:settled"

    def schedules(self, tenant: str) -> str:
        """Sorted set: scheduleID -> scheduleID, the tenant's schedules (newest = highest)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:schedules"

    def schedule(self, tenant: str, schedule_id: int) -> str:
        """Hash: one schedule: its `spec` (JSON), `rev`, `paused`, `next` fire time, `lastExecution`, `buffered`,
        when and by whom it was made and changed (store/schedules.py)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:schedule:{schedule_id}"

    def schedule_outcomes(self, tenant: str, schedule_id: int) -> str:
        """Stream: a schedule's last firings' outcomes, oldest first, capped (`f` fire time in epoch ms, `r` result,
        `e` executionID, `w` why, `m` manual)."""
        return f"{self.schedule(tenant, schedule_id)}:outcomes"

    def schedules_due(self, tenant: str) -> str:
        """Sorted set: scheduleID -> its next fire time (epoch ms), the tenant's active schedules: what every node's
        schedule loop reads by due time (node/schedule_loop.py)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:schedules:due"

    def schedule_firings(self, tenant: str) -> str:
        """Sorted set: `<scheduleID>:<fireTime ms>[:m]` -> when a node may (re)try it (epoch ms): the tenant's
        firings claimed but not yet done, each leased to the node trying it (`:m`: triggered by hand)."""
        return f"{self.prefix}:tenant:{{{tenant}}}:schedules:firings"

    def node_bulk_jobs(self, node_id: str) -> str:
        """Set: `<jobID>:<tenant>` of the bulk operations a node runs, a superset of those whose `owner` is the node
        (added before the write that makes the node their owner): read when its heartbeat lapses."""
        return f"{self.prefix}:node:{{{node_id}}}:bulk-jobs"

    # --- the whole engine ---------------------------------------------------------------------

    def sequence(self, name: str) -> str:
        """String counters: `process`, `execution`, `thread`, `bulk`, `schedule`."""
        return f"{self.prefix}:seq:{name}"

    @property
    def store_identity(self) -> str:
        """String: a random token the first node writes once; its loss means Redis lost data (store/health.py)."""
        return f"{self.prefix}:store-id"

    @property
    def active(self) -> str:
        """Set: ids of executions that are running or paused. Written for nodes of versions before the `owned` sets
        (which read it to find orphans); read by this version only until the `owned` sets are seeded from it."""
        return f"{self.prefix}:active"

    def node(self, node_id: str) -> str:
        """String with a TTL: the heartbeat of a live engine node."""
        return f"{self.prefix}:node:{node_id}"

    def owned(self, node_id: str) -> str:
        """Set: ids of the executions a node owns, a superset of those whose `owner` is the node and whose status is
        not final (added before, or in, the write that makes the node their owner; taken out in, or after, the
        write that ends that). Read only when the node's heartbeat lapses (node/reconciler.py)."""
        return f"{self.prefix}:node:{{{node_id}}}:owned"

    @property
    def known_nodes(self) -> str:
        """Set: the ids of the nodes that may own executions (each adds itself with every heartbeat): whose
        heartbeats the reconciler checks, and whose `owned` sets it reads when one lapses."""
        return f"{self.prefix}:nodes:known"

    @property
    def owned_seeded(self) -> str:
        """String: written once the `owned` sets and `known_nodes` hold what `active` held (the upgrade from the
        layout before them, node/migration.py); `owned_seeding` is the lock of the node that seeds them."""
        return f"{self.prefix}:migrated:owned"

    @property
    def owned_seeding(self) -> str:
        """String with a TTL: the node seeding the `owned` sets now (see `owned_seeded`)."""
        return f"{self.prefix}:migrating:owned"

    def inbox(self, node_id: str) -> str:
        """Stream: requests other nodes forward to this node's actors (with a TTL, renewed by every request)."""
        return f"{self.prefix}:node:{{{node_id}}}:inbox"

    def reply(self, token: str) -> str:
        """List with a TTL: the answer to one forwarded request, popped by the node that forwarded it."""
        return f"{self.prefix}:reply:{{{token}}}"

    @property
    def statuses(self) -> str:
        """Hash: the status table, name -> id."""
        return f"{self.prefix}:statuses"

    @property
    def control(self) -> str:
        """Pub/sub channel for operators' pause/resume/cancel, of any tenant's execution."""
        return f"{self.prefix}:control"

    def tenant_control(self, tenant: str) -> str:
        """Pub/sub channel for pause/resume/cancel of one tenant's executions only (Redis ACL can grant it alone)."""
        return f"{self.prefix}:control:{{{tenant}}}"

    @property
    def tenant_controls(self) -> str:
        """The pattern every tenant's control channel matches (nodes PSUBSCRIBE to it)."""
        return f"{self.prefix}:control:{{*}}"

    def tenant_of_control(self, channel: str) -> str | None:
        """The tenant a tenant control channel names (None for another channel)."""
        head, tail = f"{self.prefix}:control:{{", "}"
        if channel.startswith(head) and channel.endswith(tail) and len(channel) > len(head) + len(tail):
            return channel[len(head) : -len(tail)]
        return None

    def listening(self, node_id: str) -> str:
        """Pub/sub channel a node subscribes to after its control channels, on the same connection: a PUBLISH on it
        that reaches a subscriber says that its control channels are subscribed (its readiness asks so)."""
        return f"{self.prefix}:node:{{{node_id}}}:listening"

    @property
    def nodes(self) -> str:
        """Pub/sub channel where a node that leaves says so, so the others adopt its executions at once."""
        return f"{self.prefix}:nodes"
