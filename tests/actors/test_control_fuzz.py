"""Fuzzing the control channel (issue 17, item 3): whatever bytes are published, `parse` answers a message or
MalformedControl, and a live node keeps listening: the next good message is acted on, the subscription never made
again. Bounded in `make test`; `FUZZ_LONG=1` (`make fuzz`) runs many more examples."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Final

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from procengine.errors import MalformedControl
from procengine.node.control import parse
from procengine.node.node import Node
from tests.support.nodes import start, wait_element, wait_status
from tests.support.processes import WAIT

pytestmark = pytest.mark.fuzz

LONG: Final = os.environ.get("FUZZ_LONG") == "1"
FUZZ: Final = settings(
    max_examples=500 if LONG else 40,
    deadline=None,
    database=None,
    derandomize=not LONG,  # `make test` replays the same examples; `make fuzz` draws fresh ones
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """Arrays and objects nested up to 200,000 deep, bare or in a control message's field, some left unclosed."""
    depth = draw(st.integers(1, 200_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")]))
    closed = draw(st.booleans())
    inner = opener * depth + "1" + (closer * depth if closed else "")
    if draw(st.booleans()):
        inner = '{"executionID": 1, "command": "pause", "reason": ' + inner + "}"
    return inner.encode()


@st.composite
def deep_msgpack(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 200_000))
    header = draw(st.sampled_from([b"\x91", b"\x81\xa1a", b"\xdc\x00\x01"]))
    return header * depth + b"\xc0"


MESSAGES = (
    deep_json()
    | deep_msgpack()
    | st.binary(max_size=2048)
    | JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | JSON_VALUES.map(lambda value: msgpack.packb(value))
    | st.builds(
        lambda fields: json.dumps(fields).encode(),
        st.fixed_dictionaries({"executionID": JSON_VALUES, "command": JSON_VALUES}, optional={"reason": JSON_VALUES}),
    )
)


@FUZZ
@given(message=MESSAGES)
def test_parse_answers_a_message_or_malformed_whatever_the_bytes(message: bytes) -> None:
    with contextlib.suppress(MalformedControl):
        parse(message)


@FUZZ
@given(batch=st.lists(MESSAGES, min_size=1, max_size=4))
async def test_a_node_hears_the_next_message_whatever_was_published_before(
    engine: Node, redis: Redis, batch: list[bytes]
) -> None:
    """Each example: the batch on a tenant's channel and on the global one, then a pause, which must take effect on
    the same subscription."""
    execution_id = await start(engine, WAIT)
    await wait_element(engine, execution_id, "w")
    await asyncio.wait_for(engine.control.subscribed.wait(), 5)
    for message in batch:
        assert await redis.publish(engine.keys.tenant_control("default"), message) == 1
        assert await redis.publish(engine.keys.control, message) == 1
    assert await redis.publish(engine.keys.control, json.dumps({"executionID": execution_id, "command": "pause"})) == 1
    assert await wait_status(engine, execution_id, "paused") == "paused"
    assert not engine.control.dropped.is_set()
