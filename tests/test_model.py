"""The model-based test (issue 12): hypothesis drives random sequences of start, pause, resume, cancel,
signal, retry of a failed execution and edit of a paused one's variables (issue 20: each with a merge patch; a
retry with or without an idempotency key), step mode (issue 22: a paused execution runs one element a lane and is
paused again, or ends), rewind to a kept checkpoint with a merge patch or without (issue 22: a paused, failed or
cancelled execution is paused at that checkpoint, its stack and variables exactly the checkpoint's with the patch
merged), kill -9 and restart of engine nodes, and Redis crashes and restarts
(AOF, `appendfsync always`), against a small model of what each execution's status, progress, variables and log
must be.

After every step: each execution's status is the model's (or a legal move of its own: running to completed
or failed); a 409 comes exactly where the model says the transition is invalid; every acknowledged
transition is in the log once, in order, and nothing the engine answered 503 to shows up later; no element
completes twice; progress and variables agree with the log and the definition; and no execution stays
running without a live owner for longer than the node TTL. A retried execution that is not final is live again:
its keys have no TTL and the sweeper has no note to unlist it. At the end of each example every execution is
driven to its end, which must come. Besides the steps one after the other, a request may be in flight while a
node or Redis is killed: without an answer it must take effect once by its deadline, or never.

Two engine nodes (tests/support/servers.py subprocesses) share one dedicated redis-server for the whole test
function; examples differ by their executions. The state machine is synchronous: it runs in a worker thread
and drives the nodes over HTTP with the blocking `procengine.client.Client`; starting and reaping node
processes goes back to the test's event loop, which `serving` belongs to.

Bounded in `make test`; `FUZZ_LONG=1` (`make fuzz`) runs many more and longer examples; `FUZZ_EXAMPLES=N` sets
how many (to hunt a rare failure in one run). An execution that does not reach its end says what the engine holds
of it (status, blockedOn, stack, elements, the end of its log, its owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisGone

from procengine.api.views import ControlRequest, LogEntry, StartRequest, StepResult
from procengine.client import Client
from procengine.client.errors import ConnectionFailed, InvalidTransition, NotFound, Unavailable, ValidationError
from procengine.client.repair import NO_OUTPUT
from procengine.errors import InvalidTransition as Refused
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.model import FINAL, KINDS, NODES, PATCHED, Cluster, Expected, Kind
from tests.support.nodes import CALLER, wait_status
from tests.support.redis_servers import RedisServerFactory
from tests.support.servers import serving

T = TypeVar("T")

LONG = bool(os.environ.get("FUZZ_LONG"))
NODE_TTL_S = 1.0  # tests/support/servers.py: --node-ttl-ms 1000, reconcile and heartbeat every 100 ms
RECONCILE_S = 0.1
SLACK_S = 1.5  # two shared cores: a scheduling hiccup is not a lost owner


@dataclass(frozen=True)
class Operation:
    """What one operation on an execution does, as the model sees it."""

    event: str
    """Its log entry."""
    to: str | None
    """The status it leads to; None: the status stays."""
    valid: frozenset[str]
    """The statuses it applies in; in any other it is a 409 naming the status, logged `refused`."""
    prefer: frozenset[str]
    """The statuses of the executions a rule picks for it first (`WHICH`'s flag)."""


LIVE = frozenset({"running", "paused"})
STOPPED = frozenset({"paused", "failed"})
REWINDABLE = frozenset({"paused", "failed", "cancelled"})
OPERATIONS = {
    "pause": Operation("paused", "paused", frozenset({"running"}), LIVE),
    "resume": Operation("resumed", "running", frozenset({"paused"}), LIVE),
    "cancel": Operation("cancelled", "cancelled", LIVE, LIVE),
    "retry": Operation("retried", "running", frozenset({"failed"}), frozenset({"failed"})),
    "edit": Operation("variables-changed", None, frozenset({"paused"}), frozenset({"paused"})),
    # the step controls (issue 20, point 3): on a paused or failed execution, which they leave paused (an uncaught
    # `fail` leaves it failed: `Request.leads_to`); run-now on a running one
    "retry-element": Operation("element-retried", "paused", STOPPED, STOPPED),
    "skip": Operation("element-skipped", "paused", STOPPED, STOPPED),
    "complete": Operation("element-completed", "paused", STOPPED, STOPPED),
    "fail": Operation("element-failed", "paused", STOPPED, STOPPED),
    "move": Operation("lane-moved", "paused", STOPPED, STOPPED),
    "run-now": Operation("element-run-now", None, frozenset({"running"}), frozenset({"running"})),
    # step mode (issue 22): a paused execution runs one element a lane and pauses again, or ends
    "advance": Operation("stepped", None, frozenset({"paused"}), frozenset({"paused"})),
    # rewind (issue 22): back to a kept checkpoint, paused there; from failed or cancelled it is live again
    "rewind": Operation("rewound", "paused", REWINDABLE, REWINDABLE),
}
STEPS = frozenset({"retry-element", "skip", "complete", "fail", "move", "run-now"})
STEP_EVENTS = frozenset(OPERATIONS[verb].event for verb in STEPS)
LOOSENING = frozenset({"skip", "complete", "fail", "move"})
"""The step controls that change an execution's path: after one, the model knows less of its end (`loose`)."""
TRANSITIONS = frozenset(operation.event for verb, operation in OPERATIONS.items() if verb not in STEPS)
"""The log entries of acknowledged operations: the log holds exactly the model's, in order (with the step
controls' entries, which name their request: element-completed and element-failed are also the engine's own)."""


def _acknowledged_entry(entry: LogEntry) -> bool:
    return entry.event in TRANSITIONS or (entry.event in STEP_EVENTS and "requestId" in entry.detail)


@dataclass(frozen=True)
class Request:
    """One request of an operation: what it sends besides the execution id and the reason."""

    verb: str
    patch: dict[str, Any] | None = None
    """A retry's `variables`, an edit's body (a JSON merge patch)."""
    key: str | None = None
    """A retry's idempotencyKey."""
    element: str | None = None
    """A step control's element (a move's `before`)."""
    lane: str | None = None
    output: Any = NO_OUTPUT
    """A skip's or complete's output."""
    error_type: str = "Other"
    """A fail's type."""
    caught: bool = False
    """A fail that a catch clause of the element takes (the model's expectation)."""
    invalid: bool = False
    """A step the model expects to be refused 422 (a complete of an element that is not a task; a move of a lane
    with no pending element)."""
    absent: bool = False
    """A step the model expects to be refused 404: its element is not on the stack (a skip of `end` may leave a
    paused execution with nothing pending)."""
    checkpoint: int | None = None
    """A rewind's checkpoint (its `seq`)."""
    kept: dict[str, Any] | None = None
    """A rewind's checkpoint's variables of the names merge patches touch."""
    queue: tuple[int, ...] = ()
    """A rewind's checkpoint's waiting `go` signals."""

    @property
    def operation(self) -> Operation:
        return OPERATIONS[self.verb]

    def leads_to(self, source: str) -> str | None:
        """The status it leaves an execution in that was `source`."""
        if self.verb == "fail" and not self.caught:
            return "failed"
        return self.operation.to

    def send(self, client: Client, execution_id: int, reason: str | None = None) -> Any:
        if self.verb in STEPS:
            return self._step(client, execution_id, reason)
        if self.verb == "retry":
            return client.retry(execution_id, variables=self.patch, reason=reason, idempotency_key=self.key)
        if self.verb == "edit":
            return client.edit_variables(execution_id, self.patch or {}, reason=reason)
        if self.verb == "rewind":
            assert self.checkpoint is not None
            return client.rewind(execution_id, self.checkpoint, variables=self.patch, reason=reason)
        return getattr(client, self.verb)(execution_id, reason)

    def _step(self, client: Client, execution_id: int, reason: str | None) -> StepResult:
        element, lane = self.element or "", self.lane
        if self.verb == "retry-element":
            return client.retry_element(execution_id, element, lane=lane, reason=reason)
        if self.verb == "skip":
            return client.skip(execution_id, element, output=self.output, lane=lane, reason=reason)
        if self.verb == "complete":
            output = None if self.output is NO_OUTPUT else self.output
            return client.complete(execution_id, element, output, lane=lane, reason=reason)
        if self.verb == "fail":
            return client.fail(execution_id, element, "by the model", type=self.error_type, lane=lane, reason=reason)
        if self.verb == "move":
            return client.move(execution_id, lane or "", element, reason=reason)
        return client.run_now(execution_id, element, lane=lane, reason=reason)


def _patch(named: dict[str, int | None], fix: int | None) -> dict[str, Any]:
    return {**named, "fix": fix} if fix is not None else named


PATCHES = st.builds(
    _patch,
    st.dictionaries(st.sampled_from(PATCHED), st.none() | st.integers(0, 100), max_size=2),
    st.none() | st.integers(0, 9),
)
"""A merge patch: the model's own names set or removed (null), and sometimes `fix` (what repairs a fixable kind)."""
REQUEST_DEADLINE_S = 0.3 + 5 + 1 + SLACK_S
"""How long a request may take effect after it was sent: the owner's wait for a forwarded one (pause grace + the
Redis timeout), the second of margin the node asked adds, and the slack."""
WHICH = st.tuples(st.integers(0, 1000), st.booleans())
"""Which execution a request is for: an index into the example's executions, and whether to prefer live ones."""


def _run_now(kind: Kind, choice: int) -> Request:
    """run-now of one of the kind's elements with a timer (a kind with none: its first element, a wait: a 409)."""
    timed = kind.timed() or [next(iter(kind.threads.values()))[0]["key"]]
    return Request("run-now", element=timed[choice % len(timed)])


def _end_or_revival(entry: LogEntry) -> str | None:
    """`failed`, `completed`, `cancelled` for an end, `revived` for an operation that took a failed execution back."""
    if entry.event in FINAL:
        return entry.event
    if entry.event == "retried" or (entry.event == "rewound" and entry.detail.get("from") in FINAL):
        return "revived"
    if entry.event in STEP_EVENTS and "requestId" in entry.detail:
        source, target = entry.detail.get("from"), entry.detail.get("to")
        if source == "failed" and target == "paused":
            return "revived"
        if source != "failed" and target == "failed":
            return "failed"
    return None


def _pending(stack: dict[str, Any]) -> list[tuple[str, str]]:
    """The pending elements of a stack snapshot: (lane, element)."""
    return [(entry["path"], entry["element_key"]) for entry in stack.get("execution_stack", [])]


def _count(log: list[LogEntry], event: str) -> int:
    return sum(1 for entry in log if entry.event == event)


class Model(RuleBasedStateMachine):
    """The state machine; `_run` binds it to the test's `Cluster` (a subclass with the class attribute set)."""

    cluster: Cluster

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, Expected] = {}
        self.clean = True  # false while a step runs: a step that raised leaves it false (teardown then only cancels)
        self.cluster.stats["examples"] += 1

    @contextlib.contextmanager
    def step(self, name: str | None = None) -> Iterator[None]:
        self.clean = False
        if name is not None:
            self.cluster.stats[name] += 1
            self.cluster.stats["steps"] += 1
        yield
        self.clean = True

    # --- rules -------------------------------------------------------------------------------------------------

    @rule(kind=st.sampled_from(KINDS), n=st.integers(0, 1000), via=st.integers(0, NODES - 1))
    def start(self, kind: Kind, n: int, via: int) -> None:
        with self.step(f"start {kind.key}"):
            key = uuid.uuid4().hex  # a start answered 503 is asked again with its key: it happens once
            started = self._until_answered(
                lambda: self.cluster.client(via).start(kind.key, variables={"n": n}, idempotency_key=key)
            )
            self.model[started.executionID] = Expected(started.executionID, kind, n)

    @rule(which=WHICH, via=st.integers(0, NODES - 1))
    def pause(self, which: tuple[int, bool], via: int) -> None:
        with self.step("pause"):
            self._control(self._pick(which, "pause"), Request("pause"), via)

    @rule(which=WHICH, via=st.integers(0, NODES - 1))
    def resume(self, which: tuple[int, bool], via: int) -> None:
        with self.step("resume"):
            self._control(self._pick(which, "resume"), Request("resume"), via)

    @rule(which=WHICH, via=st.integers(0, NODES - 1))
    def cancel(self, which: tuple[int, bool], via: int) -> None:
        with self.step("cancel"):
            self._control(self._pick(which, "cancel"), Request("cancel"), via)

    @rule(
        which=WHICH, via=st.integers(0, NODES - 1), patch=st.none() | PATCHES, keyed=st.booleans(), again=st.booleans()
    )
    def retry(self, which: tuple[int, bool], via: int, patch: dict[str, Any] | None, keyed: bool, again: bool) -> None:
        """Retry, with a merge patch or without; with an idempotency key, sometimes sent twice: once applied, the
        key answers the first answer whatever the execution did since, and nothing more is written."""
        expected = self._pick(which, "retry")
        request = Request("retry", patch, uuid.uuid4().hex if keyed else None)
        with self.step("retry" + (" with a key" if keyed else "")):
            answer = self._control(expected, request, via)
            if keyed and again and answer is not None:
                assert self._until_answered(lambda: request.send(self.cluster.client(via + 1), expected.id)) == answer
                self.cluster.stats["retry: its key again, same answer"] += 1

    @rule(which=WHICH, via=st.integers(0, NODES - 1), patch=PATCHES)
    def edit(self, which: tuple[int, bool], via: int, patch: dict[str, Any]) -> None:
        with self.step("edit"):
            self._control(self._pick(which, "edit"), Request("edit", patch), via)

    @rule(
        verb=st.sampled_from(sorted(LOOSENING | {"retry-element"})),
        which=WHICH,
        via=st.integers(0, NODES - 1),
        choice=st.integers(0, 1000),
        output=st.none() | st.integers(0, 100),
        caught=st.booleans(),
    )
    def step_control(
        self, verb: str, which: tuple[int, bool], via: int, choice: int, output: int | None, caught: bool
    ) -> None:
        """A step control on an element of the stack (read first: a paused or failed execution does not move), or
        on the element a failure would leave there for one the model thinks running (a 409, unless it failed
        meanwhile). With `which`'s flag, a running execution is first let fail (a kind that fails) or paused."""
        expected = self._pick(which, verb)
        with self.step(verb):
            if which[1] and expected.may_end() and expected.ends() == {"failed"}:
                self._wait_final(expected)  # a kind that fails: step it once it has (most steps would be a 409)
            elif which[1] and expected.status == "running":
                self._control(expected, Request("pause"), via)  # else pause it first: most steps would be a 409
            self._control(expected, self._step_request(expected, verb, choice, output, caught), via)

    @rule(which=WHICH, via=st.integers(0, NODES - 1))
    def step_mode(self, which: tuple[int, bool], via: int) -> None:
        """Step mode (issue 22): a paused execution runs the next element of each lane and is paused again (its log:
        resumed, the elements' entries, stepped, paused), or ends if that element ends it; a 409 naming the status
        anywhere else. Whatever the answer (a 503 too), the log's entries that carry this request's reason are what
        happened, in order."""
        expected = self._pick(which, "advance")
        with self.step("step mode"):
            if expected.status == "running":
                self._control(expected, Request("pause"), via)  # a step of a running one is a 409 (the rest say so)
            reason = f"step {uuid.uuid4().hex}"
            try:
                answer = self.cluster.client(via).step(expected.id, reason=reason)
            except InvalidTransition as refused:
                self._refused(expected, Request("advance"), refused.current_status)
                self.cluster.stats["step mode: 409"] += 1
                return
            except Unavailable:
                answer = None
            log = self.cluster.read(lambda client: client.log(expected.id)).items
            mine = [e.event for e in log if e.detail.get("reason") == reason and _acknowledged_entry(e)]
            if answer is None and not mine:
                self.cluster.stats["step mode: 503, not done"] += 1
                return
            assert expected.status == "paused" and (answer is None or mine[:1] == ["resumed"]), (expected, mine)
            expected.transitions += mine
            if answer is not None:
                assert answer.status in {"paused", *expected.ends()}, (expected, answer)
                assert mine == (["resumed", "stepped", "paused"] if answer.status == "paused" else ["resumed"]), mine
                expected.status = answer.status
            else:
                expected.status = self.cluster.read(lambda client: client.status(expected.id)).status
            self.cluster.stats[f"step mode: {'200' if answer is not None else '503, done'}"] += 1

    @rule(which=WHICH, via=st.integers(0, NODES - 1), choice=st.integers(0, 1000), patch=st.none() | PATCHES)
    def rewind(self, which: tuple[int, bool], via: int, choice: int, patch: dict[str, Any] | None) -> None:
        """Rewind (issue 22) to one of the newest kept checkpoints, with a merge patch or without: a paused,
        failed or cancelled execution is paused there, its stack and variables exactly the checkpoint's with the
        patch merged; a 409 naming the status anywhere else. With `which`'s flag a running one is paused first."""
        expected = self._pick(which, "rewind")
        with self.step("rewind" + (" with a patch" if patch is not None else "")):
            if which[1] and expected.status == "running":
                self._control(expected, Request("pause"), via)
            kept = self.cluster.read(lambda client: client.checkpoints(expected.id, limit=40)).items
            if not kept:
                self.cluster.stats["rewind: no checkpoint kept"] += 1
                return
            seq = kept[choice % len(kept)].seq
            view = self.cluster.read(lambda client: client.checkpoint(expected.id, seq))
            memory = view.memory or {}
            variables = memory.get("variables", {})
            request = Request(
                "rewind",
                patch,
                checkpoint=seq,
                kept={name: variables[name] for name in (*PATCHED, "fix") if name in variables},
                queue=tuple(memory.get("signals", {}).get("go", [])),
            )
            answer = self._control(expected, request, via)
            if answer is None:
                return
            # paused there: the checkpoint's pending elements, its variables with the patch merged
            state = self.cluster.read(lambda client: client.state(expected.id))
            assert state.active and state.stack is not None and state.memory is not None, state
            assert _pending(state.stack) == _pending(view.stack or {}), (expected, state.stack, view.stack)
            merged = {k: v for k, v in {**variables, **(patch or {})}.items() if v is not None}
            assert state.memory["variables"] == merged, (expected, state.memory, merged)
            assert answer.checkpoint == seq and answer.pendingNodes == len(_pending(view.stack or {})), answer

    @rule(which=WHICH, via=st.integers(0, NODES - 1), choice=st.integers(0, 1000))
    def run_now(self, which: tuple[int, bool], via: int, choice: int) -> None:
        """run-now of an element with a timer: on a running execution it may be pending on it (200), on another
        element (404), under way or past it (409 naming `running`, not logged); elsewhere a 409 naming the status."""
        expected = self._pick(which, "run-now")
        with self.step("run-now"):
            self._control(expected, _run_now(expected.kind, choice), via)

    def _step_request(self, expected: Expected, verb: str, choice: int, output: int | None, caught: bool) -> Request:
        kind = expected.kind
        stack: list[dict[str, Any]] = []
        if expected.status in STOPPED:
            stored = self.cluster.read(lambda client: client.state(expected.id)).stack or {}
            stack = stored.get("execution_stack", [])
        if stack:
            entry = stack[choice % len(stack)]
            element, lane, thread = entry["element_key"], entry["path"], entry["thread_key"]
        else:  # running (or final): where a failure would stand, so that one that failed meanwhile has it
            element = kind.fails_at[0] if kind.fails_at else next(iter(kind.threads.values()))[0]["key"]
            lane = thread = next(t for t, es in kind.threads.items() if any(e["key"] == element for e in es))
        absent = expected.status in STOPPED and not stack
        if verb == "move":
            elements = kind.threads[thread]
            return Request("move", element=elements[(choice // 7) % len(elements)]["key"], lane=lane, invalid=absent)
        error_type = "Rescued" if caught else "Other"
        return Request(
            verb,
            element=element,
            lane=lane,
            output=NO_OUTPUT if output is None else {"given": output},
            error_type=error_type,
            caught=verb == "fail" and kind.catches(element, error_type),
            invalid=verb == "complete" and kind.element(element)["type"] != "task" and not absent,
            absent=absent,
        )

    @rule(which=WHICH, payload=st.integers(0, 1000), via=st.integers(0, NODES - 1))
    def signal(self, which: tuple[int, bool], payload: int, via: int) -> None:
        with self.step("signal"):
            self._signal(self._pick(which), payload, via)

    @rule(which=WHICH)
    def wait_for_its_end(self, which: tuple[int, bool]) -> None:
        expected = self._pick(which)
        if expected.may_end() and not (expected.loose and expected.kind.waits):  # that one may wait for a signal
            with self.step("wait for an end"):
                self._wait_final(expected)

    @initialize(kind=st.sampled_from(KINDS), n=st.integers(0, 1000))
    def first_start(self, kind: Kind, n: int) -> None:
        self.start(kind, n, 0)

    @rule(
        what=st.sampled_from(("node", "node", "redis crash", "redis restart")),
        via=st.integers(0, NODES - 1),
        until_expired=st.booleans(),
    )
    def disrupt(self, what: str, via: int, until_expired: bool) -> None:
        """One rule for every disruption, so that they are as frequent as one request, not as four. A node:
        kill -9 one, or start the one killed before again. Redis: kill -9 (nothing acknowledged may be lost:
        appendfsync always) or SIGTERM, then start it again on its data."""
        if what == "node" and NODES - len(self.cluster.alive()) > 0:
            with self.step("restart a node"):
                self.cluster.start_node(self.cluster.servers.index(None))
        elif what == "node":
            with self.step("kill -9 a node"):
                self._kill_a_node(via, until_expired)
        else:
            with self.step(f"{what} and start it again"):
                if what == "redis crash":
                    self.cluster.crash_redis()
                else:
                    self.cluster.store.restart()
                    self.cluster.last_disruption = time.monotonic()

    def _kill_a_node(self, via: int, until_expired: bool) -> None:
        """With `until_expired`, wait until its heartbeat has expired; otherwise a request for a paused execution it
        owned is forwarded to its inbox, which nobody reads, and answered 503 after the wait."""
        alive = self.cluster.alive()
        self.cluster.kill_node(alive[via % len(alive)]).close()
        if until_expired:
            deadline = time.monotonic() + NODE_TTL_S + SLACK_S
            while self.cluster.live_heartbeats() > len(alive) - 1:
                assert time.monotonic() < deadline, "a killed node's heartbeat outlived its TTL"
                time.sleep(0.02)

    @rule(
        verb=st.sampled_from(("pause", "resume", "cancel", "signal", "retry", "edit", *sorted(STEPS))),
        which=WHICH,
        via=st.integers(0, NODES - 1),
        what=st.sampled_from(("the node asked", "the other node", "redis")),
        after_ms=st.integers(0, 40),
        patch=PATCHES,
        keyed=st.booleans(),
        choice=st.integers(0, 1000),
    )
    def request_in_a_crash(
        self,
        verb: str,
        which: tuple[int, bool],
        via: int,
        what: str,
        after_ms: int,
        patch: dict[str, Any],
        keyed: bool,
        choice: int,
    ) -> None:
        """A request in flight when a node or Redis is killed -9: whatever the answer (or none), what it says
        holds, and a request that was not answered took effect once or not at all (a retry with a key: sent again
        with it, once)."""
        expected = self._pick(which, verb)
        alive = self.cluster.alive()
        if len(alive) < 2:
            what = "redis"
        asked = alive[via % len(alive)]
        client = self.cluster.client(via)
        token = uuid.uuid4().hex  # the reason (a signal: its idempotency key) names the request in the log
        if verb == "edit":  # an edit that changes nothing writes nothing: this one's effect is always in the log
            patch = {**patch, "p": 1000 + self.cluster.stats["steps"]}
        if verb == "run-now":
            control = _run_now(expected.kind, choice)
        elif verb in STEPS:  # the stack is read before the crash: a paused or failed execution does not move
            control = self._step_request(expected, verb, choice, choice % 3 or None, keyed)
        else:
            control = Request(
                verb, patch if verb in ("retry", "edit") else None, token if verb == "retry" and keyed else None
            )
        with self.step(f"{verb} while killing {what}"), ThreadPoolExecutor(1) as pool:
            if verb == "signal":
                payload = after_ms
                request = pool.submit(client.signal, expected.id, "go", payload, idempotency_key=token)
            else:
                request = pool.submit(control.send, client, expected.id, token)
            time.sleep(after_ms / 1000)  # where in the request the crash lands, not a wait for anything
            if what == "redis":
                self.cluster.crash_redis()
                killed = None
            else:
                killed = self.cluster.kill_node(asked if what == "the node asked" else alive[(via + 1) % len(alive)])
            try:
                answer: BaseException | None = request.exception(timeout=60)
            finally:
                if killed is not None:
                    killed.close()
            if verb == "signal":
                self._signal_again(expected, payload, token, answer)
            elif control.key is not None and isinstance(answer, Unavailable | ConnectionFailed):
                self.cluster.stats["retry: no answer, sent again with its key"] += 1
                expected.refusals_unsure += 1  # the attempt that died may have been refused and logged so
                self._control(expected, control, 0, token)
            else:
                self._control_outcome(expected, control, token, answer)

    @rule(verb=st.sampled_from(("pause", "resume", "cancel")), which=WHICH)
    def twice_at_once(self, verb: str, which: tuple[int, bool]) -> None:
        """The same transition asked through every node at once: exactly one wins where it is valid, the others
        get 409 with the status the winner left, and the log shows one transition."""
        expected = self._pick(which, verb)
        request = Request(verb)
        alive = self.cluster.alive()
        with self.step(f"{verb} through {len(alive)} nodes at once"), ThreadPoolExecutor(len(alive)) as pool:
            requests = [pool.submit(request.send, self.cluster.client(via), expected.id) for via in alive]
            answers = [sent.exception(timeout=60) for sent in requests]
        won = sum(1 for answer in answers if answer is None)
        assert won <= 1, f"{verb} of {expected.id}: {won} winners"
        if won:
            self._acknowledged(expected, request)
        for answer in answers:
            if isinstance(answer, Unavailable):
                self._resolve(expected, request, answer.request_id)
            elif answer is not None:
                assert isinstance(answer, InvalidTransition), answer
                self._refused(expected, request, answer.current_status, None if not won else frozenset())
        self.cluster.stats[f"{verb} at once: {won} won"] += 1

    def _signal_again(self, expected: Expected, payload: int, key: str, answer: BaseException | None) -> None:
        """Without an answer, the signal is sent again with its key (through a live node): delivered once."""
        if isinstance(answer, Unavailable | ConnectionFailed):
            self.cluster.stats["signal: no answer, sent again"] += 1
            self._signal(expected, payload, 0, key)
        elif isinstance(answer, InvalidTransition):
            self._signal_refused(expected, answer)
        elif isinstance(answer, ValidationError):
            self._signal_untakeable(expected, answer)
        else:
            assert answer is None, answer
            self._signal_accepted(expected, payload)

    def _control_outcome(self, expected: Expected, request: Request, token: str, answer: BaseException | None) -> None:
        verb = request.verb
        if isinstance(answer, NotFound | ValidationError) or (
            isinstance(answer, InvalidTransition) and self._not_logged_409(request, answer)
        ):
            self._step_refused(expected, request, answer)
        elif isinstance(answer, InvalidTransition):
            self._refused(expected, request, answer.current_status)
            expected.refusals_unsure += 1  # its `refused` entry may have been written by an attempt that died
            self.cluster.stats[f"{verb} in a crash: 409"] += 1
        elif isinstance(answer, Unavailable | ConnectionFailed):
            self._settle_unanswered(expected, request, token)
        else:
            assert answer is None, answer
            self._acknowledged(expected, request)
            self.cluster.stats[f"{verb} in a crash: 200"] += 1

    def _settle_unanswered(self, expected: Expected, request: Request, token: str) -> None:
        """A request with no answer may still be carried out until its deadline (the owner's wait): poll the log
        for it until then; if it is not there by then, it must never be."""
        verb = request.verb
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        while True:
            log = self.cluster.read(lambda client: client.log(expected.id)).items
            mine = [entry.event for entry in log if entry.detail.get("reason") == token]
            if request.operation.event in mine:
                self._acknowledged(expected, request)
                self.cluster.stats[f"{verb} in a crash: no answer, done"] += 1
                return
            if "refused" in mine:
                status = self.cluster.read(lambda client: client.status(expected.id)).status
                self._refused(expected, request, status)
                expected.refusals_unsure += 1
                self.cluster.stats[f"{verb} in a crash: no answer, refused"] += 1
                return
            if time.monotonic() > deadline:
                expected.forbidden.add(token)
                self.cluster.stats[f"{verb} in a crash: no answer, not done"] += 1
                return
            time.sleep(0.05)

    def _pick(self, which: tuple[int, bool], verb: str = "signal") -> Expected:
        """An execution of this example; with `prefer`, one in a status the operation prefers if there is one (not
        ended, for most): most requests to a final execution are a 409 that says little."""
        index, prefer = which
        statuses = OPERATIONS[verb].prefer if verb in OPERATIONS else LIVE
        pool = [e for e in self.model.values() if e.status in statuses] if prefer else []
        pool = pool or list(self.model.values())
        return pool[index % len(pool)]

    # --- the invariant -----------------------------------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        with self.step():
            for expected in self.model.values():
                self._check(expected)

    def teardown(self) -> None:
        """Drive every execution to its end (which must come) and check it there; after a failed step, only
        cancel what is left, so that the next example does not run beside it."""
        if not self.clean:
            for expected in self.model.values():
                with contextlib.suppress(Exception):
                    self.cluster.client(0).cancel(expected.id)
            return
        with self.step():
            for expected in self.model.values():
                for _ in range(5):
                    if expected.status != "paused":
                        break
                    self._control(expected, Request("resume"), 0)
                # (one a step control moved may wait for a signal again: one more lets it go on)
                if expected.kind.waits and (expected.loose or not expected.signals) and expected.status == "running":
                    self._signal(expected, 1, 0)
            for expected in self.model.values():
                if expected.status == "running":
                    self._wait_final(expected)
                self._check(expected)
                assert expected.status in FINAL, f"execution {expected.id} is still {expected.status}"
            self._check_lists()

    # --- how the model follows the answers ---------------------------------------------------------------------

    def _until_answered(self, call: Callable[[], T]) -> T:
        """Ask again while the answer is 503: for requests that carry an idempotency key."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return call()
            except (Unavailable, ConnectionFailed):
                assert time.monotonic() < deadline, "503 for 30 s"
                self.cluster.stats["503, asked again with the key"] += 1
                time.sleep(0.05)

    def _control(self, expected: Expected, request: Request, via: int, reason: str | None = None) -> Any:
        """Send one operation and follow its answer; the answer, or None if it was not acknowledged. A retry with
        an idempotency key is asked again while the answer is 503: it is applied once."""
        verb = request.verb
        try:
            if request.key is not None:
                asked = self.cluster.stats["503, asked again with the key"]
                try:
                    answer = self._until_answered(lambda: request.send(self.cluster.client(via), expected.id, reason))
                finally:  # an attempt answered 503 may have been refused, and logged so, before the one that answered
                    expected.refusals_unsure += self.cluster.stats["503, asked again with the key"] - asked
            else:
                answer = request.send(self.cluster.client(via), expected.id, reason)
        except InvalidTransition as refused:
            if self._not_logged_409(request, refused):
                self._step_refused(expected, request, refused)
                return None
            self._refused(expected, request, refused.current_status)
            self.cluster.stats[f"{verb}: 409"] += 1
            return None
        except (NotFound, ValidationError) as refused:
            self._step_refused(expected, request, refused)
            return None
        except Unavailable as lost:
            self._resolve(expected, request, lost.request_id)
            return None
        self._acknowledged(expected, request)
        if verb in STEPS:
            assert answer.status == expected.status, f"{verb} of {expected.id}: {answer}; the model says {expected}"
        self.cluster.stats[f"{verb}: 200"] += 1
        return answer

    @staticmethod
    def _not_logged_409(request: Request, refused: InvalidTransition) -> bool:
        """run-now of a running execution's element that waits on no timer: a 409 naming `running`, not logged
        (the execution's status allows it; the element does not)."""
        return request.verb == "run-now" and refused.current_status == "running"

    def _step_refused(self, expected: Expected, request: Request, refused: BaseException) -> None:
        """A step control refused for its element, not for the status (nothing written, nothing logged): a 422 for a
        complete of an element that is not a task or a move of a lane with nothing pending; a 404 for an element
        not on a stack the model read; else a 404 or run-now's 409 only where the model does not know the stack (it
        thought the execution running; it may have failed or moved on meanwhile)."""
        verb = request.verb
        if verb == "rewind":  # a checkpoint no longer kept: refused, and logged so
            assert isinstance(refused, NotFound) and expected.status == "running", (expected, request, refused)
            expected.refused += 1
            self.cluster.stats["rewind: 404 (trimmed while it ran)"] += 1
            return
        if isinstance(refused, ValidationError):
            assert request.invalid, f"{verb} of {expected.id} ({request}): 422 {refused}"
        else:
            assert not request.invalid, f"{verb} of {expected.id} ({request}): {refused}, expected a 422"
            assert request.absent or expected.status == "running", (
                f"{verb} of {expected.id} ({request}): {refused}; model {expected}"
            )
        self.cluster.stats[f"{verb}: {type(refused).__name__}"] += 1

    def _acknowledged(self, expected: Expected, request: Request) -> None:
        """The model follows an acknowledged operation: its status, its log entry, its merge patch."""
        operation = request.operation
        ended = sorted(expected.ends() & operation.valid)
        if expected.status not in operation.valid and expected.may_end() and ended:
            expected.status = ended[0]  # it had ended on its own (a retry of one that failed meanwhile)
        assert expected.status in operation.valid, (
            f"{request.verb} of {expected.id} was acknowledged, the model says {expected.status}"
        )
        if request.verb == "rewind":
            expected.rewound(request.kept or {}, list(request.queue))
        changed = expected.patch(request.patch) if request.patch is not None else False
        if request.verb != "edit" or changed:  # an edit that changes nothing writes nothing
            expected.transitions.append(operation.event)
        to = request.leads_to(expected.status)
        if request.verb == "retry" or (expected.status in FINAL and to == "paused"):
            expected.revived.append(expected.status)
        if request.verb == "retry":
            expected.retries += 1
        if request.verb in LOOSENING:
            expected.loose = True
        if to is not None:
            expected.status = to

    def _refused(self, expected: Expected, request: Request, current: str, valid: frozenset[str] | None = None) -> None:
        valid = request.operation.valid if valid is None else valid
        assert current in expected.allowed() and current not in valid, (
            f"{request.verb} of {expected.id} refused as {current}; the model says {expected.allowed()}"
        )
        expected.refused += 1
        expected.status = current

    def _resolve(self, expected: Expected, request: Request, request_id: str | None) -> None:
        """A 503 to an operation: it took effect or it did not, the log says which; one that did not must never
        take effect later."""
        verb = request.verb
        assert request_id, "a 503 without X-Request-ID"
        log = self.cluster.read(lambda client: client.log(expected.id)).items
        mine = {entry.event for entry in log if entry.detail.get("requestId") == request_id}
        if request.operation.event in mine:
            self._acknowledged(expected, request)
            self.cluster.stats[f"{verb}: 503, done"] += 1
        elif "refused" in mine:
            status = self.cluster.read(lambda client: client.status(expected.id)).status
            if verb == "rewind" and status in request.operation.valid:  # its checkpoint was no longer kept
                expected.refused += 1
                expected.status = status
                return
            self._refused(expected, request, status)
            self.cluster.stats[f"{verb}: 503, refused"] += 1
        else:
            expected.forbidden.add(request_id)
            self.cluster.stats[f"{verb}: 503, not done"] += 1

    def _signal(self, expected: Expected, payload: int, via: int, key: str | None = None) -> None:
        key = key or uuid.uuid4().hex  # a signal answered 503 is sent again with its key: it is delivered once
        try:
            self._until_answered(
                lambda: self.cluster.client(via).signal(expected.id, "go", payload, idempotency_key=key)
            )
        except InvalidTransition as refused:
            self._signal_refused(expected, refused)
            return
        except ValidationError as untakeable:
            self._signal_untakeable(expected, untakeable)
            return
        self._signal_accepted(expected, payload)

    def _signal_untakeable(self, expected: Expected, refused: ValidationError) -> None:
        """422: no wait-signal of its definition takes `go` (issue 20): refused, not kept, for a live execution."""
        assert not expected.kind.waits, f"signal to {expected.id} refused as untakeable: {refused}"
        assert expected.allowed() & {"running", "paused"}, f"signal to {expected.id}: 422, the model says {expected}"
        self.cluster.stats["signal: 422 (untakeable)"] += 1

    def _signal_refused(self, expected: Expected, refused: InvalidTransition) -> None:
        assert refused.current_status in expected.allowed() and refused.current_status in FINAL, (
            f"signal to {expected.id} refused as {refused.current_status}; the model says {expected.allowed()}"
        )
        expected.status = refused.current_status
        self.cluster.stats["signal: 409"] += 1

    def _signal_accepted(self, expected: Expected, payload: int) -> None:
        assert expected.status in ("running", "paused"), f"signal to {expected.id} accepted, it is {expected.status}"
        expected.signals.append(payload)
        self.cluster.stats["signal: 202"] += 1

    def _wait_final(self, expected: Expected) -> None:
        """Wait for the end a running execution must reach on its own (polling its status, with a deadline)."""
        assert expected.may_end(), f"execution {expected.id} cannot end on its own: {expected}"
        deadline = time.monotonic() + 20
        while True:
            status = self.cluster.read(lambda client: client.status(expected.id)).status
            if status != "running":
                assert status in expected.ends(), f"execution {expected.id}: {status}"
                expected.status = status
                return
            if time.monotonic() >= deadline:
                described = f"execution {expected.id} is still running after 20 s\n{self._describe(expected)}"
                print(described, flush=True)  # shown at once with -s: shrinking may take a while
                raise AssertionError(described)
            time.sleep(0.02)

    def _describe(self, expected: Expected) -> str:
        """What the engine says of an execution, for a failure message: the model's view, its status and blockedOn,
        its stack, its elements and the end of its log, its owner (each read best-effort, one after the other: not
        one snapshot, the execution may move between them)."""
        lines = [f"model: {expected}"]
        reads: list[tuple[str, Callable[[Client], Any]]] = [
            ("status", lambda client: client.status(expected.id).model_dump(mode="json")),
            ("stack", lambda client: client.state(expected.id).stack),
            ("elements", lambda client: [(e.key, e.status) for e in client.elements(expected.id).items]),
            (
                "log (last 25)",
                lambda client: "\n  ".join(
                    f"{entry.event} {entry.elementKey or ''} {entry.detail}"
                    for entry in client.log(expected.id).items[-25:]
                ),
            ),
        ]
        for name, call in reads:
            try:
                lines.append(f"{name}: {self.cluster.read(call)}")
            except Exception as failed:  # a diagnostic: say what could not be read
                lines.append(f"{name}: could not be read ({failed!r})")
        cluster = self.cluster
        try:  # who runs it (not in the API): its owner, whether that node is live, whether a reconcile looks at it
            owner = cluster.store_call(lambda r: r.hget(cluster.keys.execution(expected.id).execution, "owner"))
            active = cluster.store_call(lambda r: r.sismember(cluster.keys.active, str(expected.id)))
            owned_key = cluster.keys.owned(owner or "")
            owned = bool(owner) and cluster.store_call(lambda r: r.sismember(owned_key, str(expected.id)))
            lines.append(
                f"owner: {owner!r}, live {cluster.owner_is_live(expected.id)}, in the active set {active}, "
                f"in its owner's owned set {owned}"
            )
        except Exception as failed:  # a diagnostic: say what could not be read
            lines.append(f"owner: could not be read ({failed!r})")
        return "\n".join(lines)

    # --- the checks --------------------------------------------------------------------------------------------

    def _check(self, expected: Expected) -> None:
        status = self.cluster.read(lambda client: client.status(expected.id))
        observed = status.status
        assert observed in expected.allowed(), f"execution {expected.id} is {observed}; model: {expected}"
        expected.status = observed
        progress = status.progress
        assert progress.totalNodes == expected.kind.total
        assert expected.completed_nodes <= progress.completedNodes <= progress.totalNodes, (expected, progress)
        expected.completed_nodes = progress.completedNodes
        assert status.isActive == (observed not in FINAL)
        assert (status.timing.stoppedAt is not None) == (observed in FINAL), status.timing
        assert (status.timing.pausedAt is not None) == (observed == "paused"), status.timing
        log = self.cluster.read(lambda client: client.log(expected.id)).items
        self._check_log(expected, log)
        self._check_owned(expected)
        if expected.revivals and observed in LIVE:
            self._check_live_again(expected)
        if observed == "running":
            self._check_owner(expected)
            return
        # paused or final: nothing moves any more until the model asks
        completed = {entry.elementKey for entry in log if entry.event == "element-completed"}
        skipped = {entry.elementKey for entry in log if entry.event == "element-skipped"}  # counted, once
        if not expected.rewinds:  # (a rewind takes progress back; its log keeps what ran before)
            assert progress.completedNodes == len(completed | skipped), (expected.id, progress, completed, skipped)
        if observed == "completed":
            assert progress.percentage == 100.0
        if observed == "failed":
            assert status.error is not None
            if expected.loose:  # a step moved it, or an operator's `fail` named the element
                assert status.error["element"] in {e["key"] for es in expected.kind.threads.values() for e in es}
            else:
                assert (status.error["element"], status.error["attempts"]) == expected.kind.fails_at, status.error
        elements = self.cluster.read(lambda client: client.elements(expected.id)).items
        if observed in FINAL:
            # (a task waiting for its retry keeps `retrying`: its record holds the failed attempt's error)
            unfinished = [e for e in elements if e.status == "running"]
            assert not unfinished, f"execution {expected.id} is {observed}; its elements say {unfinished}"
        if observed == "completed" and not expected.rewinds:  # (a record holds its element's last run)
            recorded = {e.key for e in elements if e.status in ("completed", "skipped")}
            assert recorded == completed | skipped, (expected.id, elements)
        state = self.cluster.read(lambda client: client.state(expected.id))
        if observed == "cancelled":
            assert (state.active, state.stack, state.memory) == (False, None, None), state
            return
        assert state.active == (observed == "paused") and state.memory is not None, state
        variables = state.memory["variables"]
        repaired = (*PATCHED, "fix")  # what the acknowledged merge patches left, exactly
        assert {k: variables[k] for k in repaired if k in variables} == expected.patched, (expected, variables)
        # every accepted signal is kept once, in order, until the wait takes the first one
        kept = state.memory.get("signals", {}).get("go", [])
        if expected.loose:  # a skip may have set `payload`, a move back taken a second signal: the last ones wait
            queued = expected.queued()
            assert kept == queued[len(queued) - len(kept) :], (expected, state.memory)
            assert variables["n"] == expected.n, (expected, variables)
            return
        consumed = 1 if expected.kind.waits and "payload" in variables else 0
        assert kept == expected.signals[consumed:], (expected, state.memory)
        if observed == "completed":
            assert variables == expected.variables(), (expected, variables)
            return
        known = expected.variables()  # paused or failed: what is there so far is what the end would have
        strays = {k: v for k, v in variables.items() if k not in known or known[k] != v}
        assert variables["n"] == expected.n and not strays, (expected, strays)

    def _check_lists(self) -> None:
        """The list of executions filtered by status (its own index) agrees with each one's status."""
        for name in sorted(FINAL):

            def listing(client: Client, name: Any = name) -> list[int]:
                return [e.executionID for e in client.iter_executions(status=name)]

            listed = set(self.cluster.read(listing))
            expected = {e.id for e in self.model.values() if e.status == name}
            assert listed & self.model.keys() == expected, (name, listed & self.model.keys(), expected)

    def _check_log(self, expected: Expected, log: list[LogEntry]) -> None:
        events = [entry.event for entry in log]
        where = f"execution {expected.id}: {events}"
        assert events[:1] == ["started"] and _count(log, "started") == 1, where
        assert [e.event for e in log if _acknowledged_entry(e)] == expected.transitions, (where, expected)
        assert expected.refused <= _count(log, "refused") <= expected.refused + expected.refusals_unsure, where
        assert _count(log, "signal-received") == len(expected.signals), (where, expected)
        # an element completes once, unless a retry's log entry names it as reset (a task re-run), or a move's entry
        # names the lane moved back before it from an element after it (it runs again from there); a rewind starts a
        # new stretch of the log, in which the elements after its checkpoint complete once more
        reruns = Counter(item["element"] for e in log if e.event == "retried" for item in e.detail["reset"])
        for e in log:
            if e.event == "lane-moved" and e.elementKey is not None:
                reruns.update(expected.kind.rerun_by_move(e.elementKey, e.detail["movedFrom"]))
        stretches: list[Counter[str | None]] = [Counter()]
        for e in log:
            if e.event == "rewound":
                stretches.append(Counter())
            elif e.event == "element-completed":
                stretches[-1][e.elementKey] += 1
        assert len(stretches) == 1 + expected.rewinds, (where, expected)
        twice = [key for stretch in stretches for key, times in stretch.items() if times > 1 + reruns[key]]
        assert not twice, f"{where}: completed twice: {twice}"
        # each revival (a retry, a step control from failed to paused, a rewind of a failed or cancelled one) follows
        # the end it revives from (a failure may be an operator's uncaught `fail` of a paused one): failed, revived,
        # cancelled, revived, ..., then at most one end
        revivals = expected.revivals
        ends = [_end_or_revival(e) for e in log]
        ends = [end for end in ends if end is not None]
        revived = [step for source in expected.revived for step in (source, "revived")]
        assert ends[: 2 * revivals] == revived, (where, ends, expected)
        ends = ends[2 * revivals :]
        assert len(ends) <= 1, where
        if expected.status in FINAL:
            assert ends == [expected.status], where
        elif ends:
            assert expected.may_end() and ends[0] in expected.ends(), where
        late = [e for e in log if {e.detail.get("requestId"), e.detail.get("reason")} & expected.forbidden]
        assert not late, f"{where}: a request answered 503 took effect afterwards: {late}"

    def _check_owned(self, expected: Expected) -> None:
        """owner = N and not final => the execution is in owned(N): what a reconciler reads when N dies (read in one
        script, so that a takeover between two reads cannot fake a miss)."""
        head, tail = self.cluster.keys.owned("\x00").split("\x00")
        key = self.cluster.keys.execution(expected.id).execution
        owner, status, member = self.cluster.store_call(lambda r: r.eval(OWNED_CHECK, 1, key, head, tail, expected.id))
        if owner and status not in FINAL:
            assert member == 1, f"execution {expected.id} is {status}, owned by {owner}, not in its owned set"
            self.cluster.stats["in its owner's owned set"] += 1

    def _check_live_again(self, expected: Expected) -> None:
        """A retried execution that has not ended again is kept for good: no TTL on its keys, no `removals` note for
        the sweeper (read, then its status again: a failure since may have started a new retention)."""
        keys = self.cluster.keys.execution(expected.id)
        removals = self.cluster.keys.removals("default")
        ttls = self.cluster.store_call(lambda r: [r.pttl(key) for key in keys.all()])
        notes = self.cluster.store_call(lambda r: r.zrange(removals, 0, -1))
        if self.cluster.read(lambda client: client.status(expected.id)).status not in LIVE:
            return
        assert all(ttl in (-1, -2) for ttl in ttls) and ttls[0] == -1, f"execution {expected.id}: TTLs {ttls}"
        mine = [note for note in notes if note.split(":")[0] == str(expected.id)]
        assert not mine, f"execution {expected.id} is live again, the sweeper would unlist it: {mine}"
        self.cluster.stats["retried, live again"] += 1

    def _check_owner(self, expected: Expected) -> None:
        """A running execution has a live owner, or gets one within the node TTL of the last disruption."""
        cluster = self.cluster
        if cluster.owner_is_live(expected.id):
            return
        deadline = cluster.last_disruption + NODE_TTL_S + RECONCILE_S + SLACK_S
        while not cluster.owner_is_live(expected.id):
            status = cluster.read(lambda client: client.status(expected.id)).status
            if status != "running":
                assert status in expected.allowed(), f"execution {expected.id} is {status}; model: {expected}"
                expected.status = status
                return
            assert time.monotonic() < deadline, (
                f"execution {expected.id} running with no live owner {time.monotonic() - cluster.last_disruption:.1f}"
                " s after the last disruption"
            )
            time.sleep(0.02)
        cluster.longest_orphan_s = max(cluster.longest_orphan_s, time.monotonic() - cluster.last_disruption)
        cluster.stats["waited for an adoption"] += 1


OWNED_CHECK = """
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local status = redis.call('HGET', KEYS[1], 'status') or ''
if owner == '' then return {owner, status, 0} end
return {owner, status, redis.call('SISMEMBER', ARGV[1] .. owner .. ARGV[2], ARGV[3])}
"""
"""The owner, the status and whether the owner's `owned` set holds the execution, read at one instant (a test's
script on one Redis: it builds the set's key from Keys.owned's head and tail)."""


def _settings() -> settings:
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES") or (40 if LONG else 10)),
        stateful_step_count=40 if LONG else 15,
        deadline=None,
        database=None,  # no .hypothesis/ litter: a failure prints its steps, and a seed with --hypothesis-seed
        suppress_health_check=list(HealthCheck),
        # bounded (`make test`): a failure is reported with its steps as found, not shrunk: shrinking replays the
        # kills and restarts of many examples and ran past the test's timeout, which then said nothing of what failed
        phases=list(Phase) if LONG else [p for p in Phase if p is not Phase.shrink],
    )


def _run(cluster: Cluster) -> None:
    """In a worker thread: the nodes, the definitions, then the examples."""
    for index in range(NODES):
        cluster.start_node(index)
    for kind in KINDS:
        cluster.client(0).register(kind.definition())
    machine = type("EngineModel", (Model,), {"cluster": cluster})
    began = time.monotonic()
    run_state_machine_as_test(machine, settings=_settings())
    stats = cluster.stats
    print(
        f"\nmodel: {stats.pop('examples')} examples, {stats.pop('steps')} steps in {time.monotonic() - began:.0f} s; "
        f"longest wait for an owner {cluster.longest_orphan_s:.2f} s after a disruption; "
        + ", ".join(f"{name} {count}" for name, count in sorted(stats.items()))
    )


@pytest.mark.fuzz
@pytest.mark.slow
@pytest.mark.timeout(7200 if LONG else 300)
async def test_the_engine_keeps_to_the_model(redis_server_factory: RedisServerFactory, prefix: str) -> None:
    store = redis_server_factory()
    store.extra_args = ("--appendfsync", "always")  # a crash of Redis may lose nothing it acknowledged
    await store.arestart()
    async with serving(store.url, prefix) as start:
        cluster = Cluster(asyncio.get_running_loop(), start, store, prefix)
        try:
            await asyncio.to_thread(_run, cluster)
        finally:
            await asyncio.to_thread(cluster.close)


# --- pure runs (issue 21, goal 3): coalesced checkpoints read as one checkpoint per element ---------------------
#
# A smaller model, in-process: a chain of pure elements (set-variable, if-condition, switch), with tasks and
# failing expressions among them, run by a node that coalesces pure runs and by one that writes every element on
# its own. The per-element model says what each prefix of the chain leaves (variables, completions); the engine
# must end as the model says and as the other node does (status, progress, variables, log, element records), a
# pause must find a state the per-element model has (a prefix, and one that ends a run), and a write that fails
# inside a chain (landed or not) must leave, after the recovery, every element completed once.

CAP = 4
"""The pure run's limit in these examples: small, so chains of a few elements have several runs."""
OPS = st.one_of(
    st.tuples(st.just("set"), st.integers(-3, 5)),
    st.tuples(st.just("if"), st.integers(-5, 20)),
    st.tuples(st.just("switch"), st.integers(-5, 20)),
    st.tuples(st.just("task"), st.just(0)),
    st.tuples(st.just("fail"), st.just(0)),
)
CHAINS = st.lists(OPS, min_size=3, max_size=14).filter(lambda ops: [op for op, _ in ops].count("fail") <= 1)


def _pure_chain(ops: list[tuple[str, int]]) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    for index, (op, value) in enumerate(ops):
        key, after = f"e{index}", (f"e{index + 1}" if index + 1 < len(ops) else "end")
        if op == "set":
            elements.append({"key": key, "type": "set-variable", "set": {"x": f"x + {value}"}, "next": after})
        elif op == "fail":
            elements.append({"key": key, "type": "set-variable", "set": {"x": "missing + 1"}, "next": after})
        elif op == "if":
            elements.append(
                {"key": key, "type": "if-condition", "condition": f"x > {value}", "then": after, "else": after}
            )
        elif op == "switch":
            cases = [{"when": f"x == {value}", "next": after}]
            elements.append({"key": key, "type": "switch", "cases": cases, "default": after})
        else:
            elements.append({"key": key, "type": "task", "handler": "echo", "input": {"x": "x"}, "next": after})
    elements.append({"key": "end", "type": "end"})
    return elements


@dataclass(frozen=True)
class ChainModel:
    """The per-element model of a chain: the variables and completions after each element, and where the
    coalescing node writes a checkpoint."""

    ops: list[tuple[str, int]]

    def prefixes(self) -> list[tuple[int, list[str]]]:
        """(x, completions) after 0, 1, 2, ... elements completed, up to the end (or the failing element)."""
        x, done, seen = 0, [], [(0, [])]
        for index, (op, value) in enumerate(self.ops):
            if op == "fail":
                return seen
            if op == "set":
                x += value
            done = [*done, f"e{index}"]
            seen.append((x, done))
        seen.append((x, [*done, "end"]))
        return seen

    @property
    def fails(self) -> bool:
        return any(op == "fail" for op, _ in self.ops)

    def run_ends(self, cap: int) -> set[int]:
        """The numbers of completed elements a checkpoint of the coalescing node can leave: after every element
        that is not pure, or whose next is not pure, or that fills a run of `cap`."""
        kinds = [op for op, _ in self.ops] + ["end"]
        pure = [kind in ("set", "if", "switch") for kind in kinds]
        ends, run = {0}, 0
        for index, kind in enumerate(kinds):
            if kind == "fail":
                break
            run = run + 1 if pure[index] else 0
            next_pure = index + 1 < len(kinds) and pure[index + 1] and kinds[index + 1] != "fail"
            if not pure[index] or not next_pure or run >= cap:
                ends.add(index + 1)
                run = 0
        return ends


@pytest.fixture
async def pure_nodes(redis_server: Any, prefix: str, tmp_path: Any) -> Any:
    base = Settings(
        redis_url=redis_server.url,
        prefix=prefix,
        data_dir=tmp_path / "procengine",
        port=0,
        pause_grace_ms=500,
        node_heartbeat_ms=100,
        node_ttl_ms=500,
        reconcile_interval_ms=100,
        passivate_after_ms=200,
    )
    redis = Redis.from_url(redis_server.url, decode_responses=False)
    nodes = [Node(redis, base.model_copy(update={"checkpoint_coalesce": cap}), builtin_handlers()) for cap in (CAP, 1)]
    for node in nodes:
        await node.__aenter__()
    yield nodes
    for node in reversed(nodes):
        await node.__aexit__(None, None, None)
    await redis.aclose()


async def _history(node: Any, execution_id: int) -> tuple[Any, ...]:
    status = await node.status(CALLER, execution_id)
    state = await node.state(CALLER, execution_id)
    log = [
        (e.event, e.elementKey, {k: v for k, v in e.detail.items() if k not in ("durationMs", "requestId")})
        for e in (await node.log(CALLER, execution_id)).items
    ]
    records = sorted(
        (r.key, r.status, r.attempts, repr(r.output), r.error, r.errorType)
        for r in (await node.elements(CALLER, execution_id, limit=1000)).items
    )
    return status.status, status.progress, state.memory["variables"], log, records


def _completions(history: tuple[Any, ...]) -> list[str]:
    return [key for event, key, _ in history[3] if event == "element-completed"]


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or (60 if LONG else 12)),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(ops=CHAINS, yields=st.integers(0, 40), fault=st.sampled_from([None, "lost", "landed"]), at=st.integers(1, 6))
async def test_pure_runs_read_as_one_checkpoint_per_element(
    pure_nodes: Any, ops: list[tuple[str, int]], yields: int, fault: str | None, at: int
) -> None:
    coalescing, alone = pure_nodes
    model = ChainModel(ops)
    prefixes = model.prefixes()
    summary, _ = await coalescing.register_process(
        CALLER, {"key": f"pure{uuid.uuid4().hex[:8]}", "threads": [{"key": "main", "elements": _pure_chain(ops)}]}
    )
    end = "failed" if model.fails else "completed"

    async def run(node: Any) -> int:
        started, _ = await node.start_execution(CALLER, StartRequest(processID=summary.processID, variables={"x": 0}))
        return int(started.executionID)

    # 1. the same ending with and without coalescing, and the model's
    finished = []
    for node in (coalescing, alone):
        execution_id = await run(node)
        assert await wait_status(node, execution_id, end, within=20) == end
        finished.append(await _history(node, execution_id))
    assert finished[0] == finished[1]
    x, done = prefixes[-1]
    assert finished[0][2]["x"] == x and _completions(finished[0]) == done

    # 2. a pause at some point: a state of the per-element model that ends a run; resumed, the same ending
    execution_id = await run(coalescing)
    for _ in range(yields):
        await asyncio.sleep(0)  # lets the execution go some way (no synchronisation: any point must hold)
    try:
        paused = await coalescing.pause(CALLER, execution_id, ControlRequest())
    except Refused:
        paused = None  # it had ended
    if paused is not None:
        history = await _history(coalescing, execution_id)
        count = paused.completedNodes
        assert count in model.run_ends(CAP), (count, model.run_ends(CAP))
        assert history[1].completedNodes == count and len(_completions(history)) == count
        assert (history[2]["x"], _completions(history)) == prefixes[count]
        await coalescing.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(coalescing, execution_id, end, within=20) == end
    again = await _history(coalescing, execution_id)
    steps = [entry for entry in again[3] if entry[0] not in ("paused", "resumed", "refused")]
    assert (again[0], again[2], steps, again[4]) == (finished[0][0], finished[0][2], finished[0][3], finished[0][4])

    # 3. a write inside the chain fails (lost before Redis, or landed with its answer lost): the node takes the
    # execution back from Redis and recomputes what was lost; every element completes once, as the model says
    if fault is not None:
        commit, writes = coalescing.store.commit, []

        async def failing(execution_id: int, change: Any, **kwargs: Any) -> Any:
            if any(entry.event == "element-completed" for entry in change.log):
                writes.append(change)
                if len(writes) == at:
                    if fault == "landed":
                        await commit(execution_id, change, **kwargs)
                    raise RedisGone("Redis went away during the write")
            return await commit(execution_id, change, **kwargs)

        coalescing.store.commit = failing
        try:
            execution_id = await run(coalescing)
            assert await wait_status(coalescing, execution_id, end, within=20) == end
        finally:
            del coalescing.store.commit
        crashed = await _history(coalescing, execution_id)
        assert (crashed[2], _completions(crashed)) == (finished[0][2], _completions(finished[0]))
        assert Counter(_completions(crashed)) == Counter(_completions(finished[0]))
