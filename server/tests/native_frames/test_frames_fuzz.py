"""Thousands of random and mutated TCP segments (valid IPv4 header, garbage TCP) through
``Interface.receive`` with a listener and an established connection behind it: no
exception escapes, every frame is counted (accepted, or dropped with a ``tcp_`` reason),
a dropped frame gets no answer, no RST is answered with a RST, and everything we send
carries valid checksums."""

from __future__ import annotations

import socket
import struct
from functools import cache

from frames_helpers import (
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_ISN,
    PEER_MAC,
    PEER_PORT,
    PORT,
    Bench,
    Peer,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

OUR_ISS = 0xFFFFFF00  # near the wrap, to exercise modular arithmetic too
_ETH = bytes.fromhex(OUR_MAC.replace(":", "") + PEER_MAC.replace(":", "") + "0800")
_PEER = socket.inet_aton(PEER_IP)
_OUR = socket.inet_aton(OUR_IP)


def csum(data: bytes, start: int = 0) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_pseudo(src: bytes, dst: bytes, length: int) -> int:
    return sum(struct.unpack("!HHHH", src + dst)) + 6 + length


def with_checksum(segment: bytes) -> bytes:
    """``segment`` with a correct TCP checksum (when it is long enough to hold one)."""
    if len(segment) < 18:
        return segment
    seg = bytearray(segment)
    seg[16:18] = b"\x00\x00"
    seg[16:18] = csum(bytes(seg), tcp_pseudo(_PEER, _OUR, len(seg))).to_bytes(2, "big")
    return bytes(seg)


def frame(segment: bytes) -> bytes:
    """Ethernet + a valid IPv4 header (peer -> us, protocol TCP) + ``segment``."""
    hdr = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0x4000, 64, 6, 0, _PEER, _OUR)
    )
    hdr[10:12] = csum(bytes(hdr)).to_bytes(2, "big")
    return _ETH + bytes(hdr) + segment


def check_sent(sent: bytes) -> None:
    """Our frame: Ethernet to the peer, a valid IPv4 header, a valid TCP checksum."""
    assert sent[:6] == bytes.fromhex(PEER_MAC.replace(":", ""))
    if sent[12:14] != b"\x08\x00":
        return
    ip = sent[14:34]
    assert csum(ip) == 0
    total = struct.unpack("!H", ip[2:4])[0]
    segment = sent[34 : 14 + total]
    if ip[9] == 6:
        assert csum(segment, tcp_pseudo(ip[12:16], ip[16:20], len(segment))) == 0


@cache
def handshake_frames() -> tuple[bytes, bytes]:
    """The peer's SYN and ACK for a bench whose ISS is OUR_ISS (built once, with scapy)."""
    bench = Bench(iss=OUR_ISS)
    bench.listen()
    peer = Peer(bench)
    syn = bytes(peer.frame("S", opts=peer.syn_options()))
    bench.inject(syn)
    peer.see(bench.take_tcp())
    ack = bytes(peer.frame("A"))
    bench.inject(ack)
    assert bench.layer.live(), "handshake failed"
    bench.close()
    return syn, ack


def fresh_bench() -> Bench:
    bench = Bench(iss=OUR_ISS)
    bench.listen()
    for f in handshake_frames():
        bench.inject(f)
    bench.dev.take_sent()
    bench.sent_at.clear()
    return bench


def push(bench: Bench, segment: bytes) -> None:
    """Inject one segment and check the invariants for it."""
    c = bench.iface.counters
    accepted, dropped = c["frames_accepted"], c["frames_dropped"]
    drops_before = dict(bench.iface.drops)
    bench.iface.receive(frame(segment), bench.now())
    c = bench.iface.counters  # as of now
    bench.loop.pump()
    out = bench.dev.take_sent()
    bench.sent_at.clear()
    for sent in out:
        check_sent(sent)
    if c["frames_dropped"] > dropped:
        assert c["frames_accepted"] == accepted and c["frames_dropped"] == dropped + 1
        new = {k for k, v in bench.iface.drops.items() if v > drops_before.get(k, 0)}
        assert len(new) == 1 and next(iter(new)).startswith("tcp_"), new
        assert out == []
        event(f"dropped {next(iter(new))}")
    else:
        assert c["frames_accepted"] == accepted + 1
        event(f"accepted, {min(len(out), 2)} frames sent")
        if len(segment) >= 14 and segment[13] & 0x04:  # a RST is never answered with a RST
            assert not any(s[12:14] == b"\x08\x00" and s[14 + 20 + 13] & 0x04 for s in out)


