"""The garbage collector's settings and the pause histogram (runtime/collector.py)."""

from __future__ import annotations

import gc

import pytest
from pydantic import ValidationError

from procengine.runtime.collector import THRESHOLDS, observe_pauses, parse_thresholds, set_thresholds
from procengine.settings import Settings


def test_thresholds_parse_and_serve_sets_the_engines_by_default() -> None:
    assert parse_thresholds("20000, 20,20") == (20_000, 20, 20)
    assert parse_thresholds("DEFAULT") is None
    assert parse_thresholds(",".join(map(str, THRESHOLDS))) == THRESHOLDS
    assert parse_thresholds(Settings().gc_thresholds) == THRESHOLDS  # serve's default: see runtime/collector.py


@pytest.mark.parametrize("text", ["", "1,2", "1,2,3,4", "0,10,10", "-1,10,10", "a,b,c", "700;10;10"])
def test_bad_thresholds_are_refused_with_the_form_expected(text: str) -> None:
    with pytest.raises(ValidationError, match="three positive integers"):
        Settings(gc_thresholds=text)


def test_set_thresholds_sets_them_and_none_leaves_them() -> None:
    before = gc.get_threshold()
    try:
        set_thresholds((12_345, 11, 13))
        assert gc.get_threshold() == (12_345, 11, 13)
        set_thresholds(None)
        assert gc.get_threshold() == (12_345, 11, 13)
    finally:
        gc.set_threshold(*before)


def test_every_collection_is_observed_with_its_generation_until_stopped() -> None:
    seen: list[tuple[int, float]] = []
    stop = observe_pauses(lambda generation, seconds: seen.append((generation, seconds)))
    try:
        gc.collect(2)
        assert any(generation == 2 and seconds >= 0 for generation, seconds in seen)
    finally:
        stop()
    count = len(seen)
    gc.collect(2)
    assert len(seen) == count
