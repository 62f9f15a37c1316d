"""The Interface's direct TCP path (``Interface.tcp_segment``) against its general one.

The direct path decides nothing of its own: a frame it does not take falls to the
general path, which judges it from scratch.  So for any frame, an Interface with
the direct path and one without must count the same (frames, bytes, accepted,
dropped and why) and hand TCP the same (source, segment bytes).
"""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, TCP, IPOption_NOP
from scapy.layers.l2 import ARP, Ether

from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.wire import IPv4Packet
from seashard.wire.tcp import parse_segment

OUR_IP, OUR_MAC = "10.0.0.2", "02:00:00:00:00:02"
PEER_IP, PEER_MAC = "10.0.0.7", "02:00:00:00:00:07"
GW_IP = "10.0.0.1"

Seen = list[tuple[str, bytes, float]]


def _pair() -> tuple[Interface, Seen, Interface, Seen]:
    """(direct, what its TCP saw, general, what its TCP saw): identical but for the path."""
    direct_seen: Seen = []
    general_seen: Seen = []

    def tcp(seen: Seen, src: str, data: bytes, now: float) -> None:
        parse_segment(data, src, OUR_IP)  # MalformedError: counted as tcp_<reason>
        seen.append((src, bytes(data), now))

    def general_handler(ip: IPv4Packet, data: bytes, now: float) -> None:
        tcp(general_seen, ip.src, data, now)

    def unused(ip: IPv4Packet, data: bytes, now: float) -> None:
        raise AssertionError("the general path must call tcp_segment when it is set")

    cfg = InterfaceConfig(OUR_IP, gateway=GW_IP, mac=OUR_MAC)
    direct = Interface(cfg, lambda frame, *a: True, tcp_handler=unused)
    direct.tcp_segment = lambda src, data, now: tcp(direct_seen, src, data, now)
    general = Interface(cfg, lambda frame, *a: True, tcp_handler=general_handler)
    return direct, direct_seen, general, general_seen


def _feed(frames: list[bytes]) -> tuple[Interface, Seen, Interface, Seen]:
    direct, dseen, general, gseen = _pair()
    for i, f in enumerate(frames):
        for iface in (direct, general):
            iface.receive(f, float(i), csum_valid=bool(i & 1))
            assert iface.rx_csum_valid is bool(i & 1)
    return direct, dseen, general, gseen


def _assert_same(direct: Interface, dseen: Seen, general: Interface, gseen: Seen) -> None:
    assert direct.counters == general.counters
    assert direct.drops == general.drops
    assert dseen == gseen


def _tcp(**ip: object) -> bytes:
    fields = {"src": PEER_IP, "dst": OUR_IP, **ip}
    return bytes(
        Ether(dst=OUR_MAC, src=PEER_MAC) / IP(**fields) / TCP(sport=4000, dport=80) / b"data"
    )


VALID = _tcp()

# One of each way a frame can leave the direct path (or fail in TCP).
CASES = [
    VALID,
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / TCP()),
    bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / TCP()),
    bytes(Ether(dst="02:00:00:00:00:99", src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / TCP()),
    bytes(Ether(dst="01:00:5e:00:00:01", src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / TCP()),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / ARP(psrc=PEER_IP, pdst=OUR_IP)),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP()),
    _tcp(options=[IPOption_NOP()] * 4),  # IHL 6: the general path takes it
    _tcp(flags="MF"),
    _tcp(frag=3),
    _tcp(flags="DF"),
    _tcp(ttl=0),
    _tcp(src="127.0.0.1"),
    _tcp(src="0.1.2.3"),
    _tcp(src="224.0.0.9"),
    _tcp(src="10.0.0.255"),  # the subnet broadcast
    _tcp(src=OUR_IP),
    _tcp(src="255.255.255.255"),
    _tcp(dst="10.0.0.3"),
    _tcp(dst="10.0.0.255"),
    _tcp(proto=17),
    _tcp(chksum=0x1234),
    _tcp(len=19),
    _tcp(len=30),  # a TCP header cut short
    _tcp(len=2000),  # beyond the frame
    VALID + b"\x00" * 6,  # Ethernet padding
    VALID[:-1],  # IP total length beyond the frame
    VALID[:33],
    VALID[:20],
    VALID[:13],
    b"",
    VALID[:-4] + b"dat!",  # a bad TCP checksum
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / TCP(dataofs=15) / b"x"),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / TCP(dataofs=2)),
    bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src="8.8.8.8", dst=OUR_IP) / TCP() / b"x"),
]


def test_each_kind_of_frame_counts_the_same_on_both_paths() -> None:
    direct, dseen, general, gseen = _feed(CASES)
    _assert_same(direct, dseen, general, gseen)
    # The cases cover both outcomes of the direct path and most drop reasons.
    assert len(dseen) >= 4
    assert {"tcp_bad_checksum", "tcp_truncated", "fragment", "ttl_zero", "bad_source"} <= set(
        direct.drops
    )


def test_each_frame_alone_counts_the_same_on_both_paths() -> None:
    for frame in CASES:
        _assert_same(*_feed([frame]))


def test_randomly_damaged_frames_count_the_same_on_both_paths() -> None:
    rng = random.Random(1111)
    frames = []
    for _ in range(4000):
        f = bytearray(rng.choice(CASES[:2] + CASES[7:12] + CASES[-3:]))
        for _ in range(rng.randrange(1, 4)):
            if not f:
                break
            pos = rng.randrange(min(len(f), 60))  # the headers, mostly
            f[pos] = rng.randrange(256) if rng.random() < 0.7 else f[pos] ^ (1 << rng.randrange(8))
        if rng.random() < 0.1:
            f = f[: rng.randrange(len(f) + 1)]
        frames.append(bytes(f))
    _assert_same(*_feed(frames))


def test_the_general_path_gives_tcp_segment_what_it_refuses_no_handler_without() -> None:
    direct, dseen, general, gseen = _pair()
    general.tcp_handler = None
    general.receive(VALID, 0.0)
    assert general.drops == {"no_tcp_handler": 1}
    direct.tcp_handler = None  # the direct path's handler is enough
    direct.receive(_tcp(options=[IPOption_NOP()] * 4), 0.0)  # via the general path
    assert direct.drops == {} and len(dseen) == 1
