"""ARP and ICMP echo through the same Interface, and malformed TCP frames dropped and counted."""

from __future__ import annotations

import pytest
from frames_helpers import (
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    PEER_PORT,
    PORT,
    Bench,
    check_ip_frame,
    flags,
)
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from seashard.tcp.connection import State

NEW_IP, NEW_MAC = "10.0.0.9", "02:00:00:00:00:09"
KEY = (PEER_IP, PEER_PORT, PORT)


# ---------------------------------------------------------------- ARP / ICMP


def test_arp_who_has_our_ip_gets_a_reply(bench: Bench) -> None:
    bench.inject(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=NEW_MAC)
        / ARP(op=1, hwsrc=NEW_MAC, psrc=NEW_IP, pdst=OUR_IP)
    )
    frames = bench.take_frames()
    assert len(frames) == 1
    _, reply = frames[0]
    assert (reply.dst, reply.src, reply.type) == (NEW_MAC, OUR_MAC, 0x0806)
    arp = reply[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        2,
        OUR_MAC,
        OUR_IP,
        NEW_MAC,
        NEW_IP,
    )
    assert bench.iface.arp.lookup(NEW_IP, bench.now()) == NEW_MAC  # learned on the way


def test_arp_for_another_address_is_not_answered(bench: Bench) -> None:
    bench.inject(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=NEW_MAC)
        / ARP(op=1, hwsrc=NEW_MAC, psrc=NEW_IP, pdst="10.0.0.55")
    )
    assert bench.take_frames() == []


def test_icmp_echo_gets_a_reply(bench: Bench) -> None:
    data = bytes(range(56))
    bench.inject(
        Ether(dst=OUR_MAC, src=PEER_MAC)
        / IP(src=PEER_IP, dst=OUR_IP)
        / ICMP(type=8, id=0x1234, seq=7)
        / data
    )
    frames = bench.take_frames()
    assert len(frames) == 1
    _, reply = frames[0]
    check_ip_frame(reply)  # addresses and IPv4 + ICMP checksums
    icmp = reply[ICMP]
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (0, 0, 0x1234, 7)
    assert bytes(icmp.payload) == data
    assert bench.iface.counters["icmp_echo_replies"] == 1


def test_tcp_reply_waits_for_arp_resolution(bench: Bench) -> None:
    bench.listen()
    bench.iface.arp.forget(PEER_IP)
    peer = bench.peer()
    bench.inject(peer.frame("S", opts=peer.syn_options()))
    frames = [f for _, f in bench.take_frames()]
    assert len(frames) == 1 and ARP in frames[0]  # who-has the peer, broadcast
    assert frames[0].dst == "ff:ff:ff:ff:ff:ff" and frames[0][ARP].pdst == PEER_IP
    bench.inject(
        Ether(dst=OUR_MAC, src=PEER_MAC)
        / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=OUR_MAC, pdst=OUR_IP)
    )
    out = bench.take_tcp()  # the queued SYN-ACK leaves now
    assert [flags(s) for s in out] == ["SA"]


def test_ping_and_tcp_interleave_on_one_interface(bench: Bench) -> None:
    peer, conn = bench.established()
    for i in range(3):
        peer.send("PA", b"d" * 10)
        bench.inject(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP(seq=i))
        replies = [f for _, f in bench.take_frames()]
        assert [r[ICMP].seq for r in replies] == [i]
    bench.advance(0.04)
    assert conn.tcp.unread == 30


# ---------------------------------------------------------------- malformed


def tcp_frame(segment: Packet) -> Packet:
    return Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, proto=6) / segment


