"""Chaos in the suite: three real nodes, executions started, signalled, paused and cancelled by clients asking
any node, and nodes broken under them (bench/chaos.py; `make chaos` runs it longer). Plus the audit itself
(bench/chaos_audit.py), fed made-up runs: a clean one passes, and each way of being broken fails it."""

from __future__ import annotations

from typing import Any

import pytest

from bench.chaos import main
from bench.chaos_audit import Effect, Observed, audit, completed_twice, longest_standstill, parse_effects


def _entry(at_ms: int, event: str, key: str | None = None, **detail: Any) -> dict[str, Any]:
    seconds, ms = divmod(at_ms, 1000)
    return {"at": f"2026-12-01T00:00:{seconds:02d}.{ms:03d}Z", "event": event, "elementKey": key, "detail": detail}


def _clean_run() -> Observed:
    """One execution of the chaos definition (2 rounds), as a correct engine leaves it: completed, its 3 notes
    taken once each, one side effect per task run, a pause during which nothing moved."""
    log = [_entry(0, "started")]
    effects = []
    t = 1
    for round_ in range(2):
        log += [_entry(t, "element-started", "work"), _entry(t + 50, "element-completed", "work")]
        effects.append(Effect(f"w{round_}", f"1:work:{2 * round_ + 1}:1", "node0", 100, t / 1000, (t + 50) / 1000))
        log += [_entry(t + 150, "element-completed", "nap"), _entry(t + 151, "element-completed", "count")]
        log += [_entry(t + 152, "element-completed", "more")]
        t += 200
    log += [_entry(t, "paused", requestId="chaos-7"), _entry(t + 500, "resumed", requestId="chaos-8")]
    for i in range(3):
        key = f"note-1-{i}"
        log += [_entry(t + 600 + i, "signal-received", signal="note", idempotencyKey=key)]
        log += [_entry(t + 601 + i, "element-completed", name) for name in ("inbox", "file", "full")]
    log += [_entry(t + 610, "element-started", "side_work"), _entry(t + 690, "element-completed", "side_work")]
    effects.append(Effect("s", "1:side_work:9:1", "node0", 100, (t + 610) / 1000, (t + 690) / 1000))
    log += [_entry(t + 700, "signal-received", signal="go", idempotencyKey="end-1")]
    log += [_entry(t + 701, "element-completed", "go"), _entry(t + 702, "element-started", "last")]
    log += [_entry(t + 712, "element-completed", "last"), _entry(t + 713, "completed")]
    effects.append(Effect("l", "1:last:10:1", "node0", 100, (t + 702) / 1000, (t + 712) / 1000))
    return Observed(
        statuses={1: "completed"},
        logs={1: log},
        variables={1: {"n": 2, "limit": 2, "notes": ["note-1-0", "note-1-1", "note-1-2"]}},
        limits={1: 2},
        effects=effects,
        acknowledged=[(1, "paused", "chaos-7"), (1, "resumed", "chaos-8"), (1, "signal-received", "note-1-1")],
        notes={1: ["note-1-0", "note-1-1", "note-1-2"]},
        starts={"chaos-start-0": {1}},
    )


def _problems(seen: Observed) -> dict[str, list[str]]:
    return {kind: items for kind, items in audit(seen).problems.items() if items}


def test_a_clean_run_passes_the_audit() -> None:
    result = audit(_clean_run())
    assert not result.failed, dict(result.problems)
    assert result.figures["side effects"] == 4
    assert result.figures["pauses checked"] == 1
    assert result.figures["signals taken (log)"] == 3


def test_a_failed_execution_fails_the_audit_with_its_error() -> None:
    seen = _clean_run()
    seen.statuses[1] = "failed"
    seen.logs[1][-1] = _entry(9_000, "failed", error="handler exploded", errorType="RuntimeError", element="work")
    problems = _problems(seen)
    assert problems["not completed"] == [
        "1: failed ({'element': 'work', 'error': 'handler exploded', 'errorType': 'RuntimeError'})"
    ]


def test_a_lost_execution_or_one_cancelled_without_leave_fails_the_audit() -> None:
    seen = _clean_run()
    del seen.statuses[1]
    assert _problems(seen)["not completed"] == ["1: lost"]
    seen.last_seen[1] = "paused"
    assert _problems(seen)["not completed"] == ["1: lost (still paused)"]
    seen.statuses[1] = "cancelled"
    assert _problems(seen)["not completed"] == ["1: cancelled"]
    seen.cancellable.add(1)
    assert "not completed" not in _problems(seen)


