"""RACK (RFC 8985 6), segment by segment on the virtual clock: a segment sent
before one the peer SACKed is lost once RACK.rtt + the reordering window
(min_RTT/4, Linux's) has passed; the reorder timer retransmits it through the
SACK recovery path, and data that was only reordered is not resent."""

from __future__ import annotations

import pytest

from seashard.tcp import Connection, Segment, TcpConfig
from seashard.tcp.seq import seq_add

from .helpers import ISS, A, Peer, config

MSS = 1000


def sack_conn(cfg: TcpConfig | None = None) -> tuple[Connection, Peer]:
    peer = Peer(mss=MSS)
    conn = Connection.accept(peer.syn(sack_permitted=True), ISS, 0.0, cfg or TcpConfig())
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.01)  # handshake RTT 10 ms: min_RTT, SRTT
    assert conn.sack_ok
    conn.segments_out()
    return conn, peer


def send4(conn: Connection) -> list[Segment]:
    conn.send(b"".join(bytes([65 + i]) * MSS for i in range(4)), 0.1)
    segs = conn.segments_out()
    assert [len(s.payload) for s in segs] == [MSS] * 4
    return segs


def sack_ack(peer: Peer, conn: Connection, got: list[tuple[int, int]], t: float) -> list[Segment]:
    s = peer.seg(A)
    s.sack_blocks = tuple((seq_add(ISS + 1, a), seq_add(ISS + 1, b)) for a, b in got)
    conn.on_segment(s, t)
    return conn.segments_out()


def test_reorder_timer_retransmits_what_was_sent_before_the_sacked_segment():
    conn, peer = sack_conn(config(tlp=False))  # RACK on by default (Linux profile)
    segs = send4(conn)
    # Only the last segment arrives: one SACKed segment is below DupThresh, so
    # RFC 6675 alone would wait for the RTO.
    assert sack_ack(peer, conn, [(3000, 4000)], 0.12) == []
    # RACK.rtt = 20 ms (sent 0.1, SACKed 0.12); reo_wnd = min_RTT/4 = 2.5 ms; the
    # timer is 2 ms (Linux TCP_TIMEOUT_MIN) late.
    when = conn.next_deadline()
    assert when == pytest.approx(0.1 + 0.02 + 0.01 / 4 + 0.002)
    assert when < 0.12 + conn.rto
    conn.on_timer(when)
    out = conn.segments_out()
    assert out and out[0].seq == segs[0].seq and out[0].payload == segs[0].payload
    assert conn.in_recovery and conn.stats.timeouts == 0 and conn.stats.fast_retransmits == 1
    # The rest of the holes follow as ACKs come back (PRR), no RTO.
    got = sack_ack(peer, conn, [(3000, 4000)], when + 0.02)
    seen = {s.seq for s in out + got}
    assert segs[1].seq in seen


def test_a_flight_after_an_idle_period_is_judged_by_its_own_deliveries():
    conn, peer = sack_conn(config(tlp=False))
    send4(conn)
    s = peer.seg(A)
    s.ack = seq_add(ISS + 1, 4000)
    conn.on_segment(s, 0.15)  # the whole first flight, RACK.rtt 50 ms: idle again
    assert conn.all_sent_acked and conn.segments_out() == []
    # The second flight: only its last segment arrives.  RACK follows that delivery
    # (RACK.rtt 20 ms), not the first flight's; reo_wnd = min_RTT/4 as before.
    conn.send(b"".join(bytes([69 + i]) * MSS for i in range(4)), 1.0)
    segs = conn.segments_out()
    s = peer.seg(A)
    s.ack = seq_add(ISS + 1, 4000)
    s.sack_blocks = ((seq_add(ISS + 1, 7000), seq_add(ISS + 1, 8000)),)
    conn.on_segment(s, 1.02)
    assert conn.segments_out() == []
    when = conn.next_deadline()
    assert when == pytest.approx(1.0 + 0.02 + 0.01 / 4 + 0.002)
    conn.on_timer(when)
    out = conn.segments_out()
    assert out and out[0].seq == segs[0].seq and out[0].payload == segs[0].payload
    assert conn.stats.timeouts == 0 and conn.stats.fast_retransmits == 1


def test_reordered_segments_arriving_in_the_window_are_not_resent():
    conn, peer = sack_conn(config(tlp=False))
    send4(conn)
    assert sack_ack(peer, conn, [(3000, 4000)], 0.12) == []
    assert conn.next_deadline() == pytest.approx(0.1245)
    # The "missing" three arrive before the reordering window ends.
    s = peer.seg(A)
    s.ack = seq_add(ISS + 1, 4000)
    conn.on_segment(s, 0.121)
    assert conn.segments_out() == []
    assert conn.all_sent_acked and conn.next_deadline() is None
    assert conn.stats.retransmits == 0 and not conn.in_recovery


def test_without_rack_the_same_loss_waits_for_the_rto():
    conn, peer = sack_conn(config(tlp=False, rack=False))
    send4(conn)
    assert sack_ack(peer, conn, [(3000, 4000)], 0.12) == []
    assert conn.next_deadline() == pytest.approx(0.1 + conn.rto)


def test_rfc_profile_has_no_rack():
    assert TcpConfig.profile("rfc").rack is False
    assert TcpConfig().rack is True


def lost_retransmission(cfg: TcpConfig) -> tuple[Connection, list[Segment]]:
    """Six segments, the first two lost; the four after them SACKed at 0.12 start
    recovery (both retransmitted at 0.12); the first one's retransmission is lost
    too, the second's is SACKed at 0.15.  Returns what went out on that ACK."""
    conn, peer = sack_conn(cfg)
    conn.send(b"".join(bytes([65 + i]) * MSS for i in range(6)), 0.1)
    first = conn.segments_out()[0]
    out = sack_ack(peer, conn, [(2000, 6000)], 0.12)
    assert [s.seq for s in out] == [first.seq, seq_add(first.seq, MSS)]
    return conn, sack_ack(peer, conn, [(1000, 6000)], 0.15)


def test_a_lost_retransmission_is_resent_again_before_the_rto():
    conn, out = lost_retransmission(config(tlp=False))
    # RACK follows the second retransmission (sent 0.12, SACKed 0.15: RACK.rtt
    # 30 ms); the first, sent at 0.12 too but below it, is lost once 0.12 +
    # RACK.rtt + reo_wnd (0 in recovery) has passed: on this ACK, not at the RTO.
    rack = conn._rack
    assert rack is not None and rack.rtt == pytest.approx(0.03)
    assert 0.12 + rack.rtt == pytest.approx(0.15)  # reo_wnd 0: in recovery, no reordering
    assert [s.seq for s in out] == [ISS + 1] and out[0].payload == b"A" * MSS
    assert conn.stats.timeouts == 0 and conn.stats.retransmits == 3
    assert 0.15 < conn.next_deadline() == pytest.approx(0.1 + conn.rto)  # the RTO, unfired


def test_without_rack_a_lost_retransmission_waits_for_the_rto():
    conn, out = lost_retransmission(TcpConfig.profile("rfc"))
    assert out == []
    assert conn.next_deadline() == pytest.approx(0.1 + conn.rto)
    assert conn.stats.retransmits == 2
