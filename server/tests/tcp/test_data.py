"""Data transfer: both directions, delayed ACK, reassembly, flow control,
zero-window probing, send buffer, Nagle."""

from __future__ import annotations

import pytest

from seashard.tcp import State

from .helpers import ISS, PEER_ISS, A, F, P, Peer, config, only, open_active, open_passive


def test_data_both_directions():
    conn, peer = open_passive(cfg=config(quickack=0))  # delayed ACK from the start (no quick-ACK)
    assert conn.send(b"hello", 0.1) == 5
    seg = only(conn.segments_out())
    assert seg.flags == A | P and seg.seq == ISS + 1 and seg.payload == b"hello"
    assert not conn.all_sent_acked and conn.bytes_in_flight == 5
    peer.absorb([seg])
    conn.on_segment(peer.data(b"world"), 0.2)
    assert conn.readable and conn.recv() == b"world"
    assert conn.snd_una == ISS + 6 and conn.all_sent_acked
    assert conn.stats.bytes_out == 5 and conn.stats.bytes_in == 5
    assert conn.next_deadline() == pytest.approx(0.24)  # only the delayed ACK remains


def test_recv_partial_reads():
    conn, peer = open_passive()
    conn.on_segment(peer.data(b"abcdefgh"), 0.1)
    assert conn.recv(3) == b"abc"
    assert conn.unread == 5
    assert conn.recv(100) == b"defgh"
    assert conn.recv() == b"" and not conn.readable


def test_delayed_ack_timer():
    conn, peer = open_passive(cfg=config(delayed_ack=0.1, quickack=0))
    conn.on_segment(peer.data(b"x" * 100), 1.0)
    assert conn.segments_out() == []
    assert conn.next_deadline() == pytest.approx(1.1)
    conn.on_timer(1.05)  # early: nothing
    assert conn.segments_out() == []
    conn.on_timer(1.1)
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == PEER_ISS + 1 + 100
    assert conn.next_deadline() is None


def test_delayed_ack_timer_not_extended_by_more_data():
    conn, peer = open_passive(cfg=config(delayed_ack=0.2, quickack=0))
    conn.on_segment(peer.data(b"x" * 10), 1.0)
    conn.on_segment(peer.data(b"y" * 10), 1.15)
    assert conn.segments_out() == []
    assert conn.next_deadline() == pytest.approx(1.2)


def test_ack_every_second_full_segment():
    conn, peer = open_passive(cfg=config(quickack=0))  # delayed ACK from the start (no quick-ACK)
    conn.on_segment(peer.data(b"a" * 1460), 0.1)
    assert conn.segments_out() == []
    conn.on_segment(peer.data(b"b" * 1460), 0.1)
    ack = only(conn.segments_out())
    assert ack.ack == PEER_ISS + 1 + 2920
    conn.on_segment(peer.data(b"c" * 1460), 0.1)
    assert conn.segments_out() == []
    conn.on_segment(peer.data(b"d" * 1460), 0.1)
    assert only(conn.segments_out()).ack == PEER_ISS + 1 + 4 * 1460
    assert conn.next_deadline() is None


def test_delayed_ack_disabled():
    conn, peer = open_passive(cfg=config(delayed_ack=0))
    conn.on_segment(peer.data(b"x"), 0.1)
    assert only(conn.segments_out()).ack == PEER_ISS + 2


def test_ack_piggybacks_on_data():
    conn, peer = open_passive(cfg=config(quickack=0))  # delayed ACK from the start (no quick-ACK)
    conn.on_segment(peer.data(b"ping"), 0.1)
    assert conn.next_deadline() is not None
    conn.send(b"pong", 0.11)
    seg = only(conn.segments_out())
    assert seg.payload == b"pong" and seg.ack == PEER_ISS + 5
    assert conn.next_deadline() == pytest.approx(0.11 + conn.rto)  # retransmission timer only


def test_out_of_order_reassembly_and_immediate_acks():
    conn, peer = open_passive()
    base = peer.nxt
    s1 = peer.data(b"A" * 100)
    s2 = peer.data(b"B" * 100)
    s3 = peer.data(b"C" * 100)
    conn.on_segment(s3, 0.1)
    dup = only(conn.segments_out())  # out of order: immediate duplicate ACK
    assert dup.ack == base
    assert conn.unread == 0 and conn.stats.ooo_segments == 1
    conn.on_segment(s2, 0.1)
    assert only(conn.segments_out()).ack == base
    conn.on_segment(s1, 0.1)  # fills the gap: immediate ACK for everything
    assert only(conn.segments_out()).ack == base + 300
    assert conn.recv() == b"A" * 100 + b"B" * 100 + b"C" * 100