def test_two_runs_of_one_attempt_at_once_on_two_nodes_fail_the_audit() -> None:
    seen = _clean_run()
    first = seen.effects[0]
    # the same attempt again on another node, starting 20 ms into the first run
    seen.effects.append(Effect("dup", first.key, "node2", 200, first.start + 0.02, first.start + 0.07))
    seen.logs[1].insert(2, _entry(5, "adopted", **{"from": "a", "to": "b"}))  # the log names the re-run
    problems = _problems(seen)
    assert list(problems) == ["concurrent run"]
    assert "1:work:1:1: on node0 (pid 100)" in problems["concurrent run"][0]
    assert audit(seen).figures["concurrent runs"] == 1


def test_a_run_cut_by_a_kill_and_run_again_after_adoption_is_no_concurrent_run() -> None:
    seen = _clean_run()
    first = seen.effects[0]
    seen.effects[0] = Effect(first.run, first.key, "node0", 100, first.start, None)  # killed: no end recorded
    seen.gone_at[100] = first.start + 0.01
    seen.effects.append(Effect("again", first.key, "node1", 300, first.start + 1.2, first.start + 1.25))
    seen.logs[1].insert(2, _entry(5, "adopted", **{"from": "a", "to": "b"}))
    assert not audit(seen).failed
    del seen.gone_at[100]  # the process was never killed: its run has not ended, the other overlaps it
    assert list(_problems(seen)) == ["concurrent run"]


def test_a_re_run_the_log_does_not_name_fails_the_audit() -> None:
    seen = _clean_run()
    last = seen.effects[-1]
    seen.effects.append(Effect("again", last.key, "node0", 100, (last.end or 0) + 1, (last.end or 0) + 2))
    assert _problems(seen)["side effects"] == [
        "1: last re-ran 1 times, the log names 0 (retries, re-runs, adoptions while it ran)"
    ]


def test_a_completed_element_without_a_side_effect_fails_the_audit() -> None:
    seen = _clean_run()
    del seen.effects[1]
    assert _problems(seen)["side effects"] == ["1: work completed 2 times, with side effects of 1 runs"]


def test_a_signal_taken_twice_fails_the_audit() -> None:
    seen = _clean_run()
    seen.logs[1].insert(-1, _entry(9_000, "signal-received", signal="note", idempotencyKey="note-1-1"))
    seen.variables[1]["notes"] = ["note-1-0", "note-1-1", "note-1-1"]
    problems = _problems(seen)["signal not once"]
    assert "1: signal note-1-1 received 2 times" in problems
    assert "1: signal note-1-2 is in notes 0 times" in problems
    assert "1: signal note-1-1 is in notes 2 times" in problems


def test_an_element_moving_while_paused_fails_the_audit() -> None:
    seen = _clean_run()
    at = next(i for i, e in enumerate(seen.logs[1]) if e["event"] == "resumed")
    seen.logs[1].insert(at, _entry(800, "element-started", "side_work"))
    assert _problems(seen)["moved while paused"] == [
        "1: element-started side_work at 2026-12-01T00:00:00.800Z, paused at 2026-12-01T00:00:00.401Z"
    ]


def test_one_start_key_answered_with_two_executions_fails_the_audit() -> None:
    seen = _clean_run()
    seen.starts["chaos-start-0"].add(2)
    assert _problems(seen)["duplicate start"] == ["start key chaos-start-0: executions [1, 2]"]


def test_the_handlers_records_are_read_back_as_runs() -> None:
    lines = [b"S r1 5:work:3:1 node0 111 10.5", b"S r2 5:work:3:1 node1 222 11.0", b"E r1 10.6 ok"]
    first, second = parse_effects(lines)
    assert (first.execution, first.element, first.order, first.end, first.outcome) == (5, "work", 3, 10.6, "ok")
    assert (second.node, second.pid, second.end) == ("node1", 222, None)


def test_the_audit_counts_an_element_completed_more_often_than_it_ran() -> None:
    log = [_entry(i, "element-completed", "count") for i in range(3)] + [_entry(9, "element-completed", "done")] * 2
    assert completed_twice(1, log, rounds=3, outcome="completed") == ["1: done completed 2 times (at most 1)"]
    assert completed_twice(1, log[:2], rounds=3, outcome="completed") == [
        "1: the loop's counter completed 2 times, not 3"
    ]
    assert completed_twice(1, log[:2], rounds=3, outcome="cancelled") == []


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
    assert longest_standstill(log) == pytest.approx(1.5)


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
    nothing acknowledged is lost, every execution ends, no element completes twice and no attempt runs on two
    nodes at once (counted by the task handler in a Redis of its own)."""
    argv = ["--mode", "failover", "--durability", "replicated", "--seconds", "20", "--executions", "100"]
    assert main(argv) == 0