# -------------------------------------------------------------------- strategies

u32 = st.integers(0, 2**32 - 1)
near = st.integers(-70_000, 70_000)


@st.composite
def segments(draw: st.DrawFn) -> bytes:
    """A TCP header built field by field: ports and numbers often right, the rest anything."""
    sport = draw(st.sampled_from([PEER_PORT, PEER_PORT, 40001, draw(st.integers(0, 65535))]))
    dport = draw(st.sampled_from([PORT, PORT, 9999, draw(st.integers(0, 65535))]))
    rcv = (PEER_ISN + 1 + draw(near)) & 0xFFFFFFFF
    snd = (OUR_ISS + 1 + draw(near)) & 0xFFFFFFFF
    seq = draw(st.one_of(st.just(PEER_ISN + 1), st.just(rcv), u32))
    ack = draw(st.one_of(st.just((OUR_ISS + 1) & 0xFFFFFFFF), st.just(snd), u32))
    flag_byte = draw(
        st.one_of(
            st.sampled_from([0x02, 0x10, 0x18, 0x11, 0x04, 0x14, 0x12, 0x01]), st.integers(0, 255)
        )
    )
    options = draw(
        st.sampled_from(
            [b"", b"", b"\x02\x04\x05\xb4", b"\x01\x03\x03\x07", b"\x04\x02\x01\x01", b"\x00" * 4]
        )
    )
    if not draw(st.integers(0, 3)):
        options = draw(st.binary(max_size=44))
    natural = min(5 + (len(options) + 3) // 4, 15)
    offset = natural if draw(st.integers(0, 4)) else draw(st.integers(0, 15))
    options += b"\x00" * (-len(options) % 4)
    payload = draw(st.binary(max_size=64))
    window = draw(st.one_of(st.just(65535), st.just(0), st.integers(0, 65535)))
    header = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq,
        ack,
        offset << 4,
        flag_byte,
        window,
        0,
        draw(st.integers(0, 65535)),
    )
    segment = header + options + payload
    if draw(st.integers(0, 9)) == 0:  # now and then a mutation of the finished segment
        pos = draw(st.integers(0, len(segment) - 1))
        segment = segment[:pos] + bytes([draw(st.integers(0, 255))]) + segment[pos + 1 :]
    if draw(st.integers(0, 3)):  # mostly with a valid checksum, to get past it
        segment = with_checksum(segment)
    return segment


_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(_SETTINGS, max_examples=1500)
@given(st.lists(segments(), min_size=1, max_size=4), st.floats(0, 120))
def test_structured_garbage_segments(segs: list[bytes], later: float) -> None:
    bench = fresh_bench()
    try:
        for seg in segs:
            push(bench, seg)
        bench.loop.advance(later)  # let whatever timers they armed run
        event(f"connections left: {len(bench.layer.conns)}")
        for sent in bench.dev.take_sent():
            check_sent(sent)
        c = bench.iface.counters
        assert c["frames_received"] == len(segs) + 2
        assert c["frames_accepted"] + c["frames_dropped"] == c["frames_received"]
        assert sum(bench.iface.drops.values()) == c["frames_dropped"]
    finally:
        bench.close()


@settings(_SETTINGS, max_examples=1500)
@given(st.binary(max_size=100), st.booleans())
def test_random_bytes_as_tcp(segment: bytes, fix: bool) -> None:
    bench = fresh_bench()
    try:
        push(bench, with_checksum(segment) if fix else segment)
        assert bench.iface.counters["frames_received"] == 3
    finally:
        bench.close()