def test_overlapping_and_duplicate_segments_are_trimmed():
    conn, peer = open_passive()
    base = peer.nxt
    data = bytes(range(200))
    conn.on_segment(peer.data(data[:50], seq=base), 0.1)
    conn.on_segment(peer.data(data[120:180], seq=base + 120), 0.1)
    conn.on_segment(peer.data(data[100:150], seq=base + 100), 0.1)  # overlaps held data
    conn.on_segment(peer.data(data[30:110], seq=base + 30), 0.1)  # overlaps both sides
    conn.on_segment(peer.data(data[170:200], seq=base + 170), 0.1)
    assert conn.recv() == data
    assert conn.rcv_nxt == base + 200


def test_duplicate_old_segment_gets_immediate_ack():
    conn, peer = open_passive()
    base = peer.nxt
    s = peer.data(b"x" * 10)
    conn.on_segment(s, 0.1)
    conn.on_timer(1.0)
    conn.segments_out()
    conn.on_segment(s, 2.0)  # retransmission of data we have
    ack = only(conn.segments_out())
    assert ack.ack == base + 10
    assert conn.unread == 10 and conn.stats.dup_segments == 1


def test_segment_beyond_window_is_trimmed():
    conn, peer = open_passive(cfg=config(recv_buffer=1000, wscale=None))
    assert conn.rcv_wnd == 1000
    conn.on_segment(peer.data(b"q" * 1500), 0.1)
    assert conn.unread == 1000
    ack = only(conn.segments_out())
    assert ack.ack == PEER_ISS + 1 + 1000 and ack.window == 0


def test_receive_window_follows_unread_data_and_reopens():
    conn, peer = open_passive(cfg=config(recv_buffer=8000, wscale=None, delayed_ack=0))
    conn.on_segment(peer.data(b"a" * 1000), 0.1)
    assert only(conn.segments_out()).window == 7000
    conn.on_segment(peer.data(b"b" * 3000), 0.1)
    assert only(conn.segments_out()).window == 4000
    conn.on_segment(peer.data(b"c" * 4000), 0.1)
    assert only(conn.segments_out()).window == 0
    # Reading 500 bytes: not worth a window update (SWS avoidance).
    assert len(conn.recv(500)) == 500
    assert conn.segments_out() == []
    # A segment arriving now is not acceptable: still window 0 in the reply.
    conn.on_segment(peer.data(b"x", advance=False), 0.2)
    assert only(conn.segments_out()).window == 0
    # Reading enough opens the window: an immediate window update.
    conn.recv(2000)
    upd = only(conn.segments_out())
    assert upd.flags == A and upd.window == 2500 and upd.ack == PEER_ISS + 1 + 8000
    assert conn.stats.window_updates == 1


def test_window_never_shrinks_right_edge():
    conn, peer = open_passive(cfg=config(recv_buffer=4000, wscale=None, delayed_ack=0))
    conn.on_segment(peer.data(b"a" * 1000), 0.1)
    right = peer.nxt + only(conn.segments_out()).window
    for _ in range(3):
        conn.on_segment(peer.data(b"b" * 100), 0.1)
        ack = only(conn.segments_out())
        assert ack.ack + ack.window >= right
        right = ack.ack + ack.window


def test_send_buffer_limit_and_writable():
    conn, peer = open_passive(cfg=config(send_buffer=3000), peer=Peer(window=1000))
    assert conn.send_space == 3000 and conn.writable
    assert conn.send(b"x" * 5000, 0.1) == 3000
    assert conn.send_space == 0 and not conn.writable
    assert conn.send(b"more", 0.1) == 0
    assert [len(s.payload) for s in peer.absorb(conn.segments_out())] == [1000]
    conn.on_segment(peer.ack(), 0.2)
    assert conn.send_space == 1000
    assert conn.unsent == 1000  # 1000 acked, 1000 in flight, 1000 waiting


def test_peer_window_limits_sending():
    conn, peer = open_passive(peer=Peer(window=2920))
    conn.send(b"x" * 10000, 0.1)
    segs = peer.absorb(conn.segments_out())
    assert [len(s.payload) for s in segs] == [1460, 1460]
    assert conn.unsent == 10000 - 2920
    conn.on_segment(peer.ack(ack=ISS + 1 + 1460), 0.2)  # the window slides by 1460
    assert [len(s.payload) for s in conn.segments_out()] == [1460]


def test_sender_sws_small_usable_window_waits():
    conn, peer = open_passive(peer=Peer(window=2500))
    conn.send(b"x" * 10000, 0.1)
    # 1040 bytes of window remain, less than half the largest window: wait.
    assert [len(s.payload) for s in conn.segments_out()] == [1460]


