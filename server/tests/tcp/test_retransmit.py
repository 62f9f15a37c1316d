"""RFC 6298 retransmission timer, Karn's rule, NewReno congestion control.

The RTO sequences here run with RFC 6298's 1 s minimum (``rto_min=1.0``), and the
window arithmetic with Reno's halving (``cc="newreno"``): both are the RFC
profile's values, Linux's defaults are tested in test_linux.py."""

from __future__ import annotations

import pytest

from seashard.tcp import State, TcpError

from .helpers import ISS, A, F, Peer, config, only, open_active, open_passive


def test_rto_doubles_and_retry_limit_times_out():
    conn, peer = open_passive(cfg=config(max_retries=3, rto_min=1.0))
    assert conn.rto == 1.0
    conn.send(b"x" * 100, 0.0)
    first = only(conn.segments_out())
    times = []
    while not conn.is_closed:
        now = conn.next_deadline()
        assert now is not None
        conn.on_timer(now)
        segs = conn.segments_out()
        if segs:
            seg = only(segs)
            assert (seg.seq, seg.payload) == (first.seq, first.payload)
            times.append(now)
    assert times == [1.0, 3.0, 7.0]
    assert now == 15.0
    assert conn.error is TcpError.TIMED_OUT and conn.stats.timeouts == 4
    assert conn.stats.retransmits == 3


def test_rto_capped_at_rto_max():
    conn, peer = open_passive(cfg=config(max_retries=20, rto_max=8.0, rto_min=1.0))
    conn.send(b"x", 0.0)
    conn.segments_out()
    times = []
    for _ in range(6):
        now = conn.next_deadline()
        conn.on_timer(now)
        conn.segments_out()
        times.append(now)
    assert times == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0]


