"""Opening: passive, active, simultaneous; options; SYN retransmission."""

from __future__ import annotations

import pytest

from seashard.tcp import Connection, Flags, Segment, State, TcpConfig, TcpError
from seashard.tcp.connection import DEFAULT_MSS

from .helpers import ISS, PEER_ISS, A, P, Peer, R, S, config, only, open_active, open_passive


def test_passive_open_three_way_handshake():
    peer = Peer()
    syn = peer.syn()
    conn = Connection.accept(syn, ISS, 0.0, TcpConfig())
    assert conn.state is State.SYN_RECEIVED and not conn.is_established
    sa = only(conn.segments_out())
    assert sa.flags == S | A
    assert (sa.seq, sa.ack) == (ISS, PEER_ISS + 1)
    assert sa.mss == 1460 and sa.wscale is None  # the peer offered no wscale
    assert sa.window == 65535  # SYN windows are never scaled
    peer.absorb([sa])
    conn.on_segment(peer.ack(), 0.01)
    assert conn.state is State.ESTABLISHED and conn.is_established
    assert conn.segments_out() == []
    assert (conn.snd_una, conn.snd_nxt, conn.rcv_nxt) == (ISS + 1, ISS + 1, PEER_ISS + 1)
    assert conn.srtt == pytest.approx(0.01)  # the SYN-ACK was timed


def test_active_open_three_way_handshake():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    assert conn.state is State.SYN_SENT
    syn = only(conn.segments_out())
    # Linux's choice: the smallest shift that fits the 256 KiB buffer in 16 bits.
    assert syn.flags == S and syn.seq == ISS and syn.mss == 1460 and syn.wscale == 3
    assert conn.next_deadline() == 1.0  # initial RTO
    peer = Peer()
    conn.on_segment(peer.syn_ack(syn), 0.05)
    assert conn.state is State.ESTABLISHED
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.seq == ISS + 1 and ack.ack == PEER_ISS + 1
    assert conn.next_deadline() is None
    assert conn.srtt == pytest.approx(0.05)


def test_data_queued_before_handshake_goes_with_establishment():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    syn = only(conn.segments_out())
    assert conn.send(b"early", 0.0) == 5
    assert conn.segments_out() == []
    peer = Peer()
    conn.on_segment(peer.syn_ack(syn), 0.1)
    seg = only(conn.segments_out())  # the data segment carries the handshake ACK
    assert seg.payload == b"early" and seg.flags & A and seg.ack == PEER_ISS + 1


def test_syn_ack_carrying_data_and_fin():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    syn = only(conn.segments_out())
    peer = Peer()
    sa = peer.syn_ack(syn)
    sa.payload = b"hi"
    sa.flags |= Flags.FIN
    conn.on_segment(sa, 0.1)
    assert conn.state is State.CLOSE_WAIT
    assert conn.recv() == b"hi" and conn.at_eof
    ack = only(conn.segments_out())
    assert ack.ack == PEER_ISS + 1 + 2 + 1


def test_accept_with_options_mss_and_wscale():
    peer = Peer(mss=1000, wscale=9)
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig(wscale=6))
    sa = only(conn.segments_out())
    assert sa.wscale == 6 and sa.mss == 1460
    assert conn.mss == 1000  # min(ours, theirs)
    assert conn.wscale_ok and conn.snd_shift == 9 and conn.rcv_shift == 6


def test_mss_default_536_when_absent():
    peer = Peer(mss=None)
    conn, peer = open_passive(peer=peer)
    assert conn.mss == DEFAULT_MSS == 536
    assert conn.send(b"x" * 2000, 0.1) == 2000
    segs = conn.segments_out()
    assert [len(s.payload) for s in segs] == [536, 536, 536, 392]


def test_segmentation_at_negotiated_mss():
    conn, peer = open_active(peer=Peer(mss=1200), cfg=config(mss=1400))
    conn.send(b"y" * 3000, 0.1)
    assert [len(s.payload) for s in conn.segments_out()] == [1200, 1200, 600]
    # our own MSS limits too
    conn2, _ = open_active(peer=Peer(mss=9000), cfg=config(mss=1000))
    assert conn2.mss == 1000