def test_slow_reader_stops_sender_end_to_end():
    """Flow control between two connections: the receiver's app reads slowly."""
    from seashard.tcp import Connection

    cfg_small = config(recv_buffer=4096, wscale=None, delayed_ack=0.04)
    a = Connection.connect(1, 0.0, config())
    b = None
    now = 0.0
    payload = bytes(i % 251 for i in range(50_000))
    sent = 0
    got = bytearray()

    def pump() -> None:
        nonlocal b
        for _ in range(20):
            moved = False
            for s in a.segments_out():
                moved = True
                if b is None:
                    b = Connection.accept(s, 7, now, cfg_small)
                else:
                    b.on_segment(s, now)
            if b is not None:
                for s in b.segments_out():
                    moved = True
                    a.on_segment(s, now)
            if not moved:
                return

    pump()
    max_unread = 0
    for _ in range(2000):
        if a.is_established and sent < len(payload):
            sent += a.send(payload[sent:], now)
        pump()
        assert b is not None
        max_unread = max(max_unread, b.unread)
        if now > 1.0:  # the reader wakes up only after a second, then reads 700 bytes per tick
            got += b.recv(700)
        pump()
        if len(got) == len(payload):
            break
        deadlines = [d for d in (a.next_deadline(), b.next_deadline()) if d is not None]
        now = max(now + 0.01, min(deadlines)) if deadlines else now + 0.01
        a.on_timer(now)
        b.on_timer(now)
    assert bytes(got) == payload
    assert max_unread <= 4096  # the sender never overran the reader's buffer
    assert a.stats.probes >= 1  # it was stopped by a zero window at least once


def test_zero_window_persist_probes_with_backoff_and_resume():
    cfg = config(rto_min=0.5, rto_initial=0.5)
    conn, peer = open_passive(cfg=cfg, peer=Peer(window=1000))
    conn.send(b"x" * 3000, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(window=0), 0.1)  # all acked, window closed
    assert conn.segments_out() == []
    assert conn.all_sent_acked is False and conn.unsent == 2000
    probes = []
    now = 0.1
    for _ in range(4):
        now = conn.next_deadline()
        conn.on_timer(now)
        probe = only(conn.segments_out())
        # Linux's probe (tcp_xmit_probe_skb): a pure ACK at SND.UNA - 1, no data.
        assert probe.seq == ISS + 1000 and probe.payload == b"" and probe.flags == A
        probes.append(now)
        conn.on_segment(peer.ack(window=0), now)  # refused: still window 0
        assert conn.segments_out() == []
    gaps = [round(b - a, 6) for a, b in zip([0.1, *probes], probes, strict=False)]
    assert gaps == [0.5, 1.0, 2.0, 4.0]  # exponential backoff
    assert conn.stats.probes == 4 and conn.state is State.ESTABLISHED
    # The peer opens its window: sending resumes at once, the probe timer stops.
    conn.on_segment(peer.ack(window=5000), now + 0.1)
    segs = conn.segments_out()
    # Linux's MSS-sized buffers (forced push, see test_linux): the rest of the first
    # one, the second, the tail.
    assert [len(s.payload) for s in segs] == [460, 1460, 80]
    assert segs[0].seq == ISS + 1001


def test_zero_window_probe_byte_accepted():
    cfg = config(rto_min=0.5, rto_initial=0.5, zero_window_probe="byte")  # RFC 9293's probe
    conn, peer = open_passive(cfg=cfg, peer=Peer(window=1000))
    conn.send(b"x" * 1500, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(window=0), 0.1)
    conn.on_timer(conn.next_deadline())
    probe = peer.absorb(conn.segments_out())
    assert len(probe) == 1 and peer.rcv_nxt == ISS + 1002  # the peer took the byte
    conn.on_segment(peer.ack(window=100), 0.7)
    seg = only(conn.segments_out())
    assert seg.seq == ISS + 1002 and len(seg.payload) == 100
    assert conn.snd_max == ISS + 1102


def test_zero_window_probe_receiver_side():
    """We are the receiver with a full buffer: a probe is refused but ACKed."""
    conn, peer = open_passive(cfg=config(recv_buffer=1000, wscale=None, delayed_ack=0))
    conn.on_segment(peer.data(b"a" * 1000), 0.1)
    assert only(conn.segments_out()).window == 0
    conn.on_segment(peer.data(b"p", advance=False), 0.5)
    ack = only(conn.segments_out())
    assert ack.ack == PEER_ISS + 1001 and ack.window == 0
    assert conn.unread == 1000


def test_sender_sws_avoidance_waits_for_useful_window():
    conn, peer = open_passive(peer=Peer(window=10000))
    conn.send(b"x" * 9900, 0.0)
    peer.absorb(conn.segments_out())  # 9900 in flight, window 10000 -> 100 usable
    conn.send(b"y" * 2000, 0.0)
    assert conn.segments_out() == []  # a 100-byte segment would be silly
    conn.on_segment(peer.ack(), 0.1)
    assert [len(s.payload) for s in conn.segments_out()] == [1460, 540]


