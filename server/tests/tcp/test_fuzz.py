"""Hostile input: random segments thrown at a connection in various states
never raise and never break the connection's invariants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from seashard.tcp import Flags, Segment, State
from seashard.tcp.seq import seq_add, seq_diff, seq_le

from .helpers import Peer, config, open_active, open_passive

segment_st = st.builds(
    lambda dseq, dack, flags, window, n: (dseq, dack, flags, window, n),
    st.one_of(st.integers(-70_000, 70_000), st.integers(0, 2**32 - 1)),
    st.one_of(st.integers(-70_000, 70_000), st.integers(0, 2**32 - 1)),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 3000),
)


def _check(conn) -> None:
    assert conn.state in State
    if conn.is_closed:
        return
    assert seq_le(conn.snd_una, conn.snd_nxt) and seq_le(conn.snd_nxt, conn.snd_max)
    assert conn.unread <= conn.config.recv_buffer
    assert 0 <= conn.rcv_wnd <= conn.config.recv_buffer + 0xFFFF
    d = conn.next_deadline()
    assert d is None or d >= 0
    for s in conn.segments_out():
        assert 0 <= s.seq < 2**32 and 0 <= s.ack < 2**32 and 0 <= s.window <= 0xFFFF
        assert len(s.payload) <= conn.mss


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["passive", "active", "closing", "close_wait"]),
    st.lists(segment_st, max_size=30),
    st.booleans(),
)
def test_random_segments_never_break_invariants(kind, segs, with_data) -> None:
    cfg = config(recv_buffer=8192, wscale=2)
    if kind == "active":
        conn, peer = open_active(cfg=cfg, peer=Peer(wscale=3))
    else:
        conn, peer = open_passive(cfg=cfg, peer=Peer(wscale=3))
    if with_data:
        conn.send(b"q" * 20_000, 0.0)
        peer.absorb(conn.segments_out())
    if kind == "closing":
        conn.close(0.0)
    elif kind == "close_wait":
        conn.on_segment(peer.fin(), 0.0)
    now = 0.0
    for dseq, dack, flags, window, n in segs:
        now += 0.05
        seq = seq_add(peer.nxt, dseq) if abs(dseq) <= 70_000 else dseq
        ack = seq_add(peer.rcv_nxt, dack) if abs(dack) <= 70_000 else dack
        seg = Segment(seq, ack, Flags(flags), window, b"z" * n)
        conn.on_segment(seg, now)
        _check(conn)
        d = conn.next_deadline()
        if d is not None and d <= now + 1:
            conn.on_timer(max(d, now))
            _check(conn)
        if conn.readable:
            conn.recv(1000)
    # whatever happened, time alone brings the connection to rest or keeps it sane
    for _ in range(200):
        d = conn.next_deadline()
        if d is None:
            break
        now = max(now, d)
        conn.on_timer(now)
        _check(conn)
    assert seq_diff(conn.snd_max, conn.snd_una) >= 0
