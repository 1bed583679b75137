"""Prometheus metrics of one node (prometheus-client), in a registry of its own so that several engines
in one process (tests, embedding) never collide. Served as text at `/metrics`.

What each metric means is in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import copy
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff

T = TypeVar("T")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ELEMENT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
LAG_INTERVAL_S = 0.02
"""How often the loop-lag sampler wakes: 50 wake-ups a second, a few µs each (under 0.001 core)."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "procengine_executions_started", "Executions started, by process key.", ["process_key"], registry=r
        )
        self.finished = Counter(
            "procengine_executions_finished",
            "Executions that reached a final status (completed, failed, cancelled), by process key.",
            ["process_key", "status"],
            registry=r,
        )
        self.active_actors = Gauge("procengine_active_actors", "Execution actors in this node's memory.", registry=r)
        self.executions = Gauge(
            "procengine_executions",
            "Running and paused executions in Redis (all nodes: the tenants' status indexes), as of the last "
            "reconcile pass.",
            ["status"],
            registry=r,
        )
        self.element_seconds = Histogram(
            "procengine_element_duration_seconds",
            "Time from an element's start to its completion or failure, by element type.",
            ["type", "outcome"],
            buckets=ELEMENT_BUCKETS,
            registry=r,
        )
        self._element_children: dict[tuple[str, str], Histogram] = {}
        self.checkpoint_seconds = Histogram(
            "procengine_checkpoint_seconds",
            "Latency of one atomic execution write (commit.lua), as the actor sees it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.control = Counter(
            "procengine_control_messages",
            "Messages on the control channel: accepted (acted on) or rejected (malformed or unknown), by reason.",
            ["outcome", "reason"],
            registry=r,
        )
        self.redis_errors = Counter(
            "procengine_redis_errors", "Redis commands that failed with a connection error or timeout.", registry=r
        )
        self.redis_retries = Counter(
            "procengine_redis_retries", "Redis commands retried after a connection error or timeout.", registry=r
        )
        self.adopted = Counter(
            "procengine_executions_adopted", "Running executions this node took over from a dead node.", registry=r
        )
        self.loop_lag = Histogram(
            "procengine_event_loop_lag_seconds",
            "How late the event loop ran a timer that was due (a sample every 20 ms): the time one piece of work "
            "held the loop, which every request waiting behind it also waits.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.gc_pause = Histogram(
            "procengine_gc_pause_seconds",
            "How long each run of Python's cyclic garbage collector held the process, by generation (2: a full "
            "collection, which walks every live object; PROCENGINE_GC_THRESHOLDS sets how often they run).",
            ["generation"],
            buckets=LAG_BUCKETS,
            registry=r,
        )

        queue = ["tenant", "queue"]
        self.queue_depth = Gauge(
            "procengine_task_queue_depth",
            "External tasks offered on a queue and not locked by a worker, as of the last reconcile pass.",
            queue,
            registry=r,
        )
        self.queue_oldest = Gauge(
            "procengine_task_queue_oldest_waiting_seconds",
            "Age of the oldest external task waiting on a queue for a worker (0: none), as of the last reconcile pass.",
            queue,
            registry=r,
        )
        self.queue_in_flight = Gauge(
            "procengine_task_queue_in_flight",
            "External tasks of a queue a worker holds the lock of, as of the last reconcile pass.",
            queue,
            registry=r,
        )
        self.queue_locks_expired = Gauge(
            "procengine_task_queue_locks_expired",
            "Locks of a queue's tasks that expired and whose tasks were taken again (all nodes, ever).",
            queue,
            registry=r,
        )

    def element_duration(self, element_type: str, outcome: str) -> Histogram:
        """The element duration histogram of one type and outcome (looked up once: labels() takes a lock)."""
        child = self._element_children.get((element_type, outcome))
        if child is None:
            child = self._element_children[(element_type, outcome)] = self.element_seconds.labels(element_type, outcome)
        return child

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(amount)` for each amount (a labelled child, no exemplars), with one lock taken for the
    sum and one per bucket it touches, instead of two per amount (2 µs each: a pure run's 20 element durations).
    It reads prometheus-client's Histogram internals (`_upper_bounds`, `_buckets`, `_sum`: the version is locked;
    tests/runtime/test_metrics.py holds it to `observe`); without them it observes one by one."""
    try:
        bounds: Sequence[float] = histogram._upper_bounds
        buckets: list[Any] = histogram._buckets
        total: Any = histogram._sum
        histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    except AttributeError:
        for amount in amounts:
            histogram.observe(amount)
        return
    counts: dict[int, int] = {}
    for amount in amounts:  # the first bucket whose bound is at least the amount (the last is +Inf)
        index = bisect_left(bounds, amount)
        counts[index] = counts.get(index, 0) + 1
    total.inc(sum(amounts))
    for index, count in counts.items():
        buckets[index].inc(count)


async def sample_loop_lag(
    observe: Callable[[float], None],
    *,
    interval_s: float = LAG_INTERVAL_S,
    now: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """For ever: sleep `interval_s` and `observe` how much later than that it woke (the loop's lag). Run as a task
    owned by the node; `now` is the loop's own clock unless given (tests give a fake one, with `sleep`)."""
    clock = now or asyncio.get_running_loop().time
    while True:
        began = clock()
        await sleep(interval_s)
        observe(max(0.0, clock() - began - interval_s))


class CountingRetry(Retry):
    """redis-py's Retry, counting every failed attempt and every retry into the metrics."""

    def __init__(self, backoff: AbstractBackoff, retries: int, metrics: Metrics) -> None:
        super().__init__(backoff, retries)
        self._metrics = metrics

    def __deepcopy__(self, memo: dict[int, Any]) -> CountingRetry:
        """redis-py copies the retry policy per connection; the copies share the one set of metrics."""
        return CountingRetry(copy.deepcopy(self._backoff, memo), self._retries, self._metrics)

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> T:
        failures = 0

        async def counted(error: Exception, *rest: Any) -> None:
            nonlocal failures
            failures += 1
            self._metrics.redis_errors.inc()
            if failures <= self._retries:
                self._metrics.redis_retries.inc()
            await fail(error, *rest)

        return await super().call_with_retry(do, counted, *args, **kwargs)
