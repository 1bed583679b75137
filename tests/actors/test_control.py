"""The control channel: PUBLISH <prefix>:control acts like the REST call; bad messages never stop it."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest
from redis.asyncio import Redis

from procengine.errors import MalformedControl
from procengine.node.control import parse
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.keys import Keys
from procengine.tasks import builtin_handlers
from tests.support.nodes import CALLER, EngineFactory, events, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import WAIT, definition
from tests.support.redis_servers import RedisServerFactory


@pytest.mark.parametrize(
    "payload",
    [
        b'{"executionID": 5, "command": "pause"}',
        msgpack.packb({"executionID": 5, "command": "pause"}),
        '{"executionID": 5, "command": "pause", "reason": null}',
    ],
)
def test_json_text_and_msgpack_both_parse(payload: bytes | str) -> None:
    message = parse(payload)
    assert (message.execution_id, message.command, message.reason) == (5, "pause", None)


def test_the_repairs_carry_their_patch_and_key() -> None:
    retry = parse(b'{"executionID": 5, "command": "retry", "variables": {"a": null}, "idempotencyKey": "k1"}')
    assert (retry.command, retry.variables, retry.idempotency_key) == ("retry", {"a": None}, "k1")
    edit = parse(msgpack.packb({"executionID": 5, "command": "edit", "variables": {"a": 1}, "reason": "typo"}))
    assert (edit.command, edit.variables, edit.reason) == ("edit", {"a": 1}, "typo")


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"executionID": 5, "command": "pause", "variables": {}}', "pause takes no variables"),
        (b'{"executionID": 5, "command": "edit"}', "edit needs variables"),
        (b'{"executionID": 5, "command": "edit", "variables": [1]}', "variables must be an object"),
        (b'{"executionID": 5, "command": "edit", "variables": {}, "idempotencyKey": "k"}', "only on retry"),
        (b'{"executionID": 5, "command": "retry", "idempotencyKey": ""}', "1 to 200 characters"),
        (b'{"executionID": 5, "command": "retry", "idempotencyKey": 7}', "1 to 200 characters"),
    ],
)
def test_malformed_repairs_say_why(payload: bytes, why: str) -> None:
    with pytest.raises(MalformedControl, match=why):
        parse(payload)


FAILS_UNLESS_OK = definition(
    {"key": "check", "type": "if-condition", "condition": "ok", "then": "done", "else": "declined"},
    {"key": "declined", "type": "fail", "message": "'not ok'"},
    {"key": "done", "type": "end"},
)  # without `ok`, `check` fails (ExpressionError)


async def test_publish_retry_and_edit_act_like_rest(engine: Node, redis: Redis) -> None:
    """A failed execution retried over pub/sub with a patch that fixes it; a paused one's variables edited."""
    failed = await start(engine, FAILS_UNLESS_OK, {"other": 1})
    assert await wait_status(engine, failed, "failed") == "failed"
    await published(redis, engine, {"executionID": failed, "command": "edit", "variables": {"ok": True}})
    refused = await wait_event(engine, failed, "refused")  # edit applies to a paused execution only
    assert (refused["by"], refused["command"], refused["from"]) == ("control", "edit", "failed")

    retry = {"executionID": failed, "command": "retry", "variables": {"ok": True}, "reason": "fixed"}
    await published(redis, engine, retry)
    retried = await wait_event(engine, failed, "retried")
    assert (retried["by"], retried["reason"], retried["variables"]) == (
        "control",
        "fixed",
        {"before": {}, "after": {"ok": True}},
    )
    assert await wait_status(engine, failed, "completed") == "completed"

    paused = await start(engine, WAIT, {"n": 1})
    await wait_element(engine, paused, "w")
    await published(redis, engine, {"executionID": paused, "command": "pause"})
    await wait_event(engine, paused, "paused")
    await published(redis, engine, {"executionID": paused, "command": "edit", "variables": {"n": 2, "m": "x"}})
    changed = await wait_event(engine, paused, "variables-changed")
    assert (changed["by"], changed["variables"]) == ("control", {"before": {"n": 1}, "after": {"n": 2, "m": "x"}})
    state = await engine.state(CALLER, paused)
    assert state.memory is not None and state.memory["variables"] == {"n": 2, "m": "x"}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xc1\xc1", "neither JSON nor msgpack"),
        (b"[1, 2]", "not an object"),
        (b'{"executionID": "5", "command": "pause"}', "positive integer"),
        (b'{"executionID": true, "command": "pause"}', "positive integer"),
        (b'{"executionID": 0, "command": "pause"}', "positive integer"),
        (b'{"executionID": 5, "command": "explode"}', "command must be one of"),
        (b'{"executionID": 5, "command": "pause", "reason": 7}', "reason must be a string"),
        (b'{"executionID": 5, "command": "pause", "extra": 1}', "unknown fields"),
    ],
)
def test_malformed_messages_say_why(payload: bytes, why: str) -> None:
    with pytest.raises(MalformedControl, match=why):
        parse(payload)