def test_nagle_holds_small_segments_while_unacked():
    conn, peer = open_passive(cfg=config(nagle=True))
    conn.send(b"a", 0.0)
    assert len(only(conn.segments_out()).payload) == 1
    conn.send(b"b", 0.0)
    conn.send(b"c", 0.0)
    assert conn.segments_out() == []  # small data waits for the ACK
    conn.on_segment(peer.ack(ack=ISS + 2), 0.1)
    assert only(conn.segments_out()).payload == b"bc"


def test_nagle_off_by_default_sends_immediately():
    conn, _ = open_passive()
    conn.send(b"a", 0.0)
    conn.send(b"b", 0.0)
    assert [s.payload for s in conn.segments_out()] == [b"a", b"b"]


def test_fin_alone_after_data_already_sent():
    conn, peer = open_active()
    conn.send(b"x" * 100, 0.0)
    conn.close(0.0)
    data, fin = conn.segments_out()
    assert data.flags == A | P and len(data.payload) == 100
    assert fin.flags == A | F and fin.payload == b"" and fin.seq == ISS + 101


def test_send_close_then_data_and_fin_in_one_segment():
    conn, peer = open_active(peer=Peer(window=0))
    conn.send(b"abc", 0.0)  # window closed: queued
    conn.close(0.0)
    assert conn.segments_out() == []
    conn.on_segment(peer.ack(window=1000), 0.1)
    seg = only(conn.segments_out())
    assert seg.flags == A | P | F and seg.payload == b"abc"
    assert conn.state is State.FIN_WAIT_1


def test_receive_after_local_close_half_close():
    conn, peer = open_passive()
    conn.close(0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.1)
    assert conn.state is State.FIN_WAIT_2
    conn.on_segment(peer.data(b"still talking"), 0.2)
    assert conn.recv() == b"still talking"


def test_active_side_data_transfer_through_open_active():
    conn, peer = open_active()
    conn.on_segment(peer.data(b"abc"), 0.1)
    assert conn.recv() == b"abc"


def test_zero_window_still_processes_ack_of_refused_segment():
    """RFC 9293 3.10.7.4: with RCV.WND = 0 data is refused, but its ACK counts."""
    conn, peer = open_passive(cfg=config(recv_buffer=1000, wscale=None, delayed_ack=0))
    conn.send(b"out" * 10, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.data(b"a" * 1000, ack=ISS + 1), 0.1)  # fills our buffer
    assert only(conn.segments_out()).window == 0
    conn.on_segment(peer.data(b"b", advance=False), 0.2)  # refused, but ACKs our 30 bytes
    assert conn.snd_una == ISS + 31 and conn.all_sent_acked
    assert only(conn.segments_out()).ack == PEER_ISS + 1001


def test_zero_window_accepts_bare_fin():
    conn, peer = open_passive(cfg=config(recv_buffer=1000, wscale=None, delayed_ack=0))
    conn.on_segment(peer.data(b"a" * 1000), 0.1)
    assert only(conn.segments_out()).window == 0
    conn.on_segment(peer.fin(), 0.2)
    assert conn.state is State.CLOSE_WAIT
    assert only(conn.segments_out()).ack == PEER_ISS + 1002
    assert conn.recv() == b"a" * 1000 and conn.at_eof


def test_old_duplicate_segment_ack_field_is_used():
    """A retransmission of data we already have still carries the peer's latest ACK."""
    conn, peer = open_passive()
    s = peer.data(b"x" * 10)
    conn.on_segment(s, 0.1)
    conn.send(b"reply", 0.2)
    peer.absorb(conn.segments_out())
    s.ack = peer.rcv_nxt  # the peer resends the old data with a fresher ACK
    conn.on_segment(s, 0.3)
    assert conn.all_sent_acked


def test_memoryview_payloads_are_copied_not_kept():
    conn, peer = open_passive()
    frame = bytearray(b"HDR" + b"a" * 10 + b"b" * 10)
    base = peer.nxt
    s2 = peer.data(b"", seq=base + 10)
    s2.payload = memoryview(frame)[13:23]  # out of order: held in reassembly
    s1 = peer.data(b"", seq=base)
    s1.payload = memoryview(frame)[3:13]
    conn.on_segment(s2, 0.1)
    conn.on_segment(s1, 0.1)
    frame[:] = b"X" * len(frame)  # the glue reuses its receive buffer
    data = conn.recv(15)
    assert type(data) is bytes and data == b"a" * 10 + b"b" * 5
    assert conn.recv() == b"b" * 5
