"""Random and scapy-fuzzed input: parsers return or raise MalformedError, nothing else."""

import random
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import fuzz

from seashard.wire import (
    ArpPacket,
    EthernetFrame,
    IcmpPacket,
    IPv4Packet,
    MalformedError,
    TcpFlags,
    TcpPacket,
)
from seashard.wire.tcp import MAX_OPTIONS_LEN, tcp_checksum

SRC, DST = "10.0.0.7", "10.0.0.2"

PARSERS: dict[str, Callable[[bytes], object]] = {
    "ethernet": EthernetFrame.parse,
    "arp": ArpPacket.parse,
    "ipv4": IPv4Packet.parse,
    "ipv4_nocheck": lambda b: IPv4Packet.parse(b, verify_checksum=False),
    "icmp": IcmpPacket.parse,
    "icmp_nocheck": lambda b: IcmpPacket.parse(b, verify_checksum=False),
    "tcp": lambda b: TcpPacket.parse(b, SRC, DST),
    "tcp_nocheck": lambda b: TcpPacket.parse(b, SRC, DST, verify=False),
}


def parse_all(data: bytes) -> None:
    for parse in PARSERS.values():
        try:
            parse(data)
        except MalformedError as exc:
            assert exc.reason and " " not in exc.reason


@settings(max_examples=3000, deadline=None, database=None)
@given(st.binary(max_size=120))
def test_random_bytes(data: bytes) -> None:
    parse_all(data)


# Mostly-valid headers with random bytes in them reach deeper into the parsers.
_TEMPLATES = [
    bytes(TCP(options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])),
    bytes(IP(src=SRC, dst=DST, options=b"\x01\x01\x01\x00") / ICMP()),
    bytes(ARP()),
]


@settings(max_examples=2000, deadline=None, database=None)
@given(st.sampled_from(_TEMPLATES), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 255))))
def test_mutated_headers(template: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(template)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    parse_all(bytes(data))
    if len(data) >= 20:  # also with a correct TCP checksum, so options get parsed
        data[16:18] = b"\x00\x00"
        data[16:18] = tcp_checksum(SRC, DST, bytes(data)).to_bytes(2, "big")
        parse_all(bytes(data))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Ether() / fuzz(IP(src=SRC, dst=DST) / TCP()),
        lambda: IP(src=SRC, dst=DST) / fuzz(TCP()),
        lambda: fuzz(IP()) / fuzz(ICMP()),
        lambda: fuzz(ICMP()),
        lambda: fuzz(ARP()),
        lambda: Ether(dst="ff:ff:ff:ff:ff:ff") / fuzz(ARP()),
    ],
)
def test_scapy_fuzz(make: Callable[[], object]) -> None:
    random.seed(1234)  # scapy's random fields draw from `random`
    for _ in range(700):
        raw = bytes(make())  # type: ignore[call-overload]
        for start in (0, 14, 20, 34):
            parse_all(raw[start:])


ip_addr = st.ip_addresses(v=4).map(str)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 0xFFFF)


def options_fit(seg: TcpPacket) -> bool:
    try:
        return len(seg.build_options()) <= MAX_OPTIONS_LEN
    except ValueError:
        return False


@settings(max_examples=500, deadline=None, database=None)
@given(
    st.builds(
        TcpPacket,
        src_port=u16,
        dst_port=u16,
        seq=u32,
        ack=u32,
        flags=st.integers(0, 255).map(TcpFlags),
        window=u16,
        payload=st.binary(max_size=64),
        urgent=u16,
        mss=st.none() | u16,
        wscale=st.none() | st.integers(0, 14),
        sack_permitted=st.booleans(),
        sack_blocks=st.lists(st.tuples(u32, u32), max_size=3).map(tuple),
        timestamps=st.none() | st.tuples(u32, u32),
    ),
    ip_addr,
    ip_addr,
)
def test_tcp_roundtrip(seg: TcpPacket, src: str, dst: str) -> None:
    assume(options_fit(seg))
    raw = seg.build(src, dst)
    back = TcpPacket.parse(raw, src, dst)
    back.checksum = 0
    assert back == seg
    assert TCP(raw).dport == seg.dst_port


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.builds(
        IPv4Packet,
        src=ip_addr,
        dst=ip_addr,
        proto=st.integers(0, 255),
        payload=st.binary(max_size=64),
        ttl=st.integers(0, 255),
        ident=u16,
        tos=st.integers(0, 255),
        dont_fragment=st.booleans(),
        more_fragments=st.booleans(),
        frag_offset=st.integers(0, 0x1FFF),
        options=st.binary(max_size=10).map(lambda b: b + bytes(-len(b) % 4)),
    )
)
def test_ipv4_roundtrip(pkt: IPv4Packet) -> None:
    raw = pkt.build()
    back = IPv4Packet.parse(raw)
    assert back.checksum == IP(raw).chksum
    back.checksum = 0
    assert back == pkt
