"""Linux's behaviour, segment by segment on the virtual clock: SACK and D-SACK,
RFC 6675 recovery with PRR, the NewReno fallback, timestamps (RTTM, PAWS,
TS.Recent), TLP, CUBIC, and the Linux defaults of profile.py."""

from __future__ import annotations

import pytest

from seashard.tcp import Connection, Segment, TcpConfig
from seashard.tcp.cc import Cubic, Reno
from seashard.tcp.cc.cubic import BETA, C
from seashard.tcp.connection import linux_wscale
from seashard.tcp.sack import SackRecovery
from seashard.tcp.seq import seq_add
from seashard.wire.tcp import TcpFlags, TcpPacket

from .helpers import ISS, PEER_ISS, A, P, Peer, config, only, open_passive

MSS = 1000


def sack_conn(cfg: TcpConfig | None = None, ts: bool = False) -> tuple[Connection, Peer]:
    peer = Peer(mss=MSS)
    syn = peer.syn(sack_permitted=True, timestamps=(100, 0) if ts else None)
    conn = Connection.accept(syn, ISS, 0.0, cfg or TcpConfig())
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.01)
    assert conn.sack_ok and conn.ts_ok == ts
    conn.segments_out()
    return conn, peer


def blocks(seg: Segment) -> list[tuple[int, int]]:
    return [(a - PEER_ISS - 1, b - PEER_ISS - 1) for a, b in seg.sack_blocks]


# ------------------------------------------------------------------ receiver SACK


def test_sack_blocks_most_recent_first_then_merged_then_dsack():
    conn, peer = sack_conn()
    segs = [peer.data(bytes([65 + i]) * 100) for i in range(6)]  # offsets 0..600
    conn.on_segment(segs[2], 0.1)
    assert blocks(only(conn.segments_out())) == [(200, 300)]
    conn.on_segment(segs[4], 0.1)
    assert blocks(only(conn.segments_out())) == [(400, 500), (200, 300)]  # newest first
    conn.on_segment(segs[3], 0.1)  # joins both: one block, in front
    assert blocks(only(conn.segments_out())) == [(200, 500)]
    conn.on_segment(segs[3], 0.1)  # a duplicate of held data: D-SACK first (RFC 2883)
    ack = only(conn.segments_out())
    assert blocks(ack) == [(300, 400), (200, 500)] and conn.stats.dsacks_sent == 1
    conn.on_segment(segs[0], 0.1)
    conn.on_segment(segs[1], 0.1)  # fills the gap: no blocks left
    ack = conn.segments_out()[-1]
    assert ack.ack == PEER_ISS + 1 + 500 and ack.sack_blocks == ()
    conn.on_segment(segs[0], 0.2)  # old data: D-SACK below the cumulative ACK
    assert blocks(only(conn.segments_out())) == [(0, 100)]


def test_no_sack_blocks_without_sack_permitted():
    conn, peer = open_passive()
    peer.data(b"a" * 100)
    conn.on_segment(peer.data(b"b" * 100), 0.1)
    assert only(conn.segments_out()).sack_blocks == ()


# ------------------------------------------------------------------ sender recovery


def _send_window(conn: Connection, n: int) -> list[Segment]:
    conn.send(b"".join(bytes([65 + i % 26]) * MSS for i in range(n)), 0.1)
    return conn.segments_out()


def _sack_ack(peer: Peer, conn: Connection, got: list[tuple[int, int]], t: float) -> list[Segment]:
    """The peer ACKs up to its in-order point with SACK blocks (offsets from ISS+1)."""
    s = peer.seg(A)
    s.sack_blocks = tuple((seq_add(ISS + 1, a), seq_add(ISS + 1, b)) for a, b in got)
    conn.on_segment(s, t)
    return conn.segments_out()


