"""TSO on the sans-IO machine (``tso_max``): new data in segments of whole MSS units
within cwnd and the peer's window; in SACK recovery, retransmissions of one MSS and new
data within PRR's quota."""

from __future__ import annotations

from seashard.tcp import Connection, Segment
from seashard.tcp.connection import TSO_MAX
from seashard.tcp.seq import seq_add, seq_diff

from .helpers import ISS, A, Peer, config

MSS = 1000


def tso_conn(window: int = 65535) -> tuple[Connection, Peer]:
    peer = Peer(mss=MSS, window=window, wscale=7)
    cfg = config(tlp=False, rack=False, tso_max=TSO_MAX, send_buffer=1 << 20)
    conn = Connection.accept(peer.syn(sack_permitted=True), ISS, 0.0, cfg)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.01)
    conn.segments_out()
    assert conn.sack_ok and conn.mss == MSS
    return conn, peer


def sack(peer: Peer, got: list[tuple[int, int]], ack_off: int = 0) -> Segment:
    s = peer.seg(A, ack=seq_add(ISS + 1, ack_off))
    s.sack_blocks = tuple((seq_add(ISS + 1, a), seq_add(ISS + 1, b)) for a, b in got)
    return s


def test_the_initial_window_leaves_as_one_segment_of_whole_mss_units() -> None:
    conn, _ = tso_conn()
    conn.send(b"x" * 25_500, 0.1)
    out = conn.segments_out()
    assert [len(s.payload) for s in out] == [10 * MSS]  # IW10, one TSO segment
    assert conn.bytes_in_flight == 10 * MSS == conn.cwnd


def test_in_sack_recovery_retransmissions_are_one_mss_and_new_data_keeps_to_prr() -> None:
    conn, peer = tso_conn()
    data = bytes(i % 251 for i in range(60_000))
    conn.send(data, 0.1)
    first = conn.segments_out()
    assert [len(s.payload) for s in first] == [10 * MSS]
    # The first wire segment of it was lost; the other nine arrive, SACKed one by one.
    sent_new = 0
    rtx: list[Segment] = []
    for k in range(2, 11):
        conn.on_segment(sack(peer, [(MSS, k * MSS)]), 0.12 + k * 0.001)
        for s in conn.segments_out():
            if seq_diff(s.seq, ISS + 1) < 10 * MSS:
                rtx.append(s)
            else:
                sent_new += len(s.payload)
                assert len(s.payload) % MSS == 0
        if conn.in_recovery:
            assert conn._srec is not None and conn._srec.quota >= 0  # PRR never overdrawn
    assert conn.in_recovery and conn.stats.sack_recoveries == 1
    assert [(seq_diff(s.seq, ISS + 1), len(s.payload)) for s in rtx] == [(0, MSS)]
    # PRR-SSRB: about one segment out per segment delivered, no burst of 64 KB.
    assert 0 < sent_new <= 9 * MSS
    # The hole is filled: recovery ends, and segments grow beyond the MSS again.
    end = 10 * MSS + sent_new
    conn.on_segment(sack(peer, [], ack_off=end), 0.2)
    out = conn.segments_out()
    assert not conn.in_recovery
    assert out and max(len(s.payload) for s in out) > MSS
    assert all(len(s.payload) % MSS == 0 for s in out[:-1])


def test_a_small_peer_window_bounds_the_segments() -> None:
    conn, peer = tso_conn(window=40)  # 40 << 7 = 5120 bytes
    conn.send(b"y" * 20_000, 0.1)
    out = conn.segments_out()
    # Half the peer's largest window (2560) bounds a segment (Linux tcp_bound_to_half_wnd);
    # the window's remainder below one MSS waits (sender SWS avoidance).
    assert [len(s.payload) for s in out] == [2 * MSS, 2 * MSS, MSS]
    assert sum(len(s.payload) for s in out) <= 40 << 7
