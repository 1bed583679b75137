"""The codec's decode on hostile blobs (issue 17): depth and size bombs are a CodecError (409), never a crash or
a huge allocation."""

from __future__ import annotations

import pytest

from procengine.errors import CodecError
from procengine.store.codec import decode


@pytest.mark.parametrize(
    "blob",
    [
        b"\x91" * 5000 + b"\x01",  # 5000 nested arrays: past msgpack's stack of 1024
        b"\x81\xa1a" * 3000 + b"\x01",  # 3000 nested maps
        b"\xdd\xff\xff\xff\xff",  # an array that says it has 4 billion items, in 5 bytes
        b"\xdf\xff\xff\xff\xff",  # a map that says the same
        b"\xdb\xff\xff\xff\xff" + b"x",  # a string of 4 GiB announced
        b"\xc6\xff\xff\xff\xff",  # bytes of 4 GiB announced
        b"\xc1",  # never used
        b"\x01\x02",  # extra data
    ],
)
def test_a_hostile_blob_is_a_codec_error(blob: bytes) -> None:
    with pytest.raises(CodecError):
        decode(blob)


def test_a_blob_at_msgpack_s_own_depth_still_decodes() -> None:
    assert decode(b"\x91" * 1000 + b"\x01") is not None
