"""compile_process: graph validation that lists every problem at once, ids, starts and compiled CEL."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.compiled import CompiledProcess, compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.errors import ValidationFailed
from tests.support.interpreter import definition


def _set(key: str, next_: str | None = None, **values: str) -> dict[str, Any]:
    element: dict[str, Any] = {"key": key, "type": "set-variable", "set": values or {"x": "1"}}
    if next_ is not None:
        element["next"] = next_
    return element


def _end(key: str) -> dict[str, Any]:
    return {"key": key, "type": "end"}


def _if(key: str, condition: str, then: str | None, else_: str | None) -> dict[str, Any]:
    element: dict[str, Any] = {"key": key, "type": "if-condition", "condition": condition}
    if then is not None:
        element["then"] = then
    if else_ is not None:
        element["else"] = else_
    return element


def _problems(process: ProcessDefinition, **kwargs: Any) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        compile_process(process, **kwargs)
    assert caught.value.details == caught.value.problems
    assert caught.value.code == "VALIDATION_ERROR"
    return caught.value.problems


def test_the_contract_example_compiles(order_definition: ProcessDefinition) -> None:
    # when
    compiled = compile_process(order_definition, known_handlers={"echo", "sleep", "fail"})
    # then ids number the elements 1..N in the order they are written
    assert compiled.element_ids == {
        "fetch_order": 1,
        "verify": 2,
        "premium": 3,
        "standard": 4,
        "approve": 5,
        "cool_off": 6,
        "done": 7,
    }
    assert compiled.total_nodes == 7
    (thread,) = compiled.threads
    assert (thread.key, thread.process_thread_id, thread.start, thread.total_nodes) == ("main", 1, "fetch_order", 7)
    assert set(compiled.thread_of.values()) == {"main"}
    # and every CEL source is compiled once, ready to evaluate
    assert compiled.expression("order_total > 500.0").evaluate_bool({"order_total": 599.99}) is True
    assert compiled.expression("order_id").evaluate({"order_id": "ORD-1"}) == "ORD-1"


def test_every_problem_is_listed_in_one_validation_failed() -> None:
    # given a definition with a bad CEL expression, a `next` to a missing element,
    # an unreachable element and a duplicate key
    process = definition(
        _set("first", "second", x="1 +"),
        _set("second", "ghost"),
        _end("orphan"),
        _end("second"),
    )
    # when it is compiled
    problems = _problems(process)
    # then all four are reported together, each naming what is wrong
    assert len(problems) == 4, problems
    assert any("first" in p and "bad CEL" in p and "1 +" in p for p in problems)
    assert any("second" in p and "missing element 'ghost'" in p for p in problems)
    assert any("orphan" in p and "unreachable" in p for p in problems)
    assert any("duplicate element key 'second'" in p for p in problems)


def test_problems_of_a_duplicate_element_are_reported_too() -> None:
    # given a duplicate key whose second element also has a bad expression
    process = definition(_set("a", "b"), _set("b", x="1 +"), _set("b", y="(("))
    # then both the duplicate and the bad CEL of each copy are reported
    problems = _problems(process)
    assert any("duplicate element key 'b'" in p for p in problems)
    assert any("'1 +'" in p for p in problems)
    assert any("'(('" in p for p in problems), problems


def test_a_cycle_with_no_way_out_is_detected() -> None:
    # given start -> a -> b -> a, nothing ever ends the thread
    problems = _problems(definition(_set("start", "a"), _set("a", "b"), _set("b", "a")))
    # then each element that can never reach an end is named
    assert problems == [
        "threads.0 (main): element 'start' is in a cycle with no way out",
        "threads.0 (main): element 'a' is in a cycle with no way out",
        "threads.0 (main): element 'b' is in a cycle with no way out",
    ]


def test_an_if_condition_whose_branches_both_loop_is_a_cycle_without_exit() -> None:
    # given a check whose then and else both lead back into the loop, beside a reachable end
    process = definition(
        _if("check", "n > 3", "left", "right"),
        _set("left", "check"),
        _set("right", "check"),
    )
    problems = _problems(process)
    assert len(problems) == 3
    assert all("cycle with no way out" in p for p in problems)


def test_only_the_trapped_part_of_a_graph_is_reported() -> None:
    # given a choice between an end and a closed loop
    process = definition(
        _if("choose", "go", "loop1", "done"),
        _set("loop1", "loop2"),
        _set("loop2", "loop1"),
        _end("done"),
    )
    problems = _problems(process)
    assert sorted(problems) == [
        "threads.0 (main): element 'loop1' is in a cycle with no way out",
        "threads.0 (main): element 'loop2' is in a cycle with no way out",
    ]


def test_a_loop_with_an_exit_is_accepted() -> None:
    # given a counter loop whose if-condition jumps back while n < 3 and leaves otherwise
    process = definition(
        _set("init", "body", n="0"),
        _set("body", "check", n="n + 1"),
        _if("check", "n < 3", "body", "done"),
        _end("done"),
    )
    # when / then it compiles
    assert isinstance(compile_process(process), CompiledProcess)


def test_a_loop_through_an_if_without_else_is_accepted() -> None:
    # an if-condition with one branch left out ends the thread on the other
    process = definition(_set("body", "check", n="n + 1"), _if("check", "n < 3", "body", None))
    assert compile_process(process).total_nodes == 2


def test_an_unknown_handler_is_refused_only_when_the_known_handlers_are_given(
    order_definition: ProcessDefinition,
) -> None:
    # given a definition using handler `echo`
    # when the registry does not have it
    problems = _problems(order_definition, known_handlers={"sleep", "fail"})
    # then that is the one problem, naming the known ones
    assert problems == ["element 'fetch_order': unknown handler 'echo' (known: fail, sleep)"]
    # and without a registry to check against, the definition compiles
    assert compile_process(order_definition).total_nodes == 7
    assert compile_process(order_definition, known_handlers=["echo"]).total_nodes == 7


def test_element_ids_run_1_to_n_across_threads_and_threads_are_numbered() -> None:
    process = definition(key="two", left=[_set("l1", "l2"), _end("l2")], right=[_set("r1", "r2"), _set("r2")])
    compiled = compile_process(process)
    assert compiled.element_ids == {"l1": 1, "l2": 2, "r1": 3, "r2": 4}
    assert [(t.key, t.process_thread_id, t.start, t.total_nodes) for t in compiled.threads] == [
        ("left", 1, "l1", 2),
        ("right", 2, "r1", 2),
    ]
    assert compiled.thread_of == {"l1": "left", "l2": "left", "r1": "right", "r2": "right"}
    assert compiled.thread("right").element_keys == ("r1", "r2")
    with pytest.raises(KeyError):
        compiled.thread("nope")


def test_start_defaults_to_the_first_element_and_an_explicit_start_is_honoured() -> None:
    # given `b` first in the list but the thread told to start at `a`
    body = {
        "key": "p",
        "threads": [{"key": "t", "start": "a", "elements": [_end("b"), _set("a", "b")]}],
    }
    compiled = compile_process(ProcessDefinition.model_validate(body))
    assert compiled.threads[0].start == "a"
    # and without `start` the first element is the start (so `a` is unreachable)
    del body["threads"][0]["start"]  # type: ignore[attr-defined]
    problems = _problems(ProcessDefinition.model_validate(body))
    assert problems == ["threads.0 (t): element 'a' is unreachable from 'b'"]


def test_a_start_that_is_not_an_element_of_the_thread_is_refused() -> None:
    body = {"key": "p", "threads": [{"key": "t", "start": "nowhere", "elements": [_end("a")]}]}
    assert _problems(ProcessDefinition.model_validate(body)) == [
        "threads.0 (t): start 'nowhere' is not an element of this thread"
    ]


def test_next_cannot_cross_into_another_thread() -> None:
    process = definition(left=[_set("l1", "r2")], right=[_set("r1", "r2"), _end("r2")])
    assert _problems(process) == ["threads.0 (left): element 'l1' points to missing element 'r2'"]


def test_duplicate_thread_keys_are_refused() -> None:
    body = {"key": "p", "threads": [{"key": "t", "elements": [_end("a")]}, {"key": "t", "elements": [_end("b")]}]}
    problems = _problems(ProcessDefinition.model_validate(body))
    assert problems == ["threads.1 (t): duplicate thread key 't'"]


@pytest.mark.parametrize("source", ["1 +", "a ==", "(x", "x.", "'unclosed"])
def test_bad_cel_in_every_kind_of_expression_is_refused(source: str) -> None:
    # given the same bad source in a task input, a set value and a condition
    process = definition(
        {"key": "t", "type": "task", "handler": "echo", "input": {"v": source}, "next": "s"},
        _set("s", "c", v=source),
        _if("c", source, None, None),
    )
    problems = _problems(process)
    # then it is reported for each element that uses it
    assert [p.split(":")[0] for p in problems] == ["element 't'", "element 's'", "element 'c'"]


def test_a_missing_start_does_not_hide_the_other_problems_of_its_thread() -> None:
    # given a thread whose start is wrong and whose element points nowhere
    body = {
        "key": "p",
        "threads": [{"key": "t", "start": "nowhere", "elements": [_set("a", "ghost"), _set("b", x="1 +")]}],
    }
    # then the start, the missing target and the bad CEL are all reported
    problems = _problems(ProcessDefinition.model_validate(body))
    assert problems[:2] == [
        "threads.0 (t): start 'nowhere' is not an element of this thread",
        "threads.0 (t): element 'a' points to missing element 'ghost'",
    ]
    assert len(problems) == 3
    assert "bad CEL '1 +'" in problems[2]
