"""Batching, per-connection header templates and the shard's timer heap, frame by frame."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from frames_helpers import OUR_IP, PEER_IP, PEER_MAC, PORT, Bench, Peer, data_of, flags
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP

from seashard.net.native.driver import Driver
from seashard.net.native.streams import NativeConnection
from seashard.tcp import Flags, Segment, TcpConfig
from seashard.wire.ethernet import ETH_P_IPV4, EthernetFrame
from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.tcp import TcpPacket
from seashard.wire.vnet import partial_checksum


def _two_segments_in_one_wakeup(batching: bool) -> list[TCP]:
    bench = Bench(TcpConfig(mss=1460))  # quick-ACK at the start: every segment ACKed at once
    peer, conn = bench.established()
    driver = Driver(bench.dev, bench.iface, bench.loop, batching=bench.layer if batching else None)  # type: ignore[arg-type]
    bench.dev.inject(bytes(peer.frame("PA", b"a" * 100)))
    bench.dev.inject(bytes(peer.frame("PA", b"b" * 100)))
    assert driver.pump() == 2
    assert conn.tcp.unread == 200
    return bench.take_tcp()


def test_a_batch_gets_one_ack_per_connection() -> None:
    out = _two_segments_in_one_wakeup(batching=True)
    assert [(flags(s), s.ack - out[0].ack) for s in out] == [("A", 0)]
    unbatched = _two_segments_in_one_wakeup(batching=False)
    assert [flags(s) for s in unbatched] == ["A", "A"]  # one each without the batch
    assert out[0].ack == unbatched[-1].ack  # the one ACK covers both


def test_data_made_sendable_by_a_batch_leaves_after_it() -> None:
    """An ACK that opens the window and the data behind it: one flush, data once."""
    bench = Bench(TcpConfig(mss=1460))
    peer, conn = bench.established()
    driver = Driver(bench.dev, bench.iface, bench.loop, batching=bench.layer)  # type: ignore[arg-type]
    conn.tcp.send(b"x" * 3000, bench.now())
    bench.layer.kick(conn)
    peer.see(bench.take_tcp())
    bench.dev.inject(bytes(peer.frame("A")))  # ACKs all of it
    bench.dev.inject(bytes(peer.frame("PA", b"q" * 10)))
    conn.tcp.send(b"y" * 500, bench.now())  # queued; the kick comes with the batch
    driver.pump()
    out = bench.take_tcp()
    assert [(flags(s), len(data_of(s))) for s in out] == [("PA", 500)]  # ACK rides on it


async def _echo(conn: NativeConnection) -> None:
    while buf := await conn.read():
        await conn.write(buf)


def _request_in_one_wakeup(
    bench: Bench, peer: Peer, conn: NativeConnection, app: Coroutine[Any, Any, None], n: int
) -> list[TCP]:
    """The application waits in ``app``; ``n`` segments of 1,000 bytes come in one wakeup."""
    bench.loop.spawn(app)
    driver = Driver(bench.dev, bench.iface, bench.loop, batching=bench.layer)  # type: ignore[arg-type]
    for i in range(n):
        bench.dev.inject(bytes(peer.frame("PA", bytes([65 + i]) * 1000)))
    assert driver.pump() == n
    bench.loop.pump()
    return bench.take_tcp()


def test_the_reply_carries_the_ack_of_the_request_it_answers() -> None:
    """Seastar's polled output: the batch's ACK waits for the reader it woke, and the
    reply the application writes in that step carries it; no bare ACK goes first."""
    bench = Bench(TcpConfig(mss=1460))  # quick-ACK: each segment alone is ACKed at once
    peer, conn = bench.established()
    out = _request_in_one_wakeup(bench, peer, conn, _echo(conn), 3)
    assert all(data_of(s) for s in out), [flags(s) for s in out]
    assert {s.ack for s in out} == {peer.nxt}
    assert b"".join(data_of(s) for s in out) == b"A" * 1000 + b"B" * 1000 + b"C" * 1000


def test_the_reply_advertises_the_window_its_read_opened() -> None:
    """A request that fills the receive buffer: the ACK is not a zero-window one sent
    before the application reads; the reply offers the space the read freed."""
    bench = Bench(TcpConfig(mss=1460, recv_buffer=4000))
    peer, conn = bench.established()
    out = _request_in_one_wakeup(bench, peer, conn, _echo(conn), 4)
    assert out and all(data_of(s) for s in out)
    assert out[0].ack == peer.nxt and out[0].window << conn.tcp.rcv_shift >= 2920


def test_a_reader_that_does_not_reply_still_acks_at_once() -> None:
    async def sink(conn: NativeConnection) -> None:
        while await conn.read():
            pass

    bench = Bench(TcpConfig(mss=1460))
    peer, conn = bench.established()
    out = _request_in_one_wakeup(bench, peer, conn, sink(conn), 2)  # (no timer runs)
    assert [(flags(s), s.ack) for s in out] == [("A", peer.nxt)]
    assert conn.tcp.unread == 0


def test_template_follows_the_neighbour_when_arp_changes(bench: Bench) -> None:
    peer, conn = bench.established()
    conn.tcp.send(b"1" * 10, bench.now())
    bench.layer.kick(conn)
    (first,) = bench.take_frames()
    assert first[1].dst == PEER_MAC
    moved = "02:00:00:00:00:99"
    bench.iface.arp.learn(PEER_IP, moved, bench.now())
    conn.tcp.send(b"2" * 10, bench.now())
    bench.layer.kick(conn)
    (second,) = bench.take_frames()
    assert second[1].dst == moved and second[1][TCP].load == b"2" * 10


def test_connections_to_one_peer_share_one_template(bench: Bench) -> None:
    """The header template is per remote address: idle connections hold none, and
    each connection's frames still carry its own ports."""
    peer_a, a = bench.established()
    peer_b, b = bench.established(bench.peer(sport=40001))
    assert not hasattr(a, "tx") and not hasattr(a, "__dict__")
    for conn, data in ((a, b"A" * 7), (b, b"B" * 9)):
        conn.tcp.send(data, bench.now())
        bench.layer.kick(conn)
    sent = [f[1][TCP] for f in bench.take_frames()]
    assert [(s.sport, s.dport, s.load) for s in sent] == [
        (PORT, peer_a.sport, b"A" * 7),
        (PORT, 40001, b"B" * 9),
    ]
    assert list(bench.layer._hops) == [PEER_IP]