def test_sack_recovers_two_losses_in_one_rtt_without_a_timeout():
    conn, peer = sack_conn(config(cc="newreno"))
    segs = _send_window(conn, 10)
    assert len(segs) == 10  # IW10
    # Segments 2 and 5 (offsets 1000 and 4000) are lost; the rest arrive.
    peer.absorb(segs[:1])
    out: list[Segment] = []
    t = 0.2
    got: list[tuple[int, int]] = []
    for i in (2, 3, 5, 6, 7, 8, 9):
        start = i * MSS
        if got and got[-1][1] == start:
            got[-1] = (got[-1][0], start + MSS)
        else:
            got.append((start, start + MSS))
        out += _sack_ack(peer, conn, sorted(got, reverse=True)[:3], t)
        t += 0.001
    rtx = [s.seq - ISS - 1 for s in out if s.seq - ISS - 1 < 10 * MSS]
    assert rtx[:2] == [1000, 4000]  # both holes, in order, within the same RTT
    assert conn.stats.sack_recoveries == 1 and conn.stats.timeouts == 0
    assert conn.in_recovery and conn.ssthresh == 4500  # Reno's half of the 9 in flight
    # The retransmissions arrive: everything is acknowledged, recovery ends.
    peer.absorb([s for s in out if s.seq - ISS - 1 == 1000])
    peer.rcv_nxt = seq_add(ISS + 1, 10 * MSS)
    conn.on_segment(peer.ack(), t + 0.05)
    assert not conn.in_recovery and conn.stats.timeouts == 0
    assert conn.cwnd == conn.ssthresh  # Linux: cwnd = ssthresh at the end of recovery


def test_newreno_fallback_without_sack_permitted():
    conn, peer = open_passive(cfg=config(cc="newreno"), peer=Peer(mss=MSS))
    assert not conn.sack_ok
    segs = _send_window(conn, 10)
    peer.absorb(segs[:1])
    conn.on_segment(peer.ack(), 0.2)  # the first segment's ACK
    out = []
    for _ in range(3):
        conn.on_segment(peer.ack(), 0.2)
        out += conn.segments_out()
    assert [s.seq for s in out] == [ISS + 1 + 1000]  # fast retransmit on the 3rd dup ACK
    assert conn.stats.fast_retransmits == 1 and conn.stats.sack_recoveries == 0
    # A partial ACK (up to the second hole) retransmits the next hole (RFC 6582).
    peer.rcv_nxt = seq_add(ISS + 1, 4000)
    conn.on_segment(peer.ack(), 0.3)
    assert ISS + 1 + 4000 in [s.seq for s in conn.segments_out()]
    assert conn.stats.timeouts == 0


