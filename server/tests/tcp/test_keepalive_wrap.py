"""Keepalive, and sequence numbers wrapping past 2**32."""

from __future__ import annotations

from seashard.tcp import Connection, State, TcpConfig, TcpError
from seashard.tcp.seq import seq_add

from .helpers import A, Peer, R, config, only, open_active, open_passive

TOP = 2**32 - 1


def test_keepalive_probes_then_abort():
    conn, peer = open_passive(
        cfg=config(keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3)
    )
    assert conn.next_deadline() == 10.0
    times = []
    while not conn.is_closed:
        now = conn.next_deadline()
        conn.on_timer(now)
        for s in conn.segments_out():
            if s.flags & R:
                assert now == 16.0
            else:
                assert s.flags == A and s.payload == b"" and s.seq == seq_add(conn.snd_una, -1)
                times.append(now)
    assert times == [10.0, 12.0, 14.0]
    assert conn.error is TcpError.TIMED_OUT and conn.stats.keepalives == 3


def test_keepalive_answered_keeps_connection():
    conn, peer = open_passive(cfg=config(keepalive_idle=10.0, keepalive_interval=2.0))
    conn.on_timer(10.0)
    probe = only(conn.segments_out())
    assert probe.seq == seq_add(conn.snd_una, -1)
    conn.on_segment(peer.ack(), 10.1)  # the peer answers with an ACK
    assert conn.next_deadline() == 20.1
    conn.on_segment(peer.data(b"x"), 15.0)  # traffic pushes the idle timer
    assert conn.next_deadline() is not None
    conn.on_timer(15.04)  # the delayed ACK
    conn.segments_out()
    assert conn.next_deadline() == 25.0


def test_keepalive_off_by_default():
    conn, _ = open_passive()
    assert conn.next_deadline() is None


def test_keepalive_on_the_peer_side_is_answered():
    """A keepalive probe from the peer (SEQ = RCV.NXT - 1) gets an ACK."""
    conn, peer = open_passive()
    conn.on_segment(peer.ack(seq=peer.nxt - 1, advance=False), 5.0)
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == peer.nxt


def _exchange_across_wrap(iss_a: int, iss_b: int) -> None:
    a = Connection.connect(iss_a, 0.0, TcpConfig(mss=1000))
    b = Connection.accept(only(a.segments_out()), iss_b, 0.0, TcpConfig(mss=1000))
    a.on_segment(only(b.segments_out()), 0.0)
    b.on_segment(only(a.segments_out()), 0.0)
    data_a = bytes(i % 256 for i in range(5000))
    data_b = bytes((i * 3) % 256 for i in range(5000))
    a.send(data_a, 0.1)
    b.send(data_b, 0.1)
    sa, sb = a.segments_out(), b.segments_out()
    # deliver in reverse order: reassembly across the wrap point
    for s in reversed(sa):
        b.on_segment(s, 0.2)
    for s in reversed(sb):
        a.on_segment(s, 0.2)
    assert a.recv() == data_b and b.recv() == data_a
    a.close(0.3)
    for _ in range(5):
        for s in a.segments_out():
            b.on_segment(s, 0.4)
        for s in b.segments_out():
            a.on_segment(s, 0.4)
        if b.state is State.CLOSE_WAIT:
            b.close(0.4)
    assert a.state is State.TIME_WAIT and b.state is State.CLOSED
    assert a.all_sent_acked
    assert a.snd_una == (iss_a + 1 + 5000 + 1) & TOP


def test_sequence_wrap_both_directions():
    _exchange_across_wrap(TOP - 2500, TOP - 10)


def test_sequence_wrap_isn_at_top():
    _exchange_across_wrap(TOP, 2**31 - 1)


def test_wrap_with_hand_played_peer():
    peer = Peer(isn=TOP - 50)
    conn, peer = open_active(peer=peer, iss=TOP - 3)
    assert conn.snd_una == TOP - 2
    conn.send(b"z" * 100, 0.1)
    seg = only(peer.absorb(conn.segments_out()))
    assert seg.seq == TOP - 2
    conn.on_segment(peer.data(b"w" * 100), 0.2)  # peer data crosses the wrap too
    assert conn.recv() == b"w" * 100
    assert conn.rcv_nxt == 50 and conn.snd_una == 97 and conn.all_sent_acked
