"""packed_size: exactly what the codec writes, without writing it; it stops early for values over the limit."""

from __future__ import annotations

import random
from typing import Any

import pytest

from procengine.engine.sizes import MAX_DEPTH, bounded_size, packed_size
from procengine.errors import CodecError, TooManyNodes
from procengine.store.codec import encode

EDGES: list[Any] = [
    None, True, False, 0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63), 0.0, 1.5, -2.5e300,
    "", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "a" * 65535, "a" * 65536, "é" * 20, "日本" * 100, "🙂" * 40,
    b"", b"x" * 255, b"x" * 256, b"x" * 65535, b"x" * 65536, bytearray(b"ab"),
    [], [1] * 15, [1] * 16, [1] * 65535, [1] * 65536, (1, "two"), {}, {str(i): i for i in range(15)},
    {str(i): i for i in range(16)}, {1: 2, 3.5: None}, {"a": [{"b": None, "c": [1.0, "x"]}]},
]  # fmt: skip


@pytest.mark.parametrize("value", EDGES, ids=lambda v: repr(v)[:30])
def test_the_size_is_the_encoded_length(value: Any) -> None:
    assert packed_size(value, 10**9) == len(encode(value))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**63), 2**64 - 1) >> rng.randrange(64)
    if kind == 2:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if kind == 3:
        return "".join(rng.choice("aé日🙂") for _ in range(rng.randrange(300)))
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    if kind == 5:
        return -rng.randrange(2**40)
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(20))]
    if kind == 7:
        return {str(rng.random()): _random_value(rng, depth + 1) for _ in range(rng.randrange(20))}
    return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(5)))


def test_the_size_is_the_encoded_length_for_random_values() -> None:
    rng = random.Random(8)
    for _ in range(500):
        value = _random_value(rng)
        assert packed_size(value, 10**9) == len(encode(value)), value


def test_over_the_limit_is_none_and_at_the_limit_is_the_size() -> None:
    value = {"k": "v" * 100}
    size = len(encode(value))
    assert packed_size(value, size) == size
    assert packed_size(value, size - 1) is None


def test_a_huge_string_is_over_by_its_length_alone() -> None:
    huge = "x" * 50_000_000
    assert packed_size(huge, 2**21, max_nodes=1) is None  # one node: its length says enough


def test_the_walk_stops_at_the_limit_not_at_the_end() -> None:
    many = [0] * 10_000_000  # ten million nodes; the limit is passed after about a thousand
    assert packed_size(many, 1000, max_nodes=2000) is None


def test_a_node_budget_stops_the_walk() -> None:
    with pytest.raises(TooManyNodes):
        packed_size([0] * 100, 10**9, max_nodes=50)
    assert packed_size([0] * 100, 10**9, max_nodes=101) == len(encode([0] * 100))


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, object(), {1, 2}, "surrogate \ud800", [1, object()]])
def test_what_the_codec_cannot_store_is_a_codec_error_for_both(value: Any) -> None:
    with pytest.raises(CodecError):
        encode(value)
    with pytest.raises(CodecError):
        packed_size(value, 10**9)


def test_nesting_is_limited_as_msgpack_limits_it() -> None:
    deepest: Any = []
    for _ in range(MAX_DEPTH):
        deepest = [deepest]
    assert packed_size(deepest, 10**9) == len(encode(deepest))
    with pytest.raises(CodecError):
        encode([deepest])
    with pytest.raises(CodecError):
        packed_size([deepest], 10**9)


@pytest.mark.parametrize("value", [{"a": 1}, [0] * 100_000, {str(i): "v" * 10 for i in range(5_000)}])
def test_bounded_size_walks_small_values_and_encodes_big_ones_to_the_same_answer(value: Any) -> None:
    size = len(encode(value))
    assert bounded_size(value, size) == size
    assert bounded_size(value, size - 1) is None


@pytest.mark.parametrize("value", [v for v in EDGES if v is None or isinstance(v, bool | int | float | str)])
def test_bounded_size_of_a_scalar_is_its_encoded_length_without_the_walk(value: Any) -> None:
    """A set-variable's usual value (a scalar) is sized without packed_size's walk, to the same answer at and past
    the limit."""
    size = len(encode(value))
    assert bounded_size(value, size) == size
    assert bounded_size(value, size - 1) is None


def test_bounded_size_of_a_scalar_the_codec_cannot_store_is_a_codec_error() -> None:
    for value in (2**64, -(2**63) - 1, "\ud800"):
        with pytest.raises(CodecError):
            packed_size(value, 10**9)
        with pytest.raises(CodecError):
            bounded_size(value, 10**9)