def test_retry_counter_resets_on_progress():
    conn, peer = open_passive(cfg=config(max_retries=2))
    conn.send(b"a" * 10, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_timer(1.0)
    conn.on_timer(3.0)
    conn.segments_out()
    conn.on_segment(peer.ack(), 3.5)  # progress
    conn.send(b"b" * 10, 4.0)
    conn.segments_out()
    now = 4.0
    for _ in range(2):
        now = conn.next_deadline()
        conn.on_timer(now)
    assert conn.state is State.ESTABLISHED


def test_rtt_estimation_rfc6298():
    cfg = config(rto_min=0.05, rto_initial=1.0)
    conn, peer = open_passive(cfg=cfg)  # handshake sample: 0 s
    assert conn.srtt == 0.0 and conn.rttvar == 0.0
    conn.send(b"a" * 10, 1.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 1.2)
    assert conn.rttvar == pytest.approx(0.05)
    assert conn.srtt == pytest.approx(0.025)
    assert conn.rto == pytest.approx(0.025 + 4 * 0.05)
    conn.send(b"b" * 10, 2.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 2.1)
    rttvar = 0.75 * 0.05 + 0.25 * abs(0.025 - 0.1)
    srtt = 0.875 * 0.025 + 0.125 * 0.1
    assert conn.rttvar == pytest.approx(rttvar) and conn.srtt == pytest.approx(srtt)
    assert conn.rto == pytest.approx(srtt + 4 * rttvar)
    assert conn.stats.rtt_samples == 3


def test_karn_retransmitted_segment_not_sampled_backoff_kept():
    conn, peer = open_passive(cfg=config(rto_min=0.5, rto_initial=0.5))
    srtt0 = conn.srtt
    conn.send(b"a" * 10, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_timer(0.5)  # RTO: retransmit, RTO doubles to 1.0
    only(conn.segments_out())
    assert conn.rto == 1.0
    conn.on_segment(peer.ack(), 0.9)  # ambiguous: for the original or the copy?
    assert conn.srtt == srtt0 and conn.stats.rtt_samples == 1
    assert conn.rto == 1.0  # the backed-off RTO stays until a valid sample
    conn.send(b"b" * 10, 2.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 2.1)  # a fresh segment: sampled
    assert conn.stats.rtt_samples == 2 and conn.srtt == pytest.approx(0.0125)
    assert conn.rto == 0.5


def test_timeout_collapses_cwnd_and_goes_back_n():
    conn, peer = open_passive(
        peer=Peer(mss=1000, window=65535), cfg=config(cc="newreno", rto_min=1.0)
    )
    conn.send(b"x" * 8000, 0.0)
    segs = conn.segments_out()
    assert len(segs) == 8 and conn.cwnd == 10000
    conn.on_timer(1.0)
    rtx = only(conn.segments_out())
    assert rtx.seq == ISS + 1 and len(rtx.payload) == 1000
    assert conn.cwnd == 1000 and conn.ssthresh == 4000
    assert conn.stats.timeouts == 1 and conn.rto == 2.0
    # ACK of the first segment: slow start from one segment, resending from there.
    conn.on_segment(peer.ack(ack=ISS + 1001), 1.1)
    segs = conn.segments_out()
    assert [s.seq for s in segs] == [ISS + 1001, ISS + 2001]
    assert conn.cwnd == 2000
    # The receiver had it all: one ACK for everything ends the episode.
    conn.on_segment(peer.ack(ack=ISS + 8001), 1.2)
    assert conn.all_sent_acked and conn.next_deadline() is None


def test_slow_start_then_congestion_avoidance():
    conn, peer = open_passive(cfg=config(initial_cwnd=2000, cc="newreno"), peer=Peer(mss=1000))
    conn._cc.ssthresh = 4000
    conn.send(b"x" * 50_000, 0.0)
    assert len(peer.absorb(conn.segments_out())) == 2
    # ACKs 2000 bytes: all of them count (Linux's tcp_slow_start, stretch ACKs as from
    # a GRO receiver), up to ssthresh.
    conn.on_segment(peer.ack(), 0.1)
    assert conn.cwnd == 4000  # reached ssthresh
    n = len(peer.absorb(conn.segments_out()))
    assert n == 4
    for _ in range(4):  # one cwnd worth of ACKs, one MSS each
        conn.on_segment(peer.ack(ack=conn.snd_una + 1000), 0.3)
    assert conn.cwnd == 5000


def _lossy_window(conn, peer, n):
    """Send n 1000-byte segments; return them."""
    conn.send(b"".join(bytes([65 + i]) * 1000 for i in range(n)), 0.0)
    return conn.segments_out()


def test_fast_retransmit_after_three_dup_acks():
    conn, peer = open_passive(peer=Peer(mss=1000, window=65535), cfg=config(cc="newreno"))
    segs = _lossy_window(conn, peer, 10)
    assert len(segs) == 10  # initial window 10 segments
    # segment 1 is lost; segments 2.. arrive, each produces a duplicate ACK
    for _ in range(2):
        conn.on_segment(peer.ack(ack=ISS + 1), 0.1)
        assert conn.segments_out() == []
    conn.on_segment(peer.ack(ack=ISS + 1), 0.1)
    rtx = only(conn.segments_out())
    assert rtx.seq == ISS + 1 and rtx.payload == b"A" * 1000
    assert conn.stats.fast_retransmits == 1 and conn.stats.dup_acks == 3
    assert conn.ssthresh == 5000 and conn.cwnd == 8000 and conn.in_recovery


def test_dup_ack_with_window_change_or_data_is_not_counted():
    conn, peer = open_passive(peer=Peer(mss=1000, window=65535))
    _lossy_window(conn, peer, 10)
    conn.on_segment(peer.ack(ack=ISS + 1), 0.1)
    conn.on_segment(peer.ack(ack=ISS + 1, window=60000), 0.1)  # window update
    conn.on_segment(peer.data(b"d", ack=ISS + 1, window=60000), 0.1)  # carries data
    assert conn.stats.dup_acks == 1
    assert conn.stats.fast_retransmits == 0


def test_newreno_fast_recovery_with_partial_ack():
    conn, peer = open_passive(peer=Peer(mss=1000, window=65535), cfg=config(cc="newreno"))
    conn.send(b"".join(bytes([65 + i]) * 1000 for i in range(20)), 0.0)
    assert len(conn.segments_out()) == 10  # segments 1..10 sent, 11..20 queued
    # Segments 1 and 5 are lost: 8 duplicate ACKs arrive (from 2,3,4,6,7,8,9,10).
    out = []
    for _ in range(8):
        conn.on_segment(peer.ack(ack=ISS + 1), 0.1)
        out += conn.segments_out()
    # 3rd dup: retransmit segment 1; ssthresh = 10000/2, cwnd = 5000 + 3*1000.
    # Each further dup inflates cwnd by one MSS; new data goes once cwnd > flight.
    assert out[0].seq == ISS + 1
    assert [s.seq for s in out[1:]] == [ISS + 10001, ISS + 11001, ISS + 12001]
    assert conn.ssthresh == 5000 and conn.cwnd == 13000
    assert conn.snd_max == ISS + 13001
    # The retransmission of 1 arrives: ACK up to the hole at 5 -- a partial ACK.
    samples = conn.stats.rtt_samples
    conn.on_segment(peer.ack(ack=ISS + 4001), 0.2)
    assert conn.stats.rtt_samples == samples  # Karn: segment 1 was retransmitted
    out = conn.segments_out()
    assert out[0].seq == ISS + 4001 and out[0].payload == b"E" * 1000  # hole retransmitted
    assert conn.in_recovery
    assert conn.cwnd == 13000 - 4000 + 1000  # deflate by acked, add back one MSS
    assert [s.seq for s in out[1:]] == [ISS + 13001]  # flight 9000 < cwnd 10000
    assert conn.stats.fast_retransmits == 1 and conn.stats.retransmits == 2
    # Segment 5 arrives: everything up to 13 is ACKed, beyond recover -- full ACK.
    conn.on_segment(peer.ack(ack=ISS + 13001), 0.3)
    assert not conn.in_recovery
    assert conn.cwnd == min(5000, max(1000, 1000) + 1000)  # RFC 6582 option 1
    assert conn.ssthresh == 5000


def test_no_second_fast_retransmit_for_same_window():
    conn, peer = open_passive(peer=Peer(mss=1000, window=65535))
    _lossy_window(conn, peer, 10)
    for _ in range(3):
        conn.on_segment(peer.ack(ack=ISS + 1), 0.1)
    conn.segments_out()
    conn.on_timer(conn.next_deadline())  # timeout during recovery: recover = snd_max
    conn.segments_out()
    conn.on_segment(peer.ack(ack=ISS + 2001), 2.0)
    conn.segments_out()
    for _ in range(5):  # dup ACKs below "recover" do not start another recovery
        conn.on_segment(peer.ack(ack=ISS + 2001), 2.1)
    assert conn.stats.fast_retransmits == 1


def test_idle_restart_resets_cwnd_to_initial_window():
    conn, peer = open_passive(peer=Peer(mss=1000, window=65535))
    conn._cc.cwnd = 40000
    conn.send(b"x" * 1000, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.1)
    conn.send(b"y" * 30000, 100.0)  # idle far longer than the RTO
    assert len(conn.segments_out()) == 10
    assert conn.cwnd == 10000


def test_fin_retransmitted_by_timer():
    conn, peer = open_active()
    conn.close(0.0)
    fin = only(conn.segments_out())
    conn.on_timer(1.0)
    again = only(conn.segments_out())
    assert again.flags == A | F and again.seq == fin.seq
    assert conn.state is State.FIN_WAIT_1


def test_data_and_fin_retransmitted_after_timeout():
    conn, peer = open_active(peer=Peer(mss=1000))
    conn.send(b"a" * 1500, 0.0)
    conn.close(0.0)
    segs = conn.segments_out()
    assert [(len(s.payload), bool(s.flags & F)) for s in segs] == [
        (1000, False),
        (500, False),
        (0, True),
    ]
    conn.on_timer(1.0)
    assert only(conn.segments_out()).seq == ISS + 1  # one segment after a timeout
    peer.absorb(segs[:1])
    conn.on_segment(peer.ack(), 1.1)  # cwnd 2 MSS now: the rest goes, FIN riding on the data
    seg = only(conn.segments_out())
    assert seg.seq == ISS + 1001 and seg.flags & F and len(seg.payload) == 500