def test_window_scale_negotiated_both_sides():
    # Active: we offer 5 (1 MiB in 16 bits, as Linux computes it), the peer offers 3.
    peer = Peer(wscale=3, window=65535)
    conn, peer = open_active(peer=peer, cfg=config(recv_buffer=1 << 20))
    assert conn.wscale_ok and conn.snd_shift == 3 and conn.rcv_shift == 5
    # The peer's window field is scaled by its shift after the SYN.
    conn.on_segment(peer.ack(window=1000), 0.1)
    assert conn.snd_wnd == 8000
    # Our advertised windows are shifted by 7: the full 1 MiB buffer is offered.
    conn.on_segment(peer.data(b"z" * 100), 0.1)
    conn.on_timer(1.0)
    ack = only(conn.segments_out())
    assert ack.window == ((1 << 20) - 100) >> 5  # rounded down
    assert conn.rcv_wnd == (1 << 20) - 100  # the furthest edge offered stays acceptable


def test_window_scale_syn_window_unscaled():
    peer = Peer(wscale=5, window=40000)
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    syn = only(conn.segments_out())
    assert syn.window == 65535  # 256 KiB buffer, but a SYN's window is never scaled
    conn.on_segment(peer.syn_ack(syn), 0.1)
    assert conn.snd_wnd == 40000  # SYN-ACK window taken as is, not << 5


def test_window_scale_not_negotiated_when_peer_does_not_offer():
    peer = Peer(wscale=None)
    conn = Connection.connect(ISS, 0.0, config(recv_buffer=1 << 20))
    conn.on_segment(peer.syn_ack(only(conn.segments_out())), 0.0)
    assert only(conn.segments_out()).window == 65535  # 1 MiB buffer, capped without scaling
    assert not conn.wscale_ok and conn.snd_shift == 0 and conn.rcv_shift == 0
    conn.on_segment(peer.ack(window=1000), 0.1)
    assert conn.snd_wnd == 1000  # taken as is


def test_window_scale_not_offered_by_us():
    peer = Peer(wscale=7)
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig(wscale=None))
    assert only(conn.segments_out()).wscale is None
    assert conn.snd_shift == 0 and conn.rcv_shift == 0


def test_window_scale_shift_capped_at_14():
    conn = Connection.accept(Peer(wscale=20).syn(), ISS, 0.0, TcpConfig())
    assert conn.snd_shift == 14
    with pytest.raises(ValueError):
        TcpConfig(wscale=15)


def test_simultaneous_open():
    a = Connection.connect(100, 0.0, TcpConfig())
    b = Connection.connect(9000, 0.0, TcpConfig())
    syn_a = only(a.segments_out())
    syn_b = only(b.segments_out())
    a.on_segment(syn_b, 0.01)
    b.on_segment(syn_a, 0.01)
    assert a.state is State.SYN_RECEIVED and b.state is State.SYN_RECEIVED
    sa_a = only(a.segments_out())
    sa_b = only(b.segments_out())
    assert sa_a.flags == S | A and sa_a.seq == 100 and sa_a.ack == 9001
    assert sa_b.flags == S | A and sa_b.seq == 9000 and sa_b.ack == 101
    a.on_segment(sa_b, 0.02)
    b.on_segment(sa_a, 0.02)
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED
    # data flows both ways
    a.send(b"from a", 0.03)
    b.send(b"from b", 0.03)
    for s in a.segments_out():
        b.on_segment(s, 0.04)
    for s in b.segments_out():
        a.on_segment(s, 0.04)
    assert a.recv() == b"from b" and b.recv() == b"from a"


def test_simultaneous_open_final_ack_carries_a_dsack_of_the_duplicate_syn():
    """Linux: the SYN-ACK's SYN repeats the SYN already taken; it is ACKed at once
    with a D-SACK of it (tcp_data_queue, RFC 2883), without waiting for data."""
    a, ack = _simultaneous_open_final_ack(TcpConfig())
    assert ack.flags == A and ack.seq == 101 and ack.ack == 9001
    assert ack.sack_blocks == ((9000, 9001),) and a.stats.dsacks_sent == 1
    # Without SACK: the same immediate ACK, no blocks.
    a, ack = _simultaneous_open_final_ack(TcpConfig(sack=False))
    assert ack.flags == A and ack.ack == 9001 and ack.sack_blocks == ()