async def published(redis: Redis, engine: Node, body: object) -> None:
    """Publish once the engine listens (PUBLISH answers how many subscribers got it)."""
    data = body if isinstance(body, bytes) else json.dumps(body)
    await asyncio.wait_for(engine.control.subscribed.wait(), 5)
    assert await redis.publish(engine.keys.control, data) == 1


async def wait_event(engine: Node, execution_id: int, event: str) -> dict[str, object]:
    async def first() -> dict[str, object] | None:
        return next((e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == event), None)

    detail = await poll(first, lambda found: found is not None, within=5)
    assert detail is not None
    return detail


async def test_publish_pause_resume_cancel_act_like_rest(engine: Node, redis: Redis) -> None:
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "w")

    await published(redis, engine, {"executionID": execution_id, "command": "pause", "reason": "maintenance"})
    detail = await wait_event(engine, execution_id, "paused")
    assert (detail["by"], detail["reason"], detail["from"], detail["to"]) == (
        "control",
        "maintenance",
        "running",
        "paused",
    )
    assert (await engine.status(CALLER, execution_id)).status == "paused"

    await published(redis, engine, msgpack.packb({"executionID": execution_id, "command": "resume"}))
    await wait_event(engine, execution_id, "resumed")
    await published(redis, engine, {"executionID": execution_id, "command": "cancel"})
    assert await wait_status(engine, execution_id, "cancelled") == "cancelled"


async def test_bad_messages_are_dropped_and_the_next_good_one_works(engine: Node, redis: Redis) -> None:
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "w")

    for bad in (b"garbage", b'{"executionID": 99999, "command": "pause"}', b'{"executionID": 1, "command": "x"}'):
        await published(redis, engine, bad)
    await published(redis, engine, {"executionID": execution_id, "command": "resume"})  # refused: it runs
    await published(redis, engine, {"executionID": execution_id, "command": "pause"})

    await wait_event(engine, execution_id, "paused")
    refused = await wait_event(engine, execution_id, "refused")
    assert (refused["by"], refused["command"], refused["from"]) == ("control", "resume", "running")
    text = engine.metrics_text()[0].decode()
    assert 'procengine_control_messages_total{outcome="rejected",reason="malformed"} 2.0' in text
    assert 'procengine_control_messages_total{outcome="rejected",reason="unknown-execution"} 1.0' in text
    assert 'procengine_control_messages_total{outcome="accepted",reason="done"} 1.0' in text


async def test_a_tenants_channel_steers_that_tenants_executions_and_no_other(engine: Node, redis: Redis) -> None:
    """`<prefix>:control:{<tenant>}`: what Redis's ACL can grant one tenant's operators. A message about another
    tenant's execution is dropped without a trace in that execution (as REST answers 404)."""
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "w")
    await asyncio.wait_for(engine.control.subscribed.wait(), 5)
    cancel = json.dumps({"executionID": execution_id, "command": "cancel"})
    assert await redis.publish(engine.keys.tenant_control("acme"), cancel) == 1
    pause = json.dumps({"executionID": execution_id, "command": "pause"})
    assert await redis.publish(engine.keys.tenant_control("default"), pause) == 1

    await wait_event(engine, execution_id, "paused")  # handled in order: the cancel was dropped before
    assert (await engine.status(CALLER, execution_id)).status == "paused"
    assert [event for event, _ in await events(engine, execution_id)].count("refused") == 0
    text = engine.metrics_text()[0].decode()
    assert 'procengine_control_messages_total{outcome="rejected",reason="other-tenant"} 1.0' in text


@pytest.mark.parametrize(
    ("channel", "tenant"),
    [("p:control:{acme}", "acme"), ("p:control:{a:b}", "a:b"), ("p:control", None), ("p:control:{}", None)],
)
def test_the_tenant_of_a_control_channel(channel: str, tenant: str | None) -> None:
    assert Keys("p").tenant_of_control(channel) == tenant


