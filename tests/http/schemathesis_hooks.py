"""Schemathesis hooks for tests/http/test_schemathesis.py (loaded by the schemathesis process, not by pytest).

One failure is dropped, narrowly, because the check is wrong about this API on purpose: JSON Schema holds an
integral float (`141.0`) to be an integer, so a document cannot say `{"type": "integer"}` and refuse it, and
schemathesis sends it as valid data. This API refuses it (422 `Input should be a valid integer`): numbers are
strict (docs/api.md, "Numbers are strict"; issue 12, item 3). So a "schema-valid request rejected" failure is
dropped when every problem the server listed is such a float at the place it names, and kept otherwise.

The second is an opaque page cursor (`GET …/elements?cursor=`): a document can say it is a short string, not which
strings the server gave, so a made-up one is schema-valid and refused (422 "is not a cursor this API gave"), as an
opaque cursor must be.

One of issue 23: a start's attribute its definition does not declare (or of another type), which the schema
cannot say either. Two more, of issue 22: a breakpoint on an element the definition does not have (422 listing
it: which element keys a definition has, the schema cannot say), and a made-up checkpoint number (404 for the
checkpoint, which schemathesis's stateful check takes for the execution it created being gone). And of issue 23: a
migration to a version the process does not have (404, as a checkpoint), or whose plan has problems (422 listing
them).

The third is that float's mirror: a huge integral float written as a float (`-3.5e+255`) is a double the memory
stores, and accepted, while the payload schema (whose integer branch is bounded by what msgpack can hold as an
integer) calls it an out-of-range integer. An ST201 "schema-violating request accepted" is dropped when the body
holds such a float. The test prints how many were dropped.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

_STRICT_INTEGER = ": Input should be a valid integer"
_NOT_OURS = "is not a cursor this API gave"
_UNTAKEABLE = "is not a signal this execution waits for"


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext, failure: Any, case: schemathesis.Case, response: schemathesis.Response
) -> bool:
    """False (drop) only for a refused integral float where an integer goes, a made-up opaque cursor, a made-up
    signal name the execution's definition does not wait for, a step control its element cannot take, an
    accepted payload whose only fault is a huge integral float, or a batch of starts that refused the faulty start
    in its outcome; True (keep) for anything else."""
    if failure.code == "ST201" and response.status_code < 300:
        return not (_has_huge_integral_float(case.body) or _refused_per_item(case, response))
    if failure.code == "ST302" and response.status_code == 404 and _not_kept(response):
        return False
    if failure.code != "ST202" or response.status_code != 422:
        return True
    try:
        details = json.loads(response.content)["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return True
    if not isinstance(details, list) or not details:
        return True
    return not all(
        _integral_float_refused(case.body, problem)
        or _made_up_cursor(problem)
        or _untakeable_signal(problem)
        or _not_for_this_element(problem)
        or _no_such_breakpoint_element(problem)
        or _not_for_this_version(problem)
        or _undeclared_attribute(problem)
        for problem in details
    )


def _undeclared_attribute(problem: object) -> bool:
    """A start's search attribute its definition does not declare, or a value of another type than the declared one
    (422 listing it, issue 23): which attributes a definition declares, and their types, the schema cannot say."""
    return (
        isinstance(problem, str)
        and problem.startswith("attributes.")
        and ("not declared by the definition" in problem or ": must be " in problem)
    )


def _no_such_breakpoint_element(problem: object) -> bool:
    """A breakpoint (`pauseBefore`, on a start or `PUT …/breakpoints`) on an element the definition does not have,
    or with a condition that does not compile (422, issue 22): which keys a definition has, the schema cannot say."""
    return (
        isinstance(problem, str)
        and problem.startswith("pauseBefore[")
        and ("no element" in problem or "].when: " in problem)
    )


def _not_kept(response: schemathesis.Response) -> bool:
    """A made-up checkpoint number (`POST …/rewind`, `…/fork`, `GET …/checkpoints/{seq}`): 404 for the checkpoint,
    not for the execution, which exists (issue 22)."""
    try:
        message = json.loads(response.content)["error"]["message"]
        return "is not kept" in message or " has no version " in message
    except (ValueError, KeyError, TypeError):
        return False


_PLAN_PROBLEMS = ("mapping: ", "lane '", "thread '", "breakpoint before ", "version: ")


def _not_for_this_version(problem: object) -> bool:
    """A migration plan's problem (`POST …/migrate`, issue 23): which elements and versions a process has, the
    schema cannot say."""
    return isinstance(problem, str) and problem.startswith(_PLAN_PROBLEMS)


_ELEMENT_DEPENDENT = ("elementKey: ", "lane: ", "before: ")


def _not_for_this_element(problem: object) -> bool:
    """A step control that the element named cannot take (issue 20: complete of an element that is not a task, skip
    of an if-condition, an element in several lanes without `lane`, a move out of a lane's list): 422, by the
    definition, which the schema cannot say."""
    return isinstance(problem, str) and problem.startswith(_ELEMENT_DEPENDENT)


def _untakeable_signal(problem: object) -> bool:
    """A made-up signal name no wait-signal of the execution's definition can take (422, issue 20): the schema
    cannot say which names a definition waits for."""
    return isinstance(problem, str) and problem.startswith("signal: ") and _UNTAKEABLE in problem


def _refused_per_item(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """A batch of starts refuses a start whose variables the schema counts out (an integer msgpack cannot hold) in
    that start's outcome, not the whole request (docs/api.md): accepted, the answer lists it as failed."""
    if not case.path.endswith("/executions/processes/batch"):
        return False
    try:
        return int(json.loads(response.content)["data"]["failed"]) > 0
    except (ValueError, KeyError, TypeError):
        return False


def _has_huge_integral_float(body: Any) -> bool:
    """A float such as `-3.5e+255` is a double the memory stores, but JSON Schema calls any integral number an
    integer, so the payload schema's integer range (what msgpack can hold as an integer) counts it out: the same
    ambiguity as the refused integral float above, the other way round."""
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and value.is_integer() and not -(2**63) <= value <= 2**64 - 1:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _made_up_cursor(problem: object) -> bool:
    return isinstance(problem, str) and problem.startswith("cursor: ") and problem.endswith(_NOT_OURS)


def _integral_float_refused(body: Any, problem: object) -> bool:
    if not isinstance(problem, str) or not problem.endswith(_STRICT_INTEGER):
        return False
    value = body
    for part in problem.removesuffix(_STRICT_INTEGER).split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False
    return isinstance(value, float) and value.is_integer()
