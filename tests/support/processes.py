"""The definitions the tests run: the contract's example (shipped verbatim as examples/order-fulfilment.yaml), one
that waits for a signal, short ones that end by themselves or fail, and `definition`, which builds one from elements."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.paths import REPO

ORDER_FULFILMENT_YAML = (REPO / "examples" / "order-fulfilment.yaml").read_text()

ORDER_FULFILMENT_FAST_YAML = ORDER_FULFILMENT_YAML.replace("durationMs: 1000", "durationMs: 100")
"""The same with a 100 ms cool-off, for tests that run it to the end."""

ORDER_FULFILMENT: dict[str, Any] = yaml.safe_load(ORDER_FULFILMENT_FAST_YAML)
"""As a document, the way a client sends it."""

ORDER_DEFINITION: dict[str, Any] = {
    "key": "order-fulfilment",
    "name": "Order fulfilment",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "fetch_order", "type": "task", "handler": "echo", "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""A one-task stand-in for the order definition, for the front door's tests over the fake engine."""

WAIT_PROCESS: dict[str, Any] = {
    "key": "approval",
    "name": "Wait for approval",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "set", "type": "set-variable", "set": {"total": "amount * 2"}, "next": "wait"},
                {"key": "wait", "type": "wait-signal", "signal": "approve", "into": "approval", "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}
"""Runs until it gets the signal `approve`: long enough to pause, resume and cancel."""

SHORT_PROCESS_YAML = """\
key: short
name: Two threads and a short nap
threads:
  - key: main
    elements:
      - {key: hello, type: task, handler: echo, input: {greeting: "'hello'"}, next: nap}
      - {key: nap, type: delay, durationMs: 300, next: done}
      - {key: done, type: end}
  - key: side
    elements:
      - {key: mark, type: set-variable, set: {marked: "true"}, next: over}
      - {key: over, type: end}
"""
"""Ends by itself, completed, about 300 ms after its start."""

FAILING_PROCESS: dict[str, Any] = {
    "key": "failing",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "boom", "type": "task", "handler": "fail", "input": {"message": "'no luck'"}, "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}
"""Fails at once (the built-in `fail` handler, no retries)."""


STEPS_PROCESS = {
    "key": "steps",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "before", "type": "set-variable", "set": {"a": "1"}, "next": "nap"},
                {"key": "nap", "type": "delay", "durationMs": 1500, "next": "work"},
                {"key": "work", "type": "task", "handler": "sleep", "input": {"ms": "1500"}, "next": "after"},
                {"key": "after", "type": "set-variable", "set": {"b": "a + 1"}, "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}
"""A delay and a task, each long enough to kill a server in the middle of it."""


def definition(
    *elements: dict[str, Any], key: str = "p", threads: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A definition document: one thread `main` made of `elements`, or the `threads` given."""
    body: dict[str, Any] = {"key": key, "threads": threads or [{"key": "main", "elements": list(elements)}]}
    return body


WAIT = definition({"key": "w", "type": "wait-signal", "signal": "go"})
"""Waits for the signal `go`, and nothing else."""

KYC = definition(
    {"key": "check", "type": "task", "handler": "gate", "input": {"who": "customer"}, "output": "checked"},
    key="kyc",
)
"""A child process: one task of the `gate` handler (tests/actors/conftest.py)."""


def parent(**call: Any) -> dict[str, Any]:
    """A parent that calls `kyc` (`call`: more of the call-process element's fields), then sets `done`."""
    return definition(
        {
            "key": "run-kyc",
            "type": "call-process",
            "process": "kyc",
            "input": {"customer": "order.customer"},
            "output": "kyc",
            "next": "after",
            **call,
        },
        {"key": "after", "type": "set-variable", "set": {"done": "true"}},
        key="order",
    )