def with_options(opt_bytes: bytes, **kw: object) -> Packet:
    """A TCP header whose data offset covers ``opt_bytes`` (the checksum is right)."""
    assert len(opt_bytes) % 4 == 0
    seg = TCP(sport=PEER_PORT, dport=PORT, flags="S", seq=1, dataofs=5 + len(opt_bytes) // 4, **kw)
    return tcp_frame(seg / Raw(opt_bytes))


def bad_checksum() -> Packet:
    good = TCP(bytes(IP(src=PEER_IP, dst=OUR_IP) / TCP(sport=PEER_PORT, dport=PORT, flags="S")))
    return tcp_frame(TCP(sport=PEER_PORT, dport=PORT, flags="S", chksum=good.chksum ^ 0x5555))


MALFORMED: dict[str, tuple[Packet, str]] = {
    "bad checksum": (bad_checksum(), "tcp_bad_checksum"),
    "truncated header": (tcp_frame(Raw(b"\x9c\x40\x04\xd2" + b"\x00" * 8)), "tcp_truncated"),
    "empty segment": (tcp_frame(Raw(b"")), "tcp_truncated"),
    "data offset 4": (
        tcp_frame(TCP(sport=PEER_PORT, dport=PORT, dataofs=4)),
        "tcp_bad_header_length",
    ),
    "data offset 0": (
        tcp_frame(TCP(sport=PEER_PORT, dport=PORT, dataofs=0)),
        "tcp_bad_header_length",
    ),
    "data offset past the end": (
        tcp_frame(TCP(sport=PEER_PORT, dport=PORT, dataofs=15) / Raw(b"\x01" * 8)),
        "tcp_truncated",
    ),
    "mss length 3": (with_options(b"\x02\x03\x05\x01"), "tcp_bad_option"),
    "wscale length 4": (with_options(b"\x03\x04\x07\x00"), "tcp_bad_option"),
    "option length 0": (with_options(b"\x08\x00\x00\x00"), "tcp_bad_option"),
    "option length 1": (with_options(b"\x01\x01\x22\x01"), "tcp_bad_option"),
    "option past the header": (with_options(b"\x01\x02\x04\xb4\x08\x0a\x00\x00"), "tcp_bad_option"),
    "kind without length": (with_options(b"\x01\x01\x01\x02"), "tcp_bad_option"),
    "sack length 3": (with_options(b"\x05\x03\x00\x01"), "tcp_bad_option"),
    "timestamps length 6": (with_options(b"\x08\x06\x00\x00\x00\x01\x01\x01"), "tcp_bad_option"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_tcp_frame_is_dropped_and_counted(bench: Bench, name: str) -> None:
    frame, reason = MALFORMED[name]
    bench.listen()
    bench.inject(frame)
    assert bench.take_frames() == []  # no SYN-ACK, no RST
    assert dict(bench.iface.drops) == {reason: 1}
    assert bench.iface.counters["frames_dropped"] == 1
    assert bench.iface.counters["frames_accepted"] == 0
    assert not bench.layer.conns


def test_control_well_formed_options_are_accepted(bench: Bench) -> None:
    bench.listen()
    bench.inject(with_options(b"\x02\x04\x02\x18\x01\x03\x03\x02", window=1000))
    out = bench.take_tcp()
    assert [flags(s) for s in out] == ["SA"]
    assert not bench.iface.drops
    assert bench.layer.conns[KEY].tcp.mss == 536 and bench.layer.conns[KEY].tcp.snd_shift == 2


def test_malformed_frames_leave_an_established_connection_alone(bench: Bench) -> None:
    peer, conn = bench.established()
    before = (conn.tcp.rcv_nxt, conn.tcp.snd_una, conn.tcp.state)
    good = peer.frame("R", advance=False)  # would reset the connection if accepted
    broken = bytearray(bytes(good))
    broken[-1] ^= 0xFF  # urgent pointer: the checksum no longer matches
    bench.inject(bytes(broken))
    bench.inject(tcp_frame(Raw(bytes(good[TCP])[:12])))  # the same header, truncated
    assert bench.take_frames() == []
    assert dict(bench.iface.drops) == {"tcp_bad_checksum": 1, "tcp_truncated": 1}
    assert (conn.tcp.rcv_nxt, conn.tcp.snd_una, conn.tcp.state) == before
    assert conn.tcp.state is State.ESTABLISHED
    out = peer.send("PA", b"still fine")  # quick-ACKed: the start of the connection
    assert [s.ack for s in out] == [peer.nxt]
    assert conn.tcp.unread == 10
