"""The control channel: operators PUBLISH pause/resume/cancel commands on `<prefix>:control`.

    PUBLISH procengine:control '{"executionID": 123, "command": "pause", "reason": "maintenance"}'

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
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgpack
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, TimeoutError

from procengine.actors.messages import Command
from procengine.cancellation import check_cancelled
from procengine.errors import InvalidTransition, NotFound, ProcEngineError, StateCorrupted, Unavailable
from procengine.metrics import Metrics
from procengine.service import Caller
from procengine.store.executions import ExecutionStore

log = logging.getLogger(__name__)

ControlVerb = Literal["pause", "resume", "cancel"]
COMMANDS: tuple[ControlVerb, ...] = ("pause", "resume", "cancel")


class MalformedControl(ValueError):
    """A control message that cannot be acted on; the text says why."""


@dataclass(frozen=True, slots=True)
class ControlMessage:
    execution_id: int
    command: ControlVerb
    reason: str | None


def parse(data: bytes | str) -> ControlMessage:
    """A control message from JSON text or msgpack; MalformedControl if it is neither or not in shape."""
    raw = data.encode() if isinstance(data, str) else data
    body: Any
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        try:
            body = msgpack.unpackb(raw, raw=False)
        except Exception:
            raise MalformedControl("neither JSON nor msgpack") from None
    if not isinstance(body, dict):
        raise MalformedControl("not an object")
    execution_id = body.get("executionID")
    if isinstance(execution_id, bool) or not isinstance(execution_id, int) or execution_id < 1:
        raise MalformedControl("executionID must be a positive integer")
    command = body.get("command")
    if command not in COMMANDS:
        raise MalformedControl(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise MalformedControl("reason must be a string")
    unknown = set(body) - {"executionID", "command", "reason"}
    if unknown:
        raise MalformedControl(f"unknown fields {sorted(unknown)}")
    return ControlMessage(execution_id, command, reason)


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
        channel: str,
        engine: ControlTarget,
        store: ExecutionStore,
        metrics: Metrics,
        nodes_channel: str | None = None,
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.nodes_channel = nodes_channel
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.subscribed = asyncio.Event()
        """Set while a subscription is live (tests and readiness wait on it)."""
        self.dropped = asyncio.Event()
        """Set once a subscription was lost and had to be made again."""

    async def run_forever(self, max_backoff_s: float = 5.0) -> None:
        backoff = 0.05
        while True:
            check_cancelled()
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (ConnectionError, TimeoutError, OSError) as exc:
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

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*(c for c in (self.channel, self.nodes_channel) if c is not None))
            self.subscribed.set()
            log.info("control channel %s: subscribed", self.channel)
            while True:
                check_cancelled()
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    await pubsub.ping()  # a dead connection shows up here, not as silence
                    continue
                if message.get("type") != "message":
                    continue
                if self.nodes_channel is not None and _text(message.get("channel")) == self.nodes_channel:
                    self.engine.node_left(_text(message["data"]))
                else:
                    await self.handle(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def handle(self, data: bytes | str) -> None:
        """Act on one message; never raises for anything the message says."""
        try:
            message = parse(data)
        except MalformedControl as exc:
            self._reject("malformed", "control message dropped: %s: %r", exc, data[:200])
            return
        fields = await self.store.fields(message.execution_id)
        if not fields:
            self._reject("unknown-execution", "control message dropped: execution %s not found", message.execution_id)
            return
        caller = Caller(tenant=fields.get("tenant", ""), by="control", request_id=f"control-{uuid.uuid4().hex[:12]}")
        try:
            await self.engine.control_command(message.execution_id, Command(message.command, caller, message.reason))
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
