"""Closing: active, passive, simultaneous; TIME-WAIT; FIN handling; abort."""

from __future__ import annotations

import pytest

from seashard.tcp import Connection, Segment, State, TcpConfig, TcpError, TcpStateError

from .helpers import ISS, PEER_ISS, A, F, P, Peer, R, S, config, only, open_active, open_passive


def test_active_close_full_sequence_and_time_wait_exactly_2msl():
    conn, peer = open_active(cfg=config(msl=30.0))
    conn.close(1.0)
    assert conn.state is State.FIN_WAIT_1
    fin = only(peer.absorb(conn.segments_out()))
    assert fin.flags == A | F and fin.seq == ISS + 1
    conn.on_segment(peer.ack(), 1.1)
    assert conn.state is State.FIN_WAIT_2
    assert conn.segments_out() == [] and conn.all_sent_acked and conn.fin_acked
    conn.on_segment(peer.fin(), 2.0)
    assert conn.state is State.TIME_WAIT
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == PEER_ISS + 2 and ack.seq == ISS + 2
    assert conn.time_wait_until == 62.0 and conn.next_deadline() == 62.0
    assert conn.at_eof and conn.readable
    conn.on_timer(61.999)
    assert conn.state is State.TIME_WAIT
    conn.on_timer(62.0)
    assert conn.state is State.CLOSED and conn.is_closed and conn.error is None
    assert conn.next_deadline() is None


def test_time_wait_default_msl_is_30s():
    conn, peer = open_active()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.fin(), 0.5)  # FIN that also ACKs ours: straight to TIME-WAIT
    assert conn.state is State.TIME_WAIT and conn.time_wait_until == 60.5


def test_time_wait_reacks_retransmitted_fin_and_restarts_timer():
    conn, peer = open_active()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    fin = peer.fin()
    conn.on_segment(fin, 1.0)
    only(conn.segments_out())
    assert conn.time_wait_until == 61.0
    conn.on_segment(fin, 20.0)  # our ACK was lost: the peer sends its FIN again
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == PEER_ISS + 2
    assert conn.time_wait_until == 80.0
    conn.on_timer(61.0)
    assert conn.state is State.TIME_WAIT
    conn.on_timer(80.0)
    assert conn.is_closed


def test_time_wait_new_syn_above_rcv_nxt_reopens():
    conn, peer = open_active()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.fin(), 1.0)
    conn.segments_out()
    new_syn = Segment(PEER_ISS + 100000, 0, S, 65535, mss=1460)
    conn.on_segment(new_syn, 5.0)
    assert conn.is_closed and conn.error is None
    assert conn.reopen_syn is new_syn
    assert conn.segments_out() == []


def test_time_wait_old_syn_gets_challenge_ack():
    conn, peer = open_active()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.fin(), 1.0)
    conn.segments_out()
    conn.on_segment(Segment(PEER_ISS - 5, 0, S, 65535), 5.0)
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == PEER_ISS + 2
    assert conn.state is State.TIME_WAIT and conn.reopen_syn is None


def test_time_wait_ignores_rst_rfc1337_by_default():
    conn, peer = open_active()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.fin(), 1.0)
    conn.segments_out()
    conn.on_segment(peer.rst(), 2.0)
    assert conn.state is State.TIME_WAIT


def test_time_wait_rst_closes_when_rfc1337_off():
    conn, peer = open_active(cfg=config(rfc1337=False))
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.fin(), 1.0)
    conn.segments_out()
    conn.on_segment(peer.rst(), 2.0)
    assert conn.is_closed and conn.error is None


def test_passive_close_close_wait_last_ack_closed():
    conn, peer = open_passive()
    conn.on_segment(peer.fin(), 1.0)
    assert conn.state is State.CLOSE_WAIT
    ack = only(conn.segments_out())  # FIN is ACKed at once, not delayed
    assert ack.ack == PEER_ISS + 2
    assert conn.at_eof and conn.readable and conn.recv() == b""
    conn.send(b"bye", 1.1)  # half-close: we may still send
    peer.absorb(conn.segments_out())
    conn.close(1.2)
    assert conn.state is State.LAST_ACK
    fin = only(peer.absorb(conn.segments_out()))
    assert fin.flags == A | F and fin.seq == ISS + 4
    conn.on_segment(peer.ack(), 1.3)
    assert conn.state is State.CLOSED and conn.error is None
    assert conn.time_wait_until is None  # the passive closer has no TIME-WAIT


def test_last_ack_retransmits_fin():
    conn, peer = open_passive()
    conn.on_segment(peer.fin(), 0.0)
    conn.segments_out()
    conn.close(0.0)
    fin = only(conn.segments_out())
    conn.on_timer(1.0)
    again = only(conn.segments_out())
    assert again.flags == A | F and again.seq == fin.seq
    assert conn.stats.retransmits == 1