def test_prr_sends_rfc6937_amounts():
    # RFC 6937 / Linux: ssthresh 7, RecoverFS 10 segments, one segment delivered per ACK.
    rec = SackRecovery(recover=0, high_rxt=0, recover_fs=10 * MSS, ssthresh=7 * MSS)
    sent = []
    for _ in range(10):
        rec.prr(MSS, pipe=20 * MSS, mss=MSS)  # pipe > ssthresh: proportional part
        sent.append(rec.quota // MSS)
        rec.prr_out += rec.quota
    assert sent == [1, 1, 1, 0, 1, 1, 0, 1, 1, 0]  # ceil(k * 7 / 10) - prr_out
    assert rec.prr_out == 7 * MSS
    # pipe <= ssthresh: slow start back up, at most one segment above what was delivered.
    rec2 = SackRecovery(recover=0, high_rxt=0, recover_fs=10 * MSS, ssthresh=7 * MSS)
    rec2.prr_out = 1
    rec2.prr(2 * MSS, pipe=3 * MSS, mss=MSS)
    assert rec2.quota == min(7 * MSS - 3 * MSS, max(2 * MSS - 1, 2 * MSS) + MSS)


# ------------------------------------------------------------------ timestamps


def test_timestamps_negotiated_rttm_paws_and_ts_recent():
    conn, peer = sack_conn(ts=True)
    assert conn.ts_recent == 100
    conn.send(b"x" * 100, 1.0)
    seg = only(conn.segments_out())
    tsval, tsecr = seg.timestamps
    assert tsecr == 100 and tsval == (1000 + conn.ts_offset) & 0xFFFFFFFF  # 1 ms clock
    peer.absorb([seg])
    ack = peer.ack()
    ack.timestamps = (150, tsval)
    conn.on_segment(ack, 1.25)
    # RTTM: the sample is now - TSecr = 250 ms, folded into SRTT (10 ms) by RFC 6298.
    assert conn.srtt == pytest.approx(0.875 * 0.01 + 0.125 * 0.25)
    assert conn.ts_recent == 150  # the ACK covered Last.ACK.sent
    # PAWS: an older TSval is dropped (and answered with an ACK), its data not taken.
    old = peer.data(b"old")
    old.timestamps = (120, tsval)
    conn.on_segment(old, 1.3)
    assert conn.stats.paws_drops == 1 and conn.unread == 0
    assert only(conn.segments_out()).ack == PEER_ISS + 1  # the bytes were not accepted
    # In-window data beyond Last.ACK.sent does not move TS.Recent (RFC 7323 4.3).
    peer.nxt = seq_add(PEER_ISS + 1, 1000)
    ahead = peer.data(b"z" * 10)
    ahead.timestamps = (200, tsval)
    conn.on_segment(ahead, 1.4)
    assert conn.ts_recent == 150
    peer.nxt = PEER_ISS + 1
    inorder = peer.data(b"y" * 10)
    inorder.timestamps = (210, tsval)
    conn.on_segment(inorder, 1.5)
    assert conn.ts_recent == 210 and conn.unread == 10


def test_timestamps_shrink_the_send_mss_by_the_option():
    conn, _ = sack_conn(ts=True)
    assert conn.mss == MSS - 12  # Linux tcp_current_mss: NOP NOP TS on every segment


# ------------------------------------------------------------------ TLP


def test_tlp_probes_the_lost_tail_at_two_srtt_instead_of_an_rto():
    conn, peer = sack_conn()  # TLP is on by default, as Linux
    assert conn.srtt == pytest.approx(0.01)
    segs = _send_window(conn, 4)
    peer.absorb(segs[:2])  # the last two segments are lost
    conn.on_segment(peer.ack(), 0.11)
    assert conn.segments_out() == []
    when = conn.next_deadline()
    # Linux: 2*SRTT (+2 ms with more than one segment out, +200 ms with one), here
    # never sooner than 50 ms; never later than the RTO.
    assert when == pytest.approx(0.11 + max(2 * conn.srtt + 0.002, 0.05))
    assert when < 0.11 + conn.rto
    conn.on_timer(when)
    probe = only(conn.segments_out())  # no new data: the last segment again
    assert probe.seq == segs[3].seq and probe.payload == segs[3].payload
    assert conn.stats.tlp_probes == 1 and conn.stats.timeouts == 0
    # The probe's ACK (all data, say the third was only delayed) ends the episode.
    peer.absorb(segs[2:])
    conn.on_segment(peer.ack(), when + 0.01)
    assert conn.all_sent_acked and conn.stats.timeouts == 0


def test_tlp_with_one_segment_out_adds_the_delayed_ack_allowance():
    conn, peer = sack_conn(config(tlp=True, rto_min=1.0))
    conn.send(b"x" * 100, 0.1)
    conn.segments_out()
    assert conn.next_deadline() == pytest.approx(0.1 + 2 * conn.srtt + 0.2)


def test_without_tlp_the_tail_waits_for_the_rto():
    conn, peer = sack_conn(config(tlp=False))
    segs = _send_window(conn, 4)
    peer.absorb(segs[:3])
    conn.on_segment(peer.ack(), 0.11)
    assert conn.next_deadline() == pytest.approx(0.11 + conn.rto)


# ------------------------------------------------------------------ CUBIC


def test_cubic_reduction_is_0_7_and_growth_follows_rfc9438():
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.ssthresh = 1 << 30
    ssthresh = cc.enter_recovery(100 * MSS, 0.0)
    assert ssthresh == int(100 * MSS * BETA) == 70 * MSS
    cc.exit_recovery()
    assert cc.cwnd == 70 * MSS and cc.w_max == 100
    rtt = 0.1
    t = 0.0
    # ACK one window per RTT for 3 s; cwnd tracks W_cubic(t + RTT) (eq. 1, K from eq. 2).
    while t < 3.0:
        for _ in range(cc.cwnd // MSS):
            cc.on_ack(MSS, t, rtt)
        t += rtt
    k = ((100 - 70) / C) ** (1 / 3)
    assert cc.k == pytest.approx(k)
    want = C * (t - k) ** 3 + 100  # segments, at the time of the last ACKs + RTT
    assert cc.cwnd / MSS == pytest.approx(want, rel=0.1)
    # Fast convergence: a loss below W_max remembers less than cwnd.
    cc2 = Cubic(MSS)
    cc2.cwnd, cc2.w_max = 50 * MSS, 80.0
    cc2.enter_recovery(50 * MSS, 0.0)
    assert cc2.w_max == pytest.approx(50 * (1 + BETA) / 2)


def test_newreno_controller_halves():
    cc = Reno(MSS)
    cc.cwnd = 20 * MSS
    assert cc.enter_recovery(20 * MSS, 0.0) == 10 * MSS


def test_cubic_is_the_default_and_newreno_selectable():
    conn, _ = open_passive()
    assert conn._ctl.name == "cubic"
    conn, _ = open_passive(cfg=config(cc="newreno"))
    assert conn._ctl.name == "newreno"
    assert TcpConfig.profile("rfc").cc == "newreno"


# ------------------------------------------------------------------ Linux defaults


def test_quick_ack_at_start_then_delayed_ack():
    conn, peer = open_passive(peer=Peer(mss=MSS))
    for i in range(16):  # Linux quickack mode: the first 16 ACKs at once
        conn.on_segment(peer.data(b"q"), 0.1 + i * 0.001)
        assert only(conn.segments_out()).ack == peer.nxt
    conn.on_segment(peer.data(b"d"), 0.2)
    assert conn.segments_out() == []  # now delayed ...
    assert conn.next_deadline() == pytest.approx(0.2 + 0.04)  # ... at most 40 ms
    conn.on_timer(conn.next_deadline())
    assert only(conn.segments_out()).ack == peer.nxt


def test_no_quick_ack_in_the_rfc_profile():
    conn, peer = open_passive(cfg=TcpConfig.profile("rfc"))
    conn.on_segment(peer.data(b"q"), 0.1)
    assert conn.segments_out() == []
    assert conn.next_deadline() == pytest.approx(0.1 + 0.2)


def test_ack_every_second_full_segment_counting_mss_units():
    conn, peer = open_passive(cfg=config(quickack=0), peer=Peer(mss=MSS))
    conn.on_segment(peer.data(b"a" * MSS), 0.1)
    assert conn.segments_out() == []
    conn.on_segment(peer.data(b"b" * MSS), 0.1)
    assert only(conn.segments_out()).ack == peer.nxt
    # A GRO-merged segment of many MSS counts as many: ACKed at once.
    conn.on_segment(peer.data(b"g" * (8 * MSS)), 0.1)
    assert only(conn.segments_out()).ack == peer.nxt


def test_min_rto_200ms_and_initial_rto_1s():
    conn = Connection.connect(ISS, 0.0, TcpConfig())
    only(conn.segments_out())
    assert conn.next_deadline() == 1.0  # initial RTO
    conn, peer = open_passive(peer=Peer(mss=MSS))  # handshake RTT 0
    assert conn.rto == pytest.approx(0.2)  # Linux TCP_RTO_MIN
    conn.send(b"x", 1.0)
    conn.segments_out()
    assert conn.next_deadline() == pytest.approx(1.2)
    conn.on_timer(1.2)
    assert only(conn.segments_out()).payload == b"x" and conn.stats.timeouts == 1
    assert TcpConfig.profile("rfc").rto_min == 1.0


def test_iw10():
    conn, _ = open_passive(peer=Peer(mss=1460, window=65535))
    conn.send(b"x" * 100_000, 0.1)
    assert len(conn.segments_out()) == 10


def test_wscale_from_the_receive_buffer_as_linux():
    assert [linux_wscale(n) for n in (65535, 65536, 131072, 256 * 1024, 6 << 20, 1 << 30)] == [
        0,
        1,
        2,
        3,
        7,
        14,
    ]
    conn = Connection.connect(ISS, 0.0, TcpConfig(recv_buffer=6 << 20))
    assert only(conn.segments_out()).wscale == 7


def test_syn_option_bytes_are_linuxs_layout():
    syn = only(Connection.connect(ISS, 2.0, TcpConfig(), ts_offset=0).segments_out())
    pkt = TcpPacket(
        40000,
        80,
        syn.seq,
        0,
        TcpFlags.SYN,
        syn.window,
        mss=syn.mss,
        wscale=syn.wscale,
        sack_permitted=syn.sack_permitted,
        timestamps=syn.timestamps,
    )
    # mss 1460, sackOK + TS val 2000 ecr 0 (12 bytes), nop, wscale 3: 20 bytes.
    assert pkt.build_options() == bytes.fromhex("020405b40402080a000007d00000000001030303")
    assert str(syn).endswith("<mss 1460,sackOK,TS val 2000 ecr 0,wscale 3>")


def test_psh_data_unchanged_by_the_profiles():
    conn, peer = open_passive()
    conn.send(b"hi", 0.1)
    assert only(conn.segments_out()).flags == A | P


def test_pingpong_mode_delays_the_ack_of_a_reply_until_a_delayed_ack_fires():
    conn, peer = open_passive(peer=Peer(mss=MSS))
    conn.on_segment(peer.data(b"req"), 0.1)
    assert only(conn.segments_out()).ack == peer.nxt  # quick-ACK
    conn.send(b"resp", 0.11)  # answered within the ATO: Linux's pingpong mode
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.data(b"req2"), 0.2)
    assert conn.segments_out() == []  # delayed, though quick-ACKs are left
    deadline = conn.next_deadline()
    assert deadline == pytest.approx(0.24)
    conn.on_timer(deadline)
    assert only(conn.segments_out()).ack == peer.nxt
    conn.on_segment(peer.data(b"req3"), 0.5)  # the delayed ACK fired: pingpong is over
    assert only(conn.segments_out()).ack == peer.nxt


# ------------------------------------------------------------------ PSH


def test_forced_push_on_a_window_limited_burst():
    """Linux tcp_sendmsg's forced_push: buffers of size_goal (MSS times what fits in
    half the peer's largest window); a full one that leaves more than half that
    window unpushed gets PSH, and the write's end does."""
    peer = Peer(mss=MSS, window=2048)
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig(wscale=None))
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.01)  # max window 2048 (from this ACK, as Linux)
    conn.send(b"x" * 4000, 0.1)
    segs = conn.segments_out()
    assert [(len(s.payload), bool(s.flags & P)) for s in segs] == [(1000, False), (1000, True)]
    conn.on_segment(peer.ack(ack=segs[-1].seq + 1000), 0.2)
    segs = conn.segments_out()
    assert [(len(s.payload), bool(s.flags & P)) for s in segs] == [(1000, False), (1000, True)]


def test_no_forced_push_when_the_write_fits_in_half_the_window():
    conn, peer = sack_conn()  # peer window 65535
    segs = _send_window(conn, 4)
    assert [bool(s.flags & P) for s in segs] == [False, False, False, True]
