"""What an execution actor's mailbox carries: requests (a command and a future for its reply), and wake-ups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from procengine.api.service import Caller
from procengine.errors import CodecError
from procengine.runtime.tracing import carrier

Verb = Literal[
    "pause",
    "resume",
    "cancel",
    "signal",
    "retry",
    "edit",
    "step",
    "run-now",
    "policy",
    "rewind",
    "breakpoints",
    "advance",
    "migrate",
]
VERBS: Final[tuple[Verb, ...]] = get_args(Verb)
STEP_ACTIONS: Final = ("retry", "skip", "complete", "fail", "move", "run-now", "policy")


@dataclass(frozen=True, slots=True)
class StepOrder:
    """A step control (`actors/steps.py`): what to do to which element, in which lane if it stands in several."""

    action: str
    """retry, skip, complete or fail (verb `step`), run-now (verb `run-now`) or policy (verb `policy`)."""
    element: str
    lane: str | None = None
    output: Any = None
    has_output: bool = False
    """An output was given (a skip without one stores none; `null` given is stored)."""
    error: str = ""
    error_type: str = ""
    policy: dict[str, Any] | None = None
    """A policy change: {retry?, timeoutMs?}, validated (`ElementPolicyRequest`)."""

    @property
    def phrase(self) -> str:
        """What it does to its element, for a refusal: `cannot <phrase> element 'x' ...`."""
        phrases = {"run-now": "run now", "policy": "change the policy of", "move": "move a lane before"}
        return phrases.get(self.action, self.action)

    def to_wire(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "element": self.element,
            "lane": self.lane,
            "output": self.output,
            "hasOutput": self.has_output,
            "error": self.error,
            "type": self.error_type,
            "policy": self.policy,
        }

    @classmethod
    def from_wire(cls, wire: Any) -> StepOrder | None:
        if not isinstance(wire, dict) or wire.get("action") not in STEP_ACTIONS:
            return None
        lane, policy = wire.get("lane"), wire.get("policy")
        return cls(
            action=str(wire["action"]),
            element=str(wire.get("element", "")),
            lane=lane if isinstance(lane, str) else None,
            output=wire.get("output"),
            has_output=wire.get("hasOutput") is True,
            error=str(wire.get("error", "")),
            error_type=str(wire.get("type", "")),
            policy=policy if isinstance(policy, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class Command:
    """A request for an execution's actor, as it is delivered here or forwarded to the owner."""

    verb: Verb
    caller: Caller
    reason: str | None = None
    signal: str = ""
    payload: Any = None
    signal_key: str | None = None
    """The Idempotency-Key of a signal: a signal with a key already delivered is not delivered again."""
    not_after_ms: int | None = None
    """Set on a forwarded command: its deadline by the Redis clock; its transition is written only before it."""
    patch: dict[str, Any] | None = None
    """A retry's or an edit's JSON merge patch (RFC 7396) of the execution's variables."""
    retry_key: str | None = None
    """The idempotencyKey of a retry: a retry with a key applied already answers as the first time."""
    step: StepOrder | None = None
    """A step control's order (verb `step`)."""
    checkpoint: int | None = None
    """A rewind's kept checkpoint (its `seq`)."""
    lane: str | None = None
    """A step's one lane (verb `advance`; None: every lane)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "tenant": self.caller.tenant,
            "by": self.caller.by,
            "requestId": self.caller.request_id,
            "bulk": self.caller.bulk,
            "traceparent": self.caller.traceparent,
            "tracestate": self.caller.tracestate,
            "reason": self.reason,
            "signal": self.signal,
            "payload": self.payload,
            "signalKey": self.signal_key,
            "patch": self.patch,
            "retryKey": self.retry_key,
            "step": None if self.step is None else self.step.to_wire(),
            "checkpoint": self.checkpoint,
            "lane": self.lane,
        }

    @classmethod
    def from_wire(cls, wire: Any, not_after_ms: int) -> Command:
        if not isinstance(wire, dict) or wire.get("verb") not in VERBS:
            raise CodecError("not a forwarded command")
        step = StepOrder.from_wire(wire.get("step"))
        if wire["verb"] in ("step", "run-now", "policy") and step is None:
            raise CodecError("a forwarded step control without its order")
        bulk = wire.get("bulk")
        caller = Caller(
            tenant=str(wire["tenant"]),
            by=str(wire["by"]),
            request_id=str(wire["requestId"]),
            bulk=bulk if isinstance(bulk, int) and not isinstance(bulk, bool) else None,
            **_trace(wire),
        )
        reason, key = wire.get("reason"), wire.get("signalKey")
        patch, retry_key = wire.get("patch"), wire.get("retryKey")
        checkpoint = wire.get("checkpoint")
        order = wire.get("payload")
        if wire["verb"] == "migrate" and not (isinstance(order, dict) and type(order.get("version")) is int):
            raise CodecError("a forwarded migrate without its version")
        if wire["verb"] == "rewind" and not (isinstance(checkpoint, int) and not isinstance(checkpoint, bool)):
            raise CodecError("a forwarded rewind without its checkpoint")
        return cls(
            verb=wire["verb"],
            caller=caller,
            reason=reason if isinstance(reason, str) else None,
            signal=str(wire.get("signal", "")),
            payload=wire.get("payload"),
            signal_key=key if isinstance(key, str) else None,
            not_after_ms=not_after_ms,
            patch=patch if isinstance(patch, dict) else None,
            retry_key=retry_key if isinstance(retry_key, str) else None,
            step=step,
            checkpoint=checkpoint if isinstance(checkpoint, int) and not isinstance(checkpoint, bool) else None,
            lane=wire.get("lane") if isinstance(wire.get("lane"), str) else None,
        )


@dataclass(frozen=True, slots=True)
class Request:
    command: Command
    reply: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class Wake:
    """From the actor's own thread runners: a thread ended, failed or crashed."""


@dataclass(frozen=True, slots=True)
class Drain:
    """From the node, shutting down: let running tasks finish within the grace, checkpoint, and stop (the
    execution keeps its status; another node adopts it)."""


Message = Request | Wake | Drain


def _trace(wire: dict[str, Any]) -> dict[str, str | None]:
    """A forwarded caller's trace context, checked again (the wire is another node's, or a hand-made message)."""
    parent, state = wire.get("traceparent"), wire.get("tracestate")
    found = carrier(parent if isinstance(parent, str) else None, state if isinstance(state, str) else None)
    return {} if found is None else {"traceparent": found["traceparent"], "tracestate": found.get("tracestate")}
