"""observe_many: a pure run's element durations go into their histogram together, as one observe each would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from procengine.runtime.metrics import ELEMENT_BUCKETS, observe_many


def _histogram() -> Histogram:
    registry = CollectorRegistry()
    return Histogram("durations", "durations", ["type", "outcome"], buckets=ELEMENT_BUCKETS, registry=registry)


def _samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_many_durations_at_once_count_as_one_observe_each() -> None:
    rng = random.Random(21)
    amounts = [0.0, 0.001, 0.0011, 0.005, 4.9, 5.0, 3600.0, 3600.5, 1e9] + [
        round(rng.random() * 10 ** rng.randrange(-3, 4), 3) for _ in range(300)
    ]
    one, many = _histogram(), _histogram()
    for amount in amounts:
        one.labels("set-variable", "completed").observe(amount)
    observe_many(many.labels("set-variable", "completed"), amounts[:100])
    observe_many(many.labels("set-variable", "completed"), amounts[100:])
    observe_many(many.labels("set-variable", "completed"), [])
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_the_parent_of_labelled_children_is_refused_as_observe_refuses_it() -> None:
    histogram = _histogram()
    with pytest.raises(ValueError):
        histogram.observe(1.0)
    with pytest.raises(ValueError):
        observe_many(histogram, [1.0])