def test_simultaneous_close_via_closing():
    conn, peer = open_active()
    conn.close(1.0)
    our_fin = only(conn.segments_out())
    # The peer closed at the same time: its FIN does not ACK ours.
    peer_fin = peer.fin()
    assert peer_fin.ack == ISS + 1
    conn.on_segment(peer_fin, 1.1)
    assert conn.state is State.CLOSING
    ack = only(conn.segments_out())
    assert ack.ack == PEER_ISS + 2
    peer.absorb([our_fin])
    conn.on_segment(peer.ack(), 1.2)
    assert conn.state is State.TIME_WAIT and conn.time_wait_until == 61.2
    assert conn.segments_out() == []
    conn.on_timer(61.2)
    assert conn.is_closed


def test_simultaneous_close_two_connections():
    a, b = _pair()
    a.close(1.0)
    b.close(1.0)
    fa = only(a.segments_out())
    fb = only(b.segments_out())
    a.on_segment(fb, 1.1)
    b.on_segment(fa, 1.1)
    assert a.state is State.CLOSING and b.state is State.CLOSING
    for s in a.segments_out():
        b.on_segment(s, 1.2)
    for s in b.segments_out():
        a.on_segment(s, 1.2)
    assert a.state is State.TIME_WAIT and b.state is State.TIME_WAIT


def _pair() -> tuple[Connection, Connection]:
    a = Connection.connect(100, 0.0, TcpConfig())
    b = Connection.accept(only(a.segments_out()), 900, 0.0, TcpConfig())
    a.on_segment(only(b.segments_out()), 0.0)
    b.on_segment(only(a.segments_out()), 0.0)
    assert a.is_established and b.is_established
    return a, b


def test_fin_with_data():
    conn, peer = open_passive()
    conn.on_segment(peer.fin(b"last words"), 1.0)
    assert conn.state is State.CLOSE_WAIT
    # Linux tcp_fin (pingpong mode): the ACK of a FIN with data is delayed.
    assert conn.segments_out() == []
    assert conn.next_deadline() == pytest.approx(1.0 + conn.config.delayed_ack)
    conn.on_timer(conn.next_deadline())
    assert only(conn.segments_out()).ack == PEER_ISS + 1 + 10 + 1
    assert conn.readable and not conn.at_eof
    assert conn.recv() == b"last words"
    assert conn.at_eof


def test_fin_out_of_order_waits_for_gap():
    conn, peer = open_passive()
    d1 = peer.data(b"1" * 50)
    d2 = peer.data(b"2" * 50)
    fin = peer.fin()
    conn.on_segment(fin, 1.0)
    assert conn.state is State.ESTABLISHED
    assert only(conn.segments_out()).ack == PEER_ISS + 1
    conn.on_segment(d2, 1.0)
    assert conn.state is State.ESTABLISHED
    conn.segments_out()
    conn.on_segment(d1, 1.0)
    assert conn.state is State.CLOSE_WAIT
    assert only(conn.segments_out()).ack == PEER_ISS + 1 + 100 + 1
    assert conn.recv() == b"1" * 50 + b"2" * 50 and conn.at_eof


def test_fin_with_data_out_of_order():
    conn, peer = open_passive()
    d1 = peer.data(b"a" * 10)
    f = peer.fin(b"b" * 10)
    conn.on_segment(f, 1.0)
    conn.on_segment(d1, 1.0)
    assert conn.state is State.CLOSE_WAIT and conn.recv() == b"a" * 10 + b"b" * 10


def test_duplicate_fin_in_close_wait_is_reacked():
    conn, peer = open_passive()
    fin = peer.fin()
    conn.on_segment(fin, 1.0)
    conn.segments_out()
    conn.on_segment(fin, 2.0)
    assert only(conn.segments_out()).ack == PEER_ISS + 2
    assert conn.state is State.CLOSE_WAIT


def test_fin_wait_1_data_still_flowing_before_fin():
    conn, peer = open_active(peer=Peer(window=1000))
    conn.send(b"z" * 3000, 0.0)
    conn.close(0.0)
    assert conn.state is State.FIN_WAIT_1
    segs = peer.absorb(conn.segments_out())
    assert [(len(s.payload), bool(s.flags & F)) for s in segs] == [(1000, False)]
    conn.on_segment(peer.ack(window=5000), 0.1)
    segs = peer.absorb(conn.segments_out())
    # Linux's buffers of one MSS each, the first cut by the window; its rest and the
    # next buffer carry PSH (forced push: more than half the 1000-byte window unpushed).
    got = [(len(s.payload), bool(s.flags & P), bool(s.flags & F)) for s in segs]
    assert got == [(460, True, False), (1460, True, False), (80, True, True)]
    conn.on_segment(peer.ack(), 0.2)
    assert conn.state is State.FIN_WAIT_2


