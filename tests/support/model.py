"""What tests/test_model.py drives and checks against: the definitions it starts, its model of one execution,
and the engine nodes and Redis under it (`Cluster`)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from procengine.client import Client
from procengine.client.errors import ConnectionFailed, Unavailable
from procengine.store.embedded import RedisServer
from procengine.store.keys import Keys
from tests.support.servers import Server, ServerFactory

T = TypeVar("T")

NODES = 2
NODE_FLAGS = ("--pause-grace-ms", "300", "--passivate-after-ms", "500")
FINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Kind:
    """One of the definitions the model starts, and what its end must look like."""

    key: str
    threads: dict[str, list[dict[str, Any]]]
    natural_end: str
    """What a running execution becomes on its own (for one that waits: once it has its signal)."""
    waits: bool = False
    """It waits for the signal `go`, its payload into `payload`."""
    fails_at: tuple[str, int] | None = None
    """The element a failure names, and its attempts by then (the error of a failed execution of this kind)."""
    fixed_by: str | None = None
    """The variable whose presence (set by a repair's merge patch) makes it complete instead of failing."""

    @property
    def total(self) -> int:
        return sum(len(elements) for elements in self.threads.values())

    def definition(self) -> dict[str, Any]:
        return {"key": self.key, "threads": [{"key": k, "elements": e} for k, e in self.threads.items()]}

    def element(self, key: str) -> dict[str, Any]:
        return next(e for elements in self.threads.values() for e in elements if e["key"] == key)

    def catches(self, key: str, error_type: str) -> bool:
        """Whether a catch clause of the element takes a failure of this type."""
        return any(error_type in clause["errors"] for clause in self.element(key).get("catch", []))

    def timed(self) -> list[str]:
        """The elements that wait on a timer (a delay, a task's retry backoff): what run-now may end."""
        return [e["key"] for es in self.threads.values() for e in es if e["type"] == "delay" or "retry" in e]

    def rerun_by_move(self, before: str, moved_from: str) -> list[str]:
        """The elements a lane moved back from `moved_from` to `before` runs again: from `before` along `next` up
        to `moved_from` (none for a move forward: `moved_from` is not reached)."""
        passed: list[str] = []
        key: str | None = before
        while key is not None and key != moved_from and key not in passed:
            passed.append(key)
            key = self.element(key).get("next")
        return passed if key == moved_from else []


WAITS = Kind(
    "model-waits",
    {
        "main": [
            {"key": "wait", "type": "wait-signal", "signal": "go", "into": "payload", "next": "note"},
            {"key": "note", "type": "set-variable", "set": {"noted": "payload + n"}, "next": "end"},
            {"key": "end", "type": "end"},
        ]
    },
    "completed",
    waits=True,
)
STEPS = Kind(
    "model-steps",
    {
        "main": [
            {"key": "first", "type": "set-variable", "set": {"a": "n + 1"}, "next": "echo"},
            {"key": "echo", "type": "task", "handler": "echo", "input": {"x": "a"}, "output": "echoed", "next": "nap"},
            {"key": "nap", "type": "delay", "durationMs": 300, "next": "work"},
            # longer than the pause grace (300 ms): a pause in it cuts it short, and it runs again after resume
            {"key": "work", "type": "task", "handler": "sleep", "input": {"ms": "600"}, "output": "slept", "next": "b"},
            {"key": "b", "type": "set-variable", "set": {"b": "a + 1"}, "next": "end"},
            {"key": "end", "type": "end"},
        ]
    },
    "completed",
)
FAILS = Kind(
    "model-fails",
    {
        "main": [
            {"key": "nap", "type": "delay", "durationMs": 200, "next": "boom"},
            {
                "key": "boom",
                "type": "task",
                "handler": "fail",
                "input": {"message": "'boom'"},
                "retry": {"maxAttempts": 2, "backoffMs": 100},
                "next": "end",
                # only an operator's `fail` with this type is caught (the handler's own error is not a Rescued)
                "catch": [{"errors": ["Rescued"], "next": "rescued"}],
            },
            {"key": "end", "type": "end"},
            {"key": "rescued", "type": "end"},
        ]
    },
    "failed",
    fails_at=("boom", 2),
)
FIXABLE = Kind(
    "model-fixable",
    {
        "main": [
            {"key": "nap", "type": "delay", "durationMs": 200, "next": "first"},
            {"key": "first", "type": "set-variable", "set": {"a": "n + 1"}, "next": "check"},
            # fails (an ExpressionError) while `fix` is not set: a retry or an edit with `fix` in its patch repairs it
            {"key": "check", "type": "set-variable", "set": {"ok": "fix >= 0"}, "next": "settle"},
            # a repaired one stays running a while: the invariant sees it live again (no TTL, no removals note)
            {"key": "settle", "type": "delay", "durationMs": 300, "next": "end"},
            {"key": "end", "type": "end"},
        ]
    },
    "failed",
    fails_at=("check", 1),
    fixed_by="fix",
)
TWO_THREADS = Kind(
    "model-two-threads",
    {
        "asks": [
            {"key": "ask", "type": "wait-signal", "signal": "go", "into": "payload", "next": "told"},
            {"key": "told", "type": "end"},
        ],
        "works": [
            {"key": "rest", "type": "delay", "durationMs": 200, "next": "toil"},
            {
                "key": "toil",
                "type": "task",
                "handler": "sleep",
                "input": {"ms": "400"},
                "output": "slept",
                "next": "fin",
            },
            {"key": "fin", "type": "end"},
        ],
    },
    "completed",
    waits=True,
)
KINDS = (WAITS, STEPS, FAILS, FIXABLE, TWO_THREADS)
PATCHED = ("p", "q")
"""The names the model's merge patches set and remove (besides a kind's `fixed_by`): no definition writes them."""


@dataclass
class Expected:
    """The model of one execution."""

    id: int
    kind: Kind
    n: int
    status: str = "running"
    signals: list[int] = field(default_factory=list)
    """Payloads of the acknowledged signals, in the order they were acknowledged."""
    transitions: list[str] = field(default_factory=list)
    """Acknowledged pauses, resumes and cancels, in order: the log must hold exactly these."""
    refused: int = 0
    """409s to pause, resume and cancel: each is one `refused` entry."""
    refusals_unsure: int = 0
    """Refusals met in a crash: each may have left one `refused` entry more (an attempt that died after writing it)."""
    completed_nodes: int = 0
    patched: dict[str, Any] = field(default_factory=dict)
    """The variables the acknowledged merge patches (a retry's, an edit's) left set: the execution must hold these."""
    retries: int = 0
    """Acknowledged retries: each is one `retried` entry, after one `failed` end."""
    revived: list[str] = field(default_factory=list)
    """The ends acknowledged operations took it back from to live, in order: `failed` for retries and step controls
    on a failed execution that left it paused, `failed` or `cancelled` for rewinds (issue 22). Each is one log entry
    after that end."""
    rewinds: int = 0
    """Acknowledged rewinds: from the first on, its progress and elements' records are those of a checkpoint, and
    the log holds runs of elements from before it (an element completes once per stretch between rewinds)."""
    queue_at_rewind: list[int] | None = None
    """The `go` signals the checkpoint of the last rewind kept waiting (None: never rewound)."""
    signals_at_rewind: int = 0
    """How many signals had been acknowledged by the last rewind."""
    loose: bool = False
    """A step control changed its path (skip, complete, fail, move): from then on its end may be completed or
    failed, and of its variables only the patched ones and `n` are known."""
    forbidden: set[str] = field(default_factory=set)
    """Request ids (or reasons) of requests with no answer or a 503 that had not taken effect by their deadline: they
    must never take effect later."""

    @property
    def revivals(self) -> int:
        return len(self.revived)

    def queued(self) -> list[int]:
        """The `go` signals it may hold waiting, oldest first (it holds a suffix of these): the acknowledged ones,
        or after a rewind the ones its checkpoint kept and those acknowledged since."""
        if self.queue_at_rewind is None:
            return self.signals
        return self.queue_at_rewind + self.signals[self.signals_at_rewind :]

    def rewound(self, kept: dict[str, Any], queue: list[int]) -> None:
        """An acknowledged rewind to a checkpoint that held `kept` of the names merge patches touch and `queue`
        waiting: its patched variables are the checkpoint's (the rewind's own patch applies after), its path may
        be any from there (`loose`), its progress went back."""
        self.patched = dict(kept)
        self.queue_at_rewind, self.signals_at_rewind = list(queue), len(self.signals)
        self.rewinds += 1
        self.loose = True
        self.completed_nodes = 0

    @property
    def natural_end(self) -> str:
        """What it becomes on its own: a fixable kind completes once a patch set the variable that fixes it (a patch
        applies while it is paused or failed, so before the element that needs it runs)."""
        if self.kind.fixed_by is not None and self.kind.fixed_by in self.patched:
            return "completed"
        return self.kind.natural_end

    def ends(self) -> set[str]:
        """The ends it may reach on its own: its natural end, or either for one a step control changed."""
        return {"completed", "failed"} if self.loose else {self.natural_end}

    def may_end(self) -> bool:
        """A running execution that may have ended on its own."""
        return self.status == "running" and (self.loose or not self.kind.waits or bool(self.signals))

    def allowed(self) -> set[str]:
        """The statuses the execution may show now."""
        return {self.status, *self.ends()} if self.may_end() else {self.status}

    def patch(self, variables: dict[str, Any]) -> bool:
        """Apply an acknowledged merge patch (flat: the model's values are numbers or null); whether it changed any."""
        before = dict(self.patched)
        for name, value in variables.items():
            if value is None:
                self.patched.pop(name, None)
            else:
                self.patched[name] = value
        return self.patched != before

    def variables(self) -> dict[str, Any]:
        """The variables once it has completed; before a signal came, those that do not come from one."""
        found: dict[str, Any] = {"n": self.n}
        if self.kind is STEPS:
            a = self.n + 1
            found.update(a=a, echoed={"x": a}, slept={"slept": 600}, b=a + 1)
        elif self.kind is TWO_THREADS:
            found.update(slept={"slept": 400})
        elif self.kind is FIXABLE:
            found.update(a=self.n + 1, ok=True)
        found.update(self.patched)
        if self.kind.waits and self.signals:
            found["payload"] = self.signals[0]
            if self.kind is WAITS:
                found["noted"] = self.signals[0] + self.n
        return found


class Cluster:
    """The Redis and the engine nodes under the model, driven from the state machine's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start: ServerFactory, store: RedisServer, prefix: str):
        self.loop = loop
        self._start = start
        self.store = store
        self.redis = redis.Redis.from_url(store.url, decode_responses=True)
        self.keys = Keys(prefix)
        self.servers: list[Server | None] = [None] * NODES
        self.clients: list[Client | None] = [None] * NODES
        self.last_disruption = time.monotonic()
        self.stats: Counter[str] = Counter()
        self.longest_orphan_s = 0.0

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def start_node(self, index: int) -> None:
        server = self.on_loop(self._start(*NODE_FLAGS))
        self.servers[index] = server
        self.clients[index] = Client(server.url, retries=0, timeout=30)

    def kill_node(self, index: int) -> Client:
        """kill -9 the node; its client, for the caller to close (a request may still be in flight on it)."""
        server, client = self.servers[index], self.clients[index]
        assert server is not None and client is not None
        server.kill9()
        self.on_loop(server.process.wait())
        self.servers[index] = self.clients[index] = None
        self.last_disruption = time.monotonic()
        return client

    def crash_redis(self) -> None:
        self.store.kill()
        self.store.start()
        self.last_disruption = time.monotonic()

    def alive(self) -> list[int]:
        return [i for i, server in enumerate(self.servers) if server is not None]

    def client(self, via: int) -> Client:
        alive = self.alive()
        client = self.clients[alive[via % len(alive)]]
        assert client is not None
        return client

    def read(self, call: Callable[[Client], T], via: int = 0) -> T:
        """A read through a live node, asked again while the store is coming back (reads change nothing)."""
        deadline = time.monotonic() + 20
        while True:
            try:
                return call(self.client(via))
            except (Unavailable, ConnectionFailed):
                if time.monotonic() > deadline:
                    raise
                self.stats["read retried after 503"] += 1
                time.sleep(0.05)

    def store_call(self, call: Callable[[redis.Redis], T]) -> T:
        """A command straight to Redis (ownership is not in the API), again after a reconnect."""
        deadline = time.monotonic() + 20
        while True:
            try:
                return call(self.redis)
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def live_heartbeats(self) -> int:
        found = self.store_call(lambda r: list(r.scan_iter(match=self.keys.node("*"), count=1000)))
        return sum(1 for key in found if "{" not in key)  # not the inboxes, <p>:node:{id}:inbox

    def owner_is_live(self, execution_id: int) -> bool:
        owner = self.store_call(lambda r: r.hget(self.keys.execution(execution_id).execution, "owner"))
        return bool(owner) and bool(self.store_call(lambda r: r.exists(self.keys.node(owner))))

    def close(self) -> None:
        for client in self.clients:
            if client is not None:
                client.close()
        self.redis.close()