@pytest.mark.slow
async def test_control_still_works_after_redis_restarts_under_the_engine(
    redis_server_factory: RedisServerFactory, settings: Settings
) -> None:
    server = redis_server_factory()
    configured = settings.model_copy(update={"redis_url": server.url, "redis_timeout_s": 0.5})
    redis = connect(server.url, timeout_s=configured.redis_timeout_s, retries=configured.redis_retries)
    await redis.config_set("appendfsync", "always")  # the kill below must not lose the execution's writes
    try:
        async with Node(redis, configured, builtin_handlers()) as engine:
            execution_id = await start(engine, WAIT)
            await wait_element(engine, execution_id, "w")
            await asyncio.wait_for(engine.control.subscribed.wait(), 5)

            server.kill()  # longer than redis-py's own retries: the supervisor must subscribe again
            await asyncio.wait_for(engine.control.dropped.wait(), 10)
            await asyncio.to_thread(server.restart)

            pause = json.dumps({"executionID": execution_id, "command": "pause"})
            async with asyncio.timeout(20):
                while True:  # pub/sub is at most once: publish until the resubscribed engine receives it
                    if await redis.publish(engine.keys.control, pause) == 1:
                        break
                    await asyncio.sleep(0.05)
            assert await wait_status(engine, execution_id, "paused", within=20) == "paused"
            detail = await wait_event(engine, execution_id, "paused")
            assert detail["by"] == "control"
    finally:
        await redis.aclose()


async def test_with_two_nodes_the_owner_acts_and_the_other_stays_out(make_engine: EngineFactory, redis: Redis) -> None:
    first, second = await make_engine(), await make_engine()
    await asyncio.gather(first.control.subscribed.wait(), second.control.subscribed.wait())
    execution_id = await start(first, WAIT)
    await wait_element(first, execution_id, "w")

    assert await redis.publish(first.keys.control, json.dumps({"executionID": execution_id, "command": "pause"})) == 2
    await wait_event(first, execution_id, "paused")

    # one transition, by the owner; the node that does not own it neither forwards nor refuses
    assert [e for e, _ in await events(first, execution_id)].count("paused") == 1
    assert "refused" not in [e for e, _ in await events(first, execution_id)]
    assert (await first.store.fields(execution_id))["owner"] == first.node_id


POISON = [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-json"),
    pytest.param(
        b'{"executionID": 1, "command": "pause", "reason": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-field"
    ),
    pytest.param(b"\x91" * 100_000 + b"\xc0", id="deep-msgpack"),
    pytest.param(b"\xdd\xff\xff\xff\xff", id="msgpack-huge-array-header"),
    pytest.param(b'{"executionID": 1, "command": "pause", "reason": "' + b"x" * 1_000_000 + b'"}', id="huge"),
    pytest.param(b'{"executionID": 1, "command": "pa\xffuse"}', id="invalid-utf8"),
    pytest.param(bytes(range(256)) * 8, id="random-bytes"),
]


@pytest.mark.parametrize("poison", POISON)
def test_poison_is_refused_as_malformed_not_raised(poison: bytes) -> None:
    with pytest.raises(MalformedControl):
        parse(poison)


async def test_poison_on_any_channel_leaves_the_node_listening(engine: Node, redis: Redis) -> None:
    """Issue 17 item 3: one message must not deafen a node. Every poison is published on a tenant's channel and on
    the global one, then a legitimate pause, which must take effect without the subscription being made again."""
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "w")
    await asyncio.wait_for(engine.control.subscribed.wait(), 5)
    for param in POISON:
        (poison,) = param.values
        assert await redis.publish(engine.keys.tenant_control("default"), poison) == 1
        assert await redis.publish(engine.keys.control, poison) == 1
    assert await redis.publish(engine.keys.control, json.dumps({"executionID": execution_id, "command": "pause"})) == 1

    assert await wait_status(engine, execution_id, "paused") == "paused"
    assert not engine.control.dropped.is_set()  # the subscription was never lost
    text = engine.metrics_text()[0].decode()
    assert f'procengine_control_messages_total{{outcome="rejected",reason="malformed"}} {2.0 * len(POISON)}' in text


async def test_a_message_whose_handling_fails_is_dropped_and_the_subscription_kept(
    engine: Node, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "w")
    real_fields = engine.control.store.fields
    calls = 0

    async def fails_once(execution_id: int) -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RecursionError("as a bug in handling would")
        return await real_fields(execution_id)

    monkeypatch.setattr(engine.control.store, "fields", fails_once)
    pause = json.dumps({"executionID": execution_id, "command": "pause"})
    await published(redis, engine, pause.encode())  # this one fails inside the handling
    await published(redis, engine, pause.encode())

    assert await wait_status(engine, execution_id, "paused") == "paused"
    assert not engine.control.dropped.is_set()
    text = engine.metrics_text()[0].decode()
    assert 'procengine_control_messages_total{outcome="rejected",reason="error"} 1.0' in text
