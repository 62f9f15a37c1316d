import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.utils import checksum as scapy_checksum

from seashard.wire.checksum import (
    internet_checksum,
    ones_complement_sum,
    pseudo_header_sum,
    verify,
)


def reference_checksum(data: bytes) -> int:
    """RFC 1071 section 4.1, word by word."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x00", b"\xff\xff", b"\xff", b"\x01\x02\x03", b"\xff" * 64, bytes(9000)],
)
def test_edge_cases_match_reference(data: bytes) -> None:
    assert internet_checksum(data) == reference_checksum(data)


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
    assert ones_complement_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2


@settings(database=None)
@given(st.binary(max_size=3000))
def test_matches_reference_and_scapy(data: bytes) -> None:
    assert internet_checksum(data) == reference_checksum(data)
    assert internet_checksum(data) == scapy_checksum(data)


@settings(database=None)
@given(st.binary(min_size=2, max_size=600).map(lambda b: b if len(b) % 2 == 0 else b + b"\x07"))
def test_inserting_the_checksum_verifies(data: bytes) -> None:
    buf = bytearray(b"\x00\x00" + data)
    buf[0:2] = internet_checksum(buf).to_bytes(2, "big")
    assert verify(buf)
    buf[-1] ^= 0x01
    assert not verify(buf)


@settings(database=None)
@given(st.binary(max_size=100), st.binary(max_size=100))
def test_sums_chain(a: bytes, b: bytes) -> None:
    if len(a) % 2:
        a += b"\x00"
    assert internet_checksum(b, ones_complement_sum(a)) == reference_checksum(a + b)


def test_pseudo_header_sum_matches_bytes() -> None:
    rng = random.Random(7)
    for _ in range(200):
        src = bytes(rng.randrange(256) for _ in range(4))
        dst = bytes(rng.randrange(256) for _ in range(4))
        proto, length = rng.randrange(256), rng.randrange(65536)
        pseudo = src + dst + struct.pack("!BBH", 0, proto, length)
        expected = ones_complement_sum(pseudo)
        assert pseudo_header_sum(src, dst, proto, length) % 0xFFFF == expected % 0xFFFF
    assert pseudo_header_sum("0.0.0.0", "0.0.0.0", 0, 0) == 0
    assert pseudo_header_sum("10.0.0.1", "10.0.0.2", 6, 20) == ones_complement_sum(
        bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 20])
    )