def test_fin_wait_2_timeout_optional():
    conn, peer = open_active(cfg=config(fin_wait_2_timeout=10.0))
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 1.0)
    assert conn.state is State.FIN_WAIT_2 and conn.next_deadline() == 11.0
    conn.on_timer(11.0)
    assert conn.is_closed


def test_fin_wait_2_waits_forever_by_default():
    conn, peer = open_active()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 1.0)
    assert conn.state is State.FIN_WAIT_2 and conn.next_deadline() is None


def test_close_in_syn_sent_and_idempotent_close():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    conn.segments_out()
    conn.close(0.1)
    assert conn.is_closed and conn.segments_out() == [] and conn.error is None
    conn.close(0.2)
    assert conn.is_closed


def test_close_in_syn_received_sends_fin_after_handshake():
    peer = Peer()
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig())
    peer.absorb(conn.segments_out())
    conn.close(0.05)
    assert conn.state is State.SYN_RECEIVED and conn.segments_out() == []
    conn.on_segment(peer.ack(), 0.1)
    assert conn.state is State.FIN_WAIT_1
    fin = only(conn.segments_out())
    assert fin.flags == A | F and fin.seq == ISS + 1


def test_send_after_close_raises():
    conn, _ = open_active()
    conn.close(0.0)
    assert conn.send_space == 0
    with pytest.raises(TcpStateError):
        conn.send(b"x", 0.0)


def test_abort_sends_rst_and_closes():
    conn, peer = open_passive()
    conn.send(b"unsent" * 10, 0.0)
    conn.segments_out()
    conn.abort(0.1)
    rst = only(conn.segments_out())
    assert rst.flags & R and rst.seq == ISS + 61
    assert conn.is_closed and conn.error is TcpError.ABORTED
    assert conn.next_deadline() is None
    with pytest.raises(TcpStateError):
        conn.send(b"x", 0.2)


def test_abort_in_syn_sent_sends_nothing():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    conn.segments_out()
    conn.abort(0.0)
    assert conn.is_closed and conn.segments_out() == []


def test_segment_to_closed_connection_gets_reset():
    conn, peer = open_passive()
    conn.abort(0.0)
    conn.segments_out()
    conn.on_segment(peer.data(b"hello?"), 1.0)
    rst = only(conn.segments_out())
    assert rst.flags == R and rst.seq == ISS + 1
    conn.on_segment(peer.rst(), 1.0)
    assert conn.segments_out() == []


def test_data_after_peer_fin_is_ignored():
    conn, peer = open_passive()
    conn.on_segment(peer.fin(), 0.0)
    conn.segments_out()
    conn.on_segment(peer.data(b"bogus"), 0.1)  # beyond the FIN
    assert conn.recv() == b"" and conn.state is State.CLOSE_WAIT


def test_close_wait_data_then_close_flushes_before_fin():
    conn, peer = open_passive(peer=Peer(window=100))
    conn.on_segment(peer.fin(), 0.0)
    conn.segments_out()
    conn.send(b"r" * 250, 0.0)
    conn.close(0.0)
    assert conn.state is State.LAST_ACK
    got = [s.payload for s in peer.absorb(conn.segments_out())]
    assert got == [b"r" * 100]
    while conn.state is not State.CLOSED:
        conn.on_segment(peer.ack(), 0.1)
        peer.absorb(conn.segments_out())
    assert bytes(peer.received) == b"r" * 250 and peer.fin_received


def test_psh_flag_on_last_segment():
    conn, _ = open_passive()
    conn.send(b"x" * 3000, 0.0)
    flags = [s.flags & P for s in conn.segments_out()]
    assert flags == [0, 0, P]


def test_fin_wait_1_stays_until_the_fin_itself_is_acked():
    conn, peer = open_active()
    conn.send(b"d" * 100, 0.0)
    conn.close(0.0)
    segs = conn.segments_out()
    assert segs[-1].flags & F
    conn.on_segment(peer.ack(ack=ISS + 101), 0.1)  # data acked, FIN not yet
    assert conn.state is State.FIN_WAIT_1 and not conn.fin_acked
    assert not conn.all_sent_acked
    conn.on_segment(peer.ack(ack=ISS + 102), 0.2)
    assert conn.state is State.FIN_WAIT_2 and conn.fin_acked and conn.all_sent_acked
