"""Chaos in the suite: three real nodes, 300 executions, clients asking any node, and nodes broken under them
(bench/chaos.py; `make chaos` runs it longer). Plus the audit's own arithmetic, on made-up logs."""

from __future__ import annotations

import pytest

from bench.chaos import _completed_twice, _longest_standstill, main


def _entry(at_ms: int, event: str, key: str | None = None) -> dict[str, object]:
    seconds, ms = divmod(at_ms, 1000)
    return {"at": f"2026-12-01T00:00:{seconds:02d}.{ms:03d}Z", "event": event, "elementKey": key, "detail": {}}


def test_the_audit_counts_an_element_completed_more_often_than_it_ran() -> None:
    log = [_entry(i, "element-completed", "count") for i in range(3)] + [_entry(9, "element-completed", "done")] * 2
    assert _completed_twice(1, log, rounds=3, outcome="completed") == ["1: done completed 2 times (at most 1)"]
    assert _completed_twice(1, log[:2], rounds=3, outcome="completed") == [
        "1: the loop's counter completed 2 times, not 3"
    ]
    assert _completed_twice(1, log[:2], rounds=3, outcome="cancelled") == []


def test_the_standstill_leaves_out_pauses_and_the_wait_for_the_signal() -> None:
    log = [
        _entry(0, "element-started", "work"),
        _entry(100, "element-completed", "work"),
        _entry(1_600, "element-completed", "nap"),  # 1.5 s: a standstill
        _entry(1_700, "paused"),
        _entry(9_000, "resumed"),  # paused for 7.3 s: not a standstill
        _entry(9_100, "element-completed", "count"),
        _entry(9_200, "element-completed", "go"),
        _entry(30_000, "element-completed", "last"),  # waited for the client's signal: not counted
    ]
    assert _longest_standstill(log) == pytest.approx(1.5)


@pytest.mark.slow
@pytest.mark.alone
@pytest.mark.timeout(240)
def test_kill_9_chaos_loses_nothing_and_completes_nothing_twice() -> None:
    """`make chaos` runs this for 120 s over 300 executions; here 20 s over 150 keep the suite in its budget."""
    assert main(["--mode", "kill", "--seconds", "20", "--executions", "150", "--nodes", "3"]) == 0


@pytest.mark.slow
@pytest.mark.alone
@pytest.mark.timeout(240)
def test_a_rolling_restart_answers_every_request_and_stalls_no_execution_for_2_s() -> None:
    assert main(["--mode", "rolling", "--seconds", "20", "--max-standstill-s", "2"]) == 0


@pytest.mark.slow
@pytest.mark.alone
@pytest.mark.timeout(300)
def test_sentinel_failovers_with_replicated_durability_lose_no_acknowledged_transition() -> None:
    """The Redis master is killed every few seconds under 100 running executions; with `--durability replicated`
    nothing acknowledged is lost, every execution ends and no element completes twice."""
    argv = ["--mode", "failover", "--durability", "replicated", "--seconds", "20", "--executions", "100"]
    assert main(argv) == 0
