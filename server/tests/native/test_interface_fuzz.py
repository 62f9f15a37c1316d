"""Thousands of malformed frames through the Interface: no exception, every one counted."""

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from native_helpers import GW_IP, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import fuzz

from seashard.net.native.devices import MemoryDevice
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.wire import IPv4Packet, TcpPacket


def make_interface() -> tuple[Interface, MemoryDevice]:
    dev = MemoryDevice()

    def tcp_handler(ip: IPv4Packet, segment: bytes, now: float) -> None:
        TcpPacket.parse(segment, ip.src, ip.dst)  # what the TCP glue does first

    iface = Interface(
        InterfaceConfig(OUR_IP, gateway=GW_IP, mac=OUR_MAC), dev.send, tcp_handler=tcp_handler
    )
    return iface, dev


def assert_all_counted(iface: Interface, n: int) -> None:
    c = iface.counters
    assert c["frames_received"] == n
    assert c["frames_accepted"] + c["frames_dropped"] == n
    assert sum(iface.drops.values()) == c["frames_dropped"]


HEADS = [
    b"",
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC, type=0x0800)),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC, type=0x0806)),
    bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC, type=0x0806)),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, proto=6)),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, proto=1)),
]


@settings(max_examples=3000, deadline=None, database=None)
@given(st.sampled_from(HEADS), st.binary(max_size=80))
def test_random_tails(head: bytes, tail: bytes) -> None:
    iface, _ = make_interface()
    iface.receive(head + tail, 0.0)
    assert_all_counted(iface, 1)


VALID_TCP_FRAME = bytes(
    Ether(dst=OUR_MAC, src=PEER_MAC)
    / IP(src=PEER_IP, dst=OUR_IP)
    / TCP(sport=1, dport=2, options=[("MSS", 1460), ("WScale", 7)])
    / b"data"
)


@settings(max_examples=1000, deadline=None, database=None)
@given(st.binary(min_size=40, max_size=40), st.lists(st.integers(0, 95), max_size=6))
def test_mutated_valid_frames(noise: bytes, positions: list[int]) -> None:
    base = bytearray(VALID_TCP_FRAME)
    for i, pos in enumerate(positions):
        if pos < len(base):
            base[pos] = noise[i]
    iface, _ = make_interface()
    iface.receive(bytes(base), 0.0)
    assert_all_counted(iface, 1)


def _ip(**fields: object) -> IP:
    """An IP layer whose version and addresses survive fuzz()."""
    return IP(version=4, src=PEER_IP, dst=OUR_IP, **fields)


_ARP_FORMAT = {"hwtype": 1, "ptype": 0x0800, "hwlen": 6, "plen": 4}
ETH = Ether(dst=OUR_MAC, src=PEER_MAC)

FUZZERS: list[Callable[[], object]] = [
    lambda: ETH / fuzz(_ip() / TCP()),
    lambda: ETH / fuzz(_ip(flags=0, frag=0, ttl=64, proto=6) / TCP()),
    lambda: ETH / _ip() / fuzz(TCP()),
    lambda: ETH / fuzz(_ip(flags=0, frag=0, ttl=64, proto=1) / ICMP()),
    lambda: ETH / _ip() / fuzz(ICMP()),
    lambda: ETH / fuzz(_ip() / UDP()),
    lambda: ETH / fuzz(IP(dst=OUR_IP)),
    lambda: Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / fuzz(ARP(pdst=OUR_IP, **_ARP_FORMAT)),
    lambda: ETH / fuzz(ARP(**_ARP_FORMAT)),
    lambda: ETH / fuzz(ARP()),
    lambda: fuzz(Ether(dst=OUR_MAC, src=PEER_MAC)) / fuzz(IP()),
]


def test_scapy_fuzzed_frames() -> None:
    random.seed(20240611)  # scapy's random fields draw from `random`
    iface, dev = make_interface()
    n = 0
    for make in FUZZERS:
        for _ in range(300):
            iface.receive(bytes(make()), float(n) / 100)  # type: ignore[call-overload]
            n += 1
            iface.poll(float(n) / 100)
    assert_all_counted(iface, n)
    # The fuzzers reach past the outer layers, not just into the first check.
    assert iface.counters["frames_accepted"] > 0
    assert len(iface.drops) >= 8, iface.drops
