"""The control channels: operators PUBLISH pause/resume/cancel commands (and the repairs retry and edit) on
`<prefix>:control`, for any tenant's execution, or on `<prefix>:control:{<tenant>}`, for that tenant's executions
only.

    PUBLISH procengine:control '{"executionID": 123, "command": "pause", "reason": "maintenance"}'
    PUBLISH procengine:control:{acme} '{"executionID": 123, "command": "pause"}'
    PUBLISH procengine:control '{"executionID": 123, "command": "retry", "variables": {"amount": 100}}'
    PUBLISH procengine:control '{"executionID": 123, "command": "edit", "variables": {"note": null}}'

`variables` is the JSON merge patch of the REST calls (required for `edit`, optional for `retry`), and `retry`
takes an `idempotencyKey` as its REST call does.

A message on a tenant's channel about another tenant's execution is dropped (counted as
`rejected/other-tenant`) and writes nothing, as a REST request with that tenant's token gets 404: which tenant
a publisher may steer is then Redis's ACL on channels (`&procengine:control:{acme}`), docs/security.md.

A message acts exactly as the REST call would (same transition rules, the outcome in the execution's log,
`by: control`). JSON text and msgpack payloads are both accepted. A malformed or unknown message is logged
with the reason and dropped, never fatal.

Pub/sub is at most once: a message published while no node listens is lost. The subscription is therefore
supervised (redis-py's asyncio pub/sub does not reliably reconnect by itself): on any connection error it is
closed and made again with backoff. The REST API is the durable path; see docs/operations.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgpack
from redis.asyncio import Redis

from procengine.actors.messages import Command
from procengine.api.service import Caller
from procengine.errors import (
    Fenced,
    InvalidTransition,
    MalformedControl,
    NotFound,
    ProcEngineError,
    StateCorrupted,
    StoreDenied,
    StoreFailed,
    StoreUnreachable,
    Unavailable,
)
from procengine.runtime.cancellation import check_cancelled
from procengine.runtime.metrics import Metrics
from procengine.store.executions import ExecutionStore
from procengine.store.failures import store_errors, translated
from procengine.store.keys import Keys

log = logging.getLogger(__name__)

LISTENING_PROBE_S = 0.5
"""How long `listening` waits for its probe to come back when PUBLISH counts no receiver (on a Redis Cluster the
count is of one node's clients only)."""

ControlVerb = Literal["pause", "resume", "cancel", "retry", "edit"]
COMMANDS: tuple[ControlVerb, ...] = ("pause", "resume", "cancel", "retry", "edit")
_FIELDS = {"executionID", "command", "reason", "variables", "idempotencyKey"}


@dataclass(frozen=True, slots=True)
class ControlMessage:
    execution_id: int
    command: ControlVerb
    reason: str | None
    variables: dict[str, Any] | None = None
    """A retry's or an edit's merge patch of the variables (RFC 7396)."""
    idempotency_key: str | None = None
    """A retry's idempotencyKey."""

    def to_command(self, caller: Caller) -> Command:
        return Command(self.command, caller, self.reason, patch=self.variables, retry_key=self.idempotency_key)


MAX_MESSAGE_BYTES = 64 * 1024
"""A control message is about 60 bytes; the reason is free text. Anything longer is refused before decoding."""
MAX_DEPTH = 8
"""A control message is one flat object (depth 1). Deeper nesting is refused before decoding: Python's json
decoder recurses (a 100,000-deep array raised RecursionError and once killed the listener, issue 17)."""


def parse(data: bytes | str) -> ControlMessage:
    """A control message from JSON text or msgpack; MalformedControl if it is neither or not in shape, whatever the
    bytes (too long, too deep, not UTF-8, random): nothing else escapes."""
    raw = data.encode(errors="surrogateescape") if isinstance(data, str) else data
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedControl(f"{len(raw)} bytes, more than the {MAX_MESSAGE_BYTES} a control message may have")
    try:
        body = _decode(raw)
    except MalformedControl:
        raise
    except Exception:  # a decoder's failure on hostile bytes, whatever its class: this message only
        raise MalformedControl("neither JSON nor msgpack") from None
    if not isinstance(body, dict):
        raise MalformedControl("not an object")
    execution_id = body.get("executionID")
    if isinstance(execution_id, bool) or not isinstance(execution_id, int) or execution_id < 1:
        raise MalformedControl("executionID must be a positive integer")
    command = body.get("command")
    if command not in COMMANDS:
        shown = repr(command[:40]) if isinstance(command, str) else type(command).__name__  # no repr of a deep value
        raise MalformedControl(f"command must be one of {', '.join(COMMANDS)}, got {shown}")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise MalformedControl("reason must be a string")
    unknown = set(body) - _FIELDS
    if unknown:
        raise MalformedControl(f"unknown fields {sorted(str(key)[:40] for key in unknown)}")
    variables, key = body.get("variables"), body.get("idempotencyKey")
    if command not in ("retry", "edit") and (variables is not None or key is not None):
        raise MalformedControl(f"{command} takes no variables nor idempotencyKey")
    if variables is not None and not isinstance(variables, dict):
        raise MalformedControl("variables must be an object: a merge patch (null removes a name)")
    if variables is not None:
        wrong = _not_json(variables)
        if wrong is not None:
            raise MalformedControl(f"variables must be what JSON can say: {wrong}")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise MalformedControl(f"reason must be at most {MAX_REASON_CHARS} characters")
    if command == "edit" and variables is None:
        raise MalformedControl("edit needs variables: a merge patch")
    if key is not None and (command != "retry" or not isinstance(key, str) or not 0 < len(key) <= 200):
        raise MalformedControl("idempotencyKey must be a string of 1 to 200 characters, and only on retry")
    return ControlMessage(execution_id, command, reason, variables, key)


MAX_REASON_CHARS = 1000
"""As a REST request's reason."""
_JSON_SCALARS = (str, int, float, bool, type(None))


def _not_json(value: Any) -> str | None:
    """What in a decoded value JSON could not have said (a msgpack message can hold bytes, extension types and
    keys that are not strings), or None; a walk that does not recurse (the depth was bounded before)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return "an object key that is not a string"
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return f"the number {item}"
        elif not isinstance(item, _JSON_SCALARS):
            return f"a value of type {type(item).__name__}"
    return None


def _decode(raw: bytes) -> Any:
    """JSON if the bytes are UTF-8 JSON text, else msgpack. Depth is bounded before either decoder recurses:
    JSON by `json_depth` (a scan that does not recurse), msgpack by its unpacker's own fixed stack (C, iterative,
    StackError past 1024) and the lengths below, then `MAX_DEPTH` on what it built (a walk that does not recurse)."""
    try:
        text = raw.decode("utf-8")  # a msgpack map starts with 0x80-0x8f or 0xde/0xdf: never UTF-8 text
    except UnicodeDecodeError:
        text = None
    if text is not None:
        if json_depth(text) > MAX_DEPTH:
            raise MalformedControl(f"nested deeper than {MAX_DEPTH}")
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # not JSON: msgpack, below
    limit = len(raw)
    body = msgpack.unpackb(
        raw,
        raw=False,
        max_str_len=limit,
        max_bin_len=limit,
        max_array_len=limit,
        max_map_len=limit,
        max_ext_len=limit,
    )
    if _object_depth(body) > MAX_DEPTH:
        raise MalformedControl(f"nested deeper than {MAX_DEPTH}")
    return body


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON `text` (strings skipped), without recursing and without decoding;
    stops counting once past MAX_DEPTH."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _object_depth(body: Any) -> int:
    """How deeply lists and dicts nest in a decoded value, without recursing; stops past MAX_DEPTH."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (list, tuple, dict)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            children = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return deepest