def _simultaneous_open_final_ack(cfg: TcpConfig) -> tuple[Connection, Segment]:
    """Both ends connect at once; A takes B's SYN, then B's SYN-ACK: A and its answer."""
    a = Connection.connect(100, 0.0, cfg)
    b = Connection.connect(9000, 0.0, cfg)
    syn_a, syn_b = only(a.segments_out()), only(b.segments_out())
    a.on_segment(syn_b, 0.01)
    b.on_segment(syn_a, 0.01)
    sa_b = only(b.segments_out())
    a.segments_out()
    a.on_segment(sa_b, 0.02)
    return a, only(a.segments_out())


def test_syn_retransmitted_with_backoff_then_gives_up():
    conn = Connection.connect(ISS, 0.0, config(syn_retries=3))
    only(conn.segments_out())
    times = []
    now = 0.0
    while not conn.is_closed:
        now = conn.next_deadline()
        assert now is not None
        conn.on_timer(now)
        segs = conn.segments_out()
        if segs:
            assert only(segs).flags == S and segs[0].seq == ISS
            times.append(now)
    assert times == [1.0, 3.0, 7.0]  # RTO 1, 2, 4
    assert now == 15.0  # the fourth timeout gives up
    assert conn.state is State.CLOSED and conn.error is TcpError.TIMED_OUT
    assert conn.stats.retransmits == 3


def test_syn_retries_default_is_5():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    only(conn.segments_out())
    n = 0
    while not conn.is_closed:
        conn.on_timer(conn.next_deadline())
        n += len(conn.segments_out())
    assert n == 5 and conn.error is TcpError.TIMED_OUT


def test_synack_retransmitted_then_gives_up():
    conn = Connection.accept(Peer().syn(), ISS, 0.0, config(synack_retries=2))
    only(conn.segments_out())
    conn.on_timer(1.0)
    assert only(conn.segments_out()).flags == S | A
    conn.on_timer(3.0)
    assert only(conn.segments_out()).flags == S | A
    conn.on_timer(7.0)
    assert conn.is_closed and conn.error is TcpError.TIMED_OUT


def test_duplicate_syn_in_syn_received_resends_synack():
    peer = Peer()
    syn = peer.syn()
    conn = Connection.accept(syn, ISS, 0.0, TcpConfig())
    only(conn.segments_out())
    conn.on_segment(syn, 0.5)
    sa = only(conn.segments_out())
    assert sa.flags == S | A and sa.seq == ISS
    assert conn.state is State.SYN_RECEIVED


def test_karn_no_rtt_sample_from_retransmitted_syn_and_rto_3s():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    syn = only(conn.segments_out())
    conn.on_timer(1.0)
    only(conn.segments_out())
    conn.on_segment(Peer().syn_ack(syn), 1.2)
    assert conn.state is State.ESTABLISHED
    assert conn.srtt is None  # ambiguous sample discarded (Karn)
    assert conn.rto == 3.0  # RFC 6298 5.7


def test_syn_sent_rst_with_acceptable_ack_is_refused():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    only(conn.segments_out())
    conn.on_segment(Segment(0, ISS + 1, R | A, 0), 0.1)
    assert conn.is_closed and conn.error is TcpError.REFUSED
    assert conn.segments_out() == []


def test_syn_sent_rst_with_bad_ack_or_no_ack_ignored():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    only(conn.segments_out())
    conn.on_segment(Segment(0, ISS + 5, R | A, 0), 0.1)
    conn.on_segment(Segment(0, 0, R, 0), 0.1)
    assert conn.state is State.SYN_SENT and conn.segments_out() == []


def test_syn_sent_unacceptable_ack_gets_reset():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    only(conn.segments_out())
    conn.on_segment(Segment(777, ISS + 50, S | A, 100), 0.1)
    rst = only(conn.segments_out())
    assert rst.flags == R and rst.seq == ISS + 50
    assert conn.state is State.SYN_SENT


def test_syn_received_unacceptable_ack_gets_reset():
    peer = Peer()
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig())
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(ack=ISS + 77), 0.1)
    rst = only(conn.segments_out())
    assert rst.flags == R and rst.seq == ISS + 77
    assert conn.state is State.SYN_RECEIVED


def test_handshake_ack_carrying_data():
    peer = Peer()
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig())
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.seg(A | P, b"GET /"), 0.1)
    assert conn.state is State.ESTABLISHED
    assert conn.recv() == b"GET /"


def test_accept_rejects_non_syn():
    with pytest.raises(ValueError):
        Connection.accept(Segment(1, 2, A, 0), ISS, 0.0)
