"""The one codec: records to msgpack bytes and back.

Blobs hold plain msgpack of the documented shapes, so any msgpack tool reads them; the format version
is kept beside them (`format` in the state hash) and checked on load. Every decode failure becomes
CodecError, whatever msgpack raised.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from procengine.errors import CodecError

FORMAT_VERSION = 1


class _Packers(threading.local):
    """One packer of each kind per thread, made once: `msgpack.packb` makes a new Packer (and its buffer) per call,
    which was 40% of an encode of a record (issue 21: 6.5 encodes per step)."""

    def __init__(self) -> None:
        self.stored = msgpack.Packer(use_bin_type=True, datetime=False)
        self.lua = msgpack.Packer(use_bin_type=False)


_packers = _Packers()


def encode(value: Any) -> bytes:
    packer = _packers.stored
    try:
        packed: bytes = packer.pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        packer.reset()  # a failed pack may leave part of the value in the buffer
        raise CodecError(f"value cannot be stored: {exc}") from None
    return packed


def encode_for_lua(value: Any) -> bytes:
    """msgpack for a Lua script's `cmsgpack.unpack`: Redis's cmsgpack predates the bin type, so bytes go as
    raw strings (they arrive in Lua as the same bytes)."""
    packer = _packers.lua
    try:
        packed: bytes = packer.pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        packer.reset()
        raise CodecError(f"value cannot be stored: {exc}") from None
    return packed


def decode(blob: bytes | None) -> Any:
    if blob is None or blob == b"":
        raise CodecError("blob is missing")
    try:
        return msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise CodecError(f"blob is not valid msgpack: {type(exc).__name__}") from None


def check_format(value: bytes | str | None) -> None:
    if value is None:
        return
    try:
        version = int(value)
    except ValueError:
        raise CodecError(f"unknown format {value!r}") from None
    if version != FORMAT_VERSION:
        raise CodecError(f"format {version} is not readable by this version (reads {FORMAT_VERSION})")