class ControlTarget(Protocol):
    async def control_command(self, execution_id: int, command: Command) -> Any:
        """Act on a command here, never forwarding it: OwnedElsewhere (Unavailable) if another live node owns the
        execution, which hears the same message and acts on it."""
        ...

    def node_left(self, node_id: str) -> None:
        """Another node said on the nodes channel that it has left (its executions are up for adoption)."""
        ...


class ControlListener:
    """The subscription of a node: operators' commands on the control channel, and nodes leaving on the nodes
    channel (one connection for both)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        engine: ControlTarget,
        store: ExecutionStore,
        metrics: Metrics,
        *,
        on_subscribed: Callable[[], None] | None = None,
        listening_channel: str | None = None,
    ) -> None:
        """`listening_channel`: this node's own channel, subscribed last, that `listening` publishes on."""
        self.redis = redis
        self.listening_channel = listening_channel
        self.on_subscribed = on_subscribed
        """Called at every (re)subscription: the connection to Redis was made (again)."""
        self.keys = keys
        self.channel = keys.control
        self.nodes_channel = keys.nodes
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.subscribed = asyncio.Event()
        """Set while a subscription is live (tests and readiness wait on it)."""
        self.dropped = asyncio.Event()
        """Set once a subscription was lost and had to be made again."""
        self._probes: dict[str, asyncio.Future[None]] = {}
        """Readiness probes published and not yet heard (`listening`), by their text."""

    async def listening(self) -> bool:
        """Whether the subscription hears now, on the Redis that answers now: a PUBLISH on this node's listening
        channel reaches it. `subscribed` alone is not enough: after a Redis restart it stays set until the dead
        connection shows (up to a second of silence, then the backoff), and a control message published in that
        window reached no one and was lost."""
        if not self.subscribed.is_set():
            return False
        if self.listening_channel is None:
            return True
        probe = f"listening?{uuid.uuid4().hex}"
        heard = asyncio.get_running_loop().create_future()
        self._probes[probe] = heard
        try:
            with store_errors():
                receivers = await self.redis.publish(self.listening_channel, probe)
            if int(receivers) >= 1:
                return True
            # A Redis Cluster forwards a PUBLISH to every node but counts only the receivers on the node that took
            # it, which need not be the one this subscription is on: 0 there says nothing. The probe's arrival does.
            try:
                async with asyncio.timeout(LISTENING_PROBE_S):
                    await heard
            except TimeoutError:
                return False
            return True
        finally:
            self._probes.pop(probe, None)

    async def run_forever(self, max_backoff_s: float = 5.0) -> None:
        backoff = 0.05
        while True:
            check_cancelled()
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (StoreUnreachable, OSError) as exc:
                check_cancelled()
                log.warning("control channel %s lost (%s); subscribing again in %.2fs", self.channel, exc, backoff)
            except Exception:
                check_cancelled()
                log.exception("control channel %s failed; subscribing again in %.2fs", self.channel, backoff)
            else:
                backoff = 0.05
                continue
            finally:
                self.subscribed.clear()
            self.dropped.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)

    @translated
    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel, self.nodes_channel)
            try:
                with store_errors():
                    await pubsub.psubscribe(self.keys.tenant_controls)
            except StoreDenied:  # an ACL user from before the tenants' channels: the rest still works
                log.warning(
                    "tenants' control channels off: Redis's ACL denies PSUBSCRIBE %s (docs/security.md has the rule)",
                    self.keys.tenant_controls,
                )
            if self.listening_channel is not None:  # last: once it hears, so do the channels before it
                await pubsub.subscribe(self.listening_channel)
            self.subscribed.set()
            if self.on_subscribed is not None:
                self.on_subscribed()
            log.info("control channel %s: subscribed", self.channel)
            while True:
                check_cancelled()
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    await pubsub.ping()  # a dead connection shows up here, not as silence
                    continue
                try:
                    await self._dispatch(message)
                except StoreUnreachable:
                    raise  # the connection, not the message: subscribe again
                except Exception:  # one message, whatever it did, never costs the subscription (contract §5)
                    check_cancelled()
                    self.metrics.control.labels("rejected", "error").inc()
                    log.exception("control message dropped: handling it failed: %r", message.get("data", b"")[:200])
        finally:
            await pubsub.aclose()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message.get("type"), _text(message.get("channel"))
        if kind == "pmessage":
            tenant = self.keys.tenant_of_control(channel)
            if tenant is not None:
                await self.handle(message["data"], tenant=tenant)
        elif kind == "message" and channel == self.listening_channel:
            heard = self._probes.get(_text(message["data"]))  # a readiness probe: it reached this connection
            if heard is not None and not heard.done():
                heard.set_result(None)
        elif kind == "message" and channel == self.nodes_channel:
            self.engine.node_left(_text(message["data"])[:200])
        elif kind == "message":
            await self.handle(message["data"])

    async def handle(self, data: bytes | str, *, tenant: str | None = None) -> None:
        """Act on one message (`tenant`: it came on that tenant's channel); never raises for anything it says."""
        try:
            message = parse(data)
        except MalformedControl as exc:
            self._reject("malformed", "control message dropped: %s: %r", exc, data[:200])
            return
        fields = await self.store.fields(message.execution_id)
        if not fields:
            self._reject("unknown-execution", "control message dropped: execution %s not found", message.execution_id)
            return
        if tenant is not None and fields.get("tenant") != tenant:
            self._reject(
                "other-tenant",
                "control message dropped: execution %s is not of tenant %r, whose channel it came on",
                message.execution_id,
                tenant,
            )
            return
        caller = Caller(tenant=fields.get("tenant", ""), by="control", request_id=f"control-{uuid.uuid4().hex[:12]}")
        try:
            await self.engine.control_command(message.execution_id, message.to_command(caller))
        except StoreFailed:
            raise  # Redis, not the message: the listener decides (subscribe again, or drop the message)
        except Fenced as exc:  # an Unavailable, but not another node's to act on: failed here, as before
            self._reject("failed", "control %s of %s failed: %s", message.command, message.execution_id, exc.message)
            return
        except Unavailable as exc:  # another live node owns it and acts on the same message
            log.debug("control %s of %s left to its owner: %s", message.command, message.execution_id, exc.message)
            return
        except (InvalidTransition, StateCorrupted, NotFound) as exc:
            # refused: the engine has written a `refused` entry in the execution's log
            self.metrics.control.labels("accepted", "refused").inc()
            log.info(
                "control %s of %s refused: %s",
                message.command,
                message.execution_id,
                exc.message,
                extra={"executionID": message.execution_id},
            )
            return
        except ProcEngineError as exc:
            self._reject("failed", "control %s of %s failed: %s", message.command, message.execution_id, exc.message)
            return
        self.metrics.control.labels("accepted", "done").inc()
        log.info(
            "control %s of %s done", message.command, message.execution_id, extra={"executionID": message.execution_id}
        )

    def _reject(self, reason: str, text: str, *args: Any) -> None:
        self.metrics.control.labels("rejected", reason).inc()
        log.warning(text, *args)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