def test_template_expired_entry_resolves_again() -> None:
    bench = Bench(TcpConfig(mss=1460), arp_options={"entry_ttl": 100.0})
    peer, conn = bench.established()
    bench.loop.advance(101.0)  # the entry expired: the segment waits for ARP
    bench.take_frames()
    conn.tcp.send(b"z" * 10, bench.now())
    bench.layer.kick(conn)
    (frame,) = [f for _, f in bench.take_frames()]
    assert frame.type == 0x0806  # an ARP request, the segment queued behind it


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(0, 0xFFFFFFFF),
    ack=st.integers(0, 0xFFFFFFFF),
    flag_bits=st.sampled_from([0x10, 0x18, 0x11, 0x19, 0x14, 0x12]),
    window=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=1460),
    ts=st.none() | st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    sack=st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)), max_size=3),
    csum=st.booleans(),
    parts=st.booleans(),
)
def test_template_frame_is_the_general_builders_frame(
    seq: int,
    ack: int,
    flag_bits: int,
    window: int,
    payload: bytes,
    ts: tuple[int, int] | None,
    sack: list[tuple[int, int]],
    csum: bool,
    parts: bool,
) -> None:
    """Byte for byte what TcpPacket + IPv4Packet + EthernetFrame build (the plain
    path), and with the "csum" offload the partial checksum in its place; sent whole,
    or (``parts``: a device with ``send_parts``) as headers and the payload itself."""
    bench = Bench(TcpConfig(mss=1460))
    try:
        peer, conn = bench.established()
        bench.iface.offloads = frozenset({"csum"}) if csum else frozenset()
        sent: list[tuple[bytes, int, bool]] = []
        bench.iface._device_transmit = lambda f, g=0, c=False: sent.append((bytes(f), g, c))
        tails: list[object] = []
        if parts:

            def send_parts(head: bytes, tail: bytes, g: int, c: bool) -> bool:
                tails.append(tail)
                sent.append((bytes(head) + bytes(tail), g, c))
                return True

            bench.iface._device_transmit_parts = send_parts
        ident = bench.iface._ident
        seg = Segment(seq, ack, Flags(flag_bits), window, payload, timestamps=ts)
        seg.sack_blocks = tuple(sack)
        bench.layer._transmit_conn(conn, seg, bench.now(), 1460)
        ((frame, gso, partial),) = sent
        assert gso == 0 and partial == csum
        tcp = TcpPacket(PORT, peer.sport, seq, ack, Flags(flag_bits), window, payload)
        tcp.timestamps, tcp.sack_blocks = ts, tuple(sack)
        data = bytearray(tcp.build(OUR_IP, PEER_IP))
        if csum:
            data[16:18] = partial_checksum(OUR_IP, PEER_IP, len(data)).to_bytes(2, "big")
        ip = IPv4Packet(OUR_IP, PEER_IP, IpProto.TCP, bytes(data), ident=ident)
        want = EthernetFrame(PEER_MAC, bench.iface.mac, ETH_P_IPV4, ip.build()).build()
        assert bytes(frame) == want
        # The payload goes to the device as it is, with no copy behind the headers,
        # wherever the device can take two parts and the kernel sums the checksum.
        assert tails == ([payload] if parts and csum and payload else [])
        assert all(t is payload for t in tails)
    finally:
        bench.close()


@pytest.mark.parametrize("n", [40])
def test_idle_connections_hold_no_timer(n: int) -> None:
    """Connections with nothing outstanding leave nothing armed: no loop timer, no
    entry in the shard's heap (while data was in flight, one loop timer for all)."""
    bench = Bench(TcpConfig(mss=1460))
    pairs = []
    for i in range(n):
        peer = bench.peer(sport=41000 + i)
        _, conn = bench.established(peer)
        conn.tcp.send(b"hi", bench.now())
        bench.layer.kick(conn)
        peer.see(bench.take_tcp())
        pairs.append((peer, conn))
    armed = [t for t in bench.loop._timers if not t.cancelled]
    assert len(armed) == 1 and bench.loop.next_deadline() == min(
        c.tcp.next_deadline() for _, c in pairs
    )
    for peer, _ in pairs:
        peer.send("A")  # everything ACKed: no RTO left
    assert all(c.tcp.next_deadline() is None for _, c in pairs)
    assert bench.loop.next_deadline() is None
    assert bench.layer.next_deadline() is None and bench.layer._timers == []


def test_a_later_deadline_leaves_the_loop_timer_to_fire_early_and_re_arm() -> None:
    """Each ACK restarts the RTO, later: the loop timer is not moved on every one of
    them; it fires at the old time, sends nothing, and is set for the new deadline."""
    bench = Bench(TcpConfig(mss=1460))
    try:
        peer, conn = bench.established()
        una = conn.tcp.snd_nxt
        for data in (b"one", b"two"):
            conn.tcp.send(data, bench.now())
            bench.layer.kick(conn)
            peer.see(bench.take_tcp())
            bench.advance(0.02)
        first = bench.loop.next_deadline()
        assert first is not None and first == bench.layer.next_deadline()
        peer.send("A", ack=una + 3)  # "one" ACKed, "two" still in flight: the RTO restarts
        later = bench.layer.next_deadline()
        assert later is not None and later > first
        assert bench.loop.next_deadline() == first  # not re-armed for the later deadline
        bench.loop.run_until(first)
        assert bench.take_tcp() == [] and conn.tcp.stats.retransmits == 0
        assert bench.loop.next_deadline() == later  # re-armed by the early firing
        bench.loop.run_until(later)
        (rto,) = bench.take_tcp()
        assert data_of(rto) == b"two" and conn.tcp.stats.retransmits == 1
    finally:
        bench.close()
