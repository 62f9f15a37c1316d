"""Data in both directions through frames: ACK timing, MSS, windows, reordering, wrap-around."""

from __future__ import annotations

import pytest
from frames_helpers import PEER_ISN, Bench, Peer, data_of, flags, seq_add

from seashard.net.native.streams import NativeConnection
from seashard.tcp.connection import State, TcpConfig


def payload_bytes(n: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt) % 251 for i in range(n))


def app_send(bench: Bench, conn: NativeConnection, data: bytes) -> None:
    assert conn.tcp.send(data, bench.now()) == len(data)
    bench.layer.kick(conn)


# ---------------------------------------------------------------- peer -> us


def test_small_segment_gets_a_delayed_ack() -> None:
    # Delayed ACK from the first segment: quick-ACK (Linux's start) turned off.
    bench = Bench(TcpConfig(mss=1460, quickack=0))
    peer, conn = bench.established()
    assert peer.send("PA", b"x" * 100) == []  # delayed
    assert bench.advance(0.039) == []
    out = bench.advance(0.001)  # delayed_ack = 40 ms
    assert [(flags(s), s.seq, s.ack) for s in out] == [("A", conn.tcp.iss + 1, PEER_ISN + 101)]
    assert out[0].window == (256 * 1024 - 100) >> 3  # free buffer, scaled by our shift 3
    assert data_of(out[0]) == b""
    assert bench.loop.next_deadline() is None  # nothing more to do


def test_every_second_full_segment_is_acked_at_once() -> None:
    # Delayed ACK from the first segment: quick-ACK (Linux's start) turned off.
    bench = Bench(TcpConfig(mss=1460, quickack=0))
    peer, conn = bench.established()
    assert peer.send("A", b"a" * 1460) == []
    out = peer.send("A", b"b" * 1460)
    assert [(flags(s), s.ack) for s in out] == [("A", PEER_ISN + 1 + 2920)]
    assert peer.send("A", b"c" * 1460) == []
    out = peer.send("A", b"d" * 1460)
    assert [s.ack for s in out] == [PEER_ISN + 1 + 4 * 1460]
    assert conn.tcp.unread == 4 * 1460


def test_data_reaches_the_stream_reader(bench: Bench) -> None:
    peer, conn = bench.established()
    reading = bench.loop.spawn(conn.read())
    assert not reading.done
    peer.send("PA", b"hello ")
    assert reading.value() == b"hello "
    peer.send("PA", b"world")
    peer.send("PA", b"!")
    assert bench.loop.spawn(conn.read()).value() == b"world!"
    assert conn.bytes_in == 12


def test_our_data_goes_out_in_mss_segments(bench: Bench) -> None:
    peer, conn = bench.established()
    data = payload_bytes(5000)
    app_send(bench, conn, data)
    out = peer.see(bench.take_tcp())
    assert [len(data_of(s)) for s in out] == [1460, 1460, 1460, 620]
    assert [flags(s) for s in out] == ["A", "A", "A", "PA"]
    iss = conn.tcp.iss
    assert [s.seq for s in out] == [seq_add(iss, 1 + i * 1460) for i in range(4)]
    assert all(s.ack == PEER_ISN + 1 for s in out)
    assert bytes(peer.received) == data
    assert peer.send("A") == []
    assert conn.tcp.all_sent_acked and bench.loop.next_deadline() is None


def test_stream_write_blocks_until_the_peer_acks(bench: Bench) -> None:
    cfg = TcpConfig(mss=1460, send_buffer=16 * 1024)
    bench = Bench(cfg)
    peer, conn = bench.established()
    data = payload_bytes(100_000, salt=3)
    writing = bench.loop.spawn(conn.write(data))
    rounds = 0
    out = peer.see(bench.take_tcp())
    while out:  # ACK everything seen; our answer is the next flight
        assert all(len(data_of(s)) <= 1460 for s in out)
        assert sum(len(data_of(s)) for s in out) <= 16 * 1024
        out = peer.send("A")
        rounds += 1
    assert writing.done
    writing.value()
    assert bytes(peer.received) == data
    assert rounds > 5  # the 16 KiB buffer really made the writer wait
    assert conn.bytes_out == len(data)
    bench.close()


def test_peer_mss_536_limits_our_segments() -> None:
    bench = Bench()
    peer, conn = bench.established(Peer(bench, mss=536))
    app_send(bench, conn, payload_bytes(2000))
    out = bench.take_tcp()
    assert [len(data_of(s)) for s in out] == [536, 536, 536, 392]
    bench.close()


# ---------------------------------------------------------------- windows


def test_window_scaling_when_the_peer_offers_it() -> None:
    bench = Bench()
    peer, conn = bench.established(Peer(bench, wscale=3))
    assert conn.tcp.wscale_ok and conn.tcp.snd_shift == 3 and conn.tcp.rcv_shift == 3
    # Our windows are scaled by our shift (7).
    out = peer.send("PA", b"z" * 3000)
    assert out and out[-1].window == (256 * 1024 - 3000) >> 3
    # The peer's window field is scaled by its shift (3): 365 << 3 = 2920 bytes.
    peer.send("A", window=365)
    app_send(bench, conn, payload_bytes(4000))
    out = bench.take_tcp()
    assert [len(data_of(s)) for s in out] == [1460, 1460]
    bench.close()


def test_no_window_scaling_when_the_peer_does_not_offer_it() -> None:
    bench = Bench()
    peer, conn = bench.established(Peer(bench, wscale=None))
    assert not conn.tcp.wscale_ok and conn.tcp.rcv_shift == 0
    out = peer.send("PA", b"z" * 3000)
    assert out and out[-1].window == 65535  # unscaled: the field's maximum
    peer.send("A", window=1000)  # unscaled too
    app_send(bench, conn, payload_bytes(4000))
    assert [len(data_of(s)) for s in bench.take_tcp()] == [1000]
    bench.close()


def test_our_window_closes_when_the_app_does_not_read_and_reopens_on_read() -> None:
    bench = Bench(TcpConfig(mss=1460, recv_buffer=8192, quickack=0))
    peer, conn = bench.established(Peer(bench, wscale=None))
    for _ in range(5):
        peer.send("A", b"q" * 1460)
    # More than one full-sized segment unACKed: the ACK (Linux's rule) shows the
    # closed window at once.
    out = peer.send("PA", b"r" * (8192 - 5 * 1460))
    assert [(s.ack, s.window) for s in out] == [(PEER_ISN + 1 + 8192, 0)]
    # A byte beyond the closed window is not accepted; the ACK says so at once.
    out = peer.send("PA", b"!", advance=False)
    assert [(s.ack, s.window) for s in out] == [(PEER_ISN + 1 + 8192, 0)]
    # The app reads: a window update opens the window again.
    assert len(bench.loop.spawn(conn.read()).value()) == 8192
    out = bench.take_tcp()
    assert [(flags(s), s.ack, s.window) for s in out] == [("A", PEER_ISN + 1 + 8192, 8192)]
    bench.close()


def test_zero_window_from_the_peer_and_persist_probes() -> None:
    # RFC 6298's 1 s minimum RTO (Linux's 200 ms is tested in test_frames_linux.py).
    bench = Bench(TcpConfig(mss=1460, rto_min=1.0))
    peer, conn = bench.established()
    assert peer.send("A", window=0) == []
    t0 = bench.now()
    data = payload_bytes(1000)
    app_send(bench, conn, data)
    assert bench.take_tcp() == []  # the window is closed
    first = seq_add(conn.tcp.iss, 1)
    for delay in (1.0, 3.0, 7.0):  # probes back off: 1, 2, 4 s apart
        when, out = bench.next_timer()
        assert when == t0 + delay
        # Linux's probe (tcp_xmit_probe_skb): a pure ACK at SND.UNA - 1, no data.
        assert [(flags(s), s.seq, data_of(s)) for s in out] == [("A", seq_add(first, -1), b"")]
        assert peer.send("A", window=0) == []  # still closed
    assert conn.tcp.state is State.ESTABLISHED and conn.tcp.stats.probes == 3
    # The window opens: everything goes out from the first unacknowledged byte.
    out = peer.see(peer.send("A", window=100))  # 100 << 7
    assert [(s.seq, len(data_of(s))) for s in out] == [(first, 1000)]
    assert bytes(peer.received) == data


# ---------------------------------------------------------------- reordering


def test_out_of_order_segment_gets_an_immediate_dup_ack_and_is_reassembled(bench: Bench) -> None:
    peer, conn = bench.established()
    base = peer.nxt
    later = peer.frame("PA", b"B" * 100, seq=seq_add(base, 100))
    bench.inject(later)
    out = bench.take_tcp()
    assert [(flags(s), s.ack) for s in out] == [("A", base)]  # immediate duplicate ACK
    assert conn.tcp.unread == 0
    # The gap is filled: one ACK at once, covering both.
    out = peer.send("A", b"A" * 100)
    assert [s.ack for s in out] == [seq_add(base, 200)]
    peer.nxt = seq_add(base, 200)
    assert bench.loop.spawn(conn.read()).value() == b"A" * 100 + b"B" * 100


def test_three_segments_in_reverse_order_are_delivered_in_order(bench: Bench) -> None:
    peer, conn = bench.established()
    base = peer.nxt
    acks = []
    for i in (2, 1, 0):
        bench.inject(peer.frame("A", bytes([65 + i]) * 50, seq=seq_add(base, 50 * i)))
        acks += [s.ack for s in bench.take_tcp()]
    assert acks == [base, base, seq_add(base, 150)]
    assert bench.loop.spawn(conn.read()).value() == b"A" * 50 + b"B" * 50 + b"C" * 50


def test_duplicate_segment_is_acked_at_once_and_not_delivered_twice(bench: Bench) -> None:
    peer, conn = bench.established()
    base = peer.nxt
    peer.send("PA", b"once")
    bench.advance(0.04)  # its delayed ACK
    out = peer.send("PA", b"once", seq=base)
    assert [(flags(s), s.ack) for s in out] == [("A", seq_add(base, 4))]
    # Overlapping: old bytes and new ones; only the new ones are taken.
    peer.send("PA", b"nce more", seq=seq_add(base, 1))
    bench.advance(0.04)
    assert bench.loop.spawn(conn.read()).value() == b"once more"
    assert conn.tcp.stats.dup_segments == 2


# ---------------------------------------------------------------- loss


def test_retransmission_timeout_backs_off() -> None:
    # RFC 6298's 1 s minimum RTO (Linux's 200 ms is tested in test_frames_linux.py).
    bench = Bench(TcpConfig(mss=1460, rto_min=1.0))
    peer, conn = bench.established()
    app_send(bench, conn, b"are you there?")
    timed = bench.take_timed()
    t0, first = timed[0]
    assert len(timed) == 1
    for delay in (1.0, 3.0, 7.0, 15.0, 31.0):
        when, out = bench.next_timer()
        assert when == pytest.approx(t0 + delay)
        assert [(s.seq, data_of(s)) for s in out] == [(first.seq, b"are you there?")]
    assert peer.send("A", ack=seq_add(first.seq, 14)) == []
    assert conn.tcp.all_sent_acked and bench.loop.next_deadline() is None
    assert conn.tcp.stats.retransmits == 5


def test_retransmissions_give_up_and_the_reader_sees_a_timeout() -> None:
    # RFC 6298's 1 s minimum RTO (Linux's 200 ms is tested in test_frames_linux.py).
    bench = Bench(TcpConfig(mss=1460, rto_min=1.0))
    peer, conn = bench.established()
    reading = bench.loop.spawn(conn.read())
    app_send(bench, conn, b"hello?")
    bench.take_tcp()
    t0 = bench.now()
    times = []
    while bench.loop.next_deadline() is not None:
        when, out = bench.next_timer()
        times += [when - t0] * len(out)
    # max_retries = 8 retransmissions; the RTO doubles up to rto_max = 60 s.
    assert times == pytest.approx([1, 3, 7, 15, 31, 63, 123, 183])
    assert bench.now() == pytest.approx(t0 + 243)
    assert not bench.layer.conns
    assert reading.done and isinstance(reading.exception, TimeoutError)


def test_after_a_timeout_go_back_n_with_slow_start(bench: Bench) -> None:
    peer, conn = bench.established()
    data = payload_bytes(3 * 1460)
    app_send(bench, conn, data)
    first = bench.take_tcp()
    assert len(first) == 3
    _, out = bench.next_timer()
    assert [s.seq for s in out] == [first[0].seq]  # cwnd is one segment now
    out = peer.see(peer.send("A", ack=seq_add(first[0].seq, 1460)))
    assert [s.seq for s in out] == [first[1].seq, first[2].seq]  # cwnd grew to two


def test_fast_retransmit_after_three_duplicate_acks(bench: Bench) -> None:
    peer, conn = bench.established()
    app_send(bench, conn, payload_bytes(6 * 1460))
    sent = bench.take_tcp()
    assert len(sent) == 6
    ack1 = seq_add(sent[0].seq, 1460)
    assert peer.send("A", ack=ack1) == []
    assert peer.send("A", ack=ack1) == []  # dup 1
    assert peer.send("A", ack=ack1) == []  # dup 2
    out = peer.send("A", ack=ack1)  # dup 3
    assert [(s.seq, len(data_of(s))) for s in out] == [(sent[1].seq, 1460)]
    assert conn.tcp.stats.fast_retransmits == 1 and conn.tcp.in_recovery
    # Well before the RTO; then everything is acknowledged and recovery ends.
    assert bench.now() - 1000.0 < 0.5
    peer.send("A", ack=seq_add(sent[0].seq, 6 * 1460))
    assert conn.tcp.all_sent_acked and not conn.tcp.in_recovery


# ---------------------------------------------------------------- wrap-around


def test_sequence_numbers_wrap_around_2_32_in_both_directions() -> None:
    bench = Bench(iss=2**32 - 1000)
    peer = Peer(bench, isn=2**32 - 700)
    peer, conn = bench.established(peer)
    assert conn.tcp.iss == 2**32 - 1000
    # Peer -> us across the wrap.
    chunks = [payload_bytes(500, salt=i) for i in range(3)]
    acks = []
    for chunk in chunks:
        acks += [s.ack for s in peer.send("PA", chunk)]
        acks += [s.ack for s in bench.advance(0.04)]
    assert acks[-1] == (2**32 - 700 + 1 + 1500) % 2**32 == 801
    assert bench.loop.spawn(conn.read()).value() == b"".join(chunks)
    # Us -> peer across the wrap.
    data = payload_bytes(3000, salt=9)
    app_send(bench, conn, data)
    out = peer.see(bench.take_tcp())
    assert [s.seq for s in out] == [2**32 - 999, 2**32 - 999 + 1460 - 2**32, 1921]
    assert peer.send("A") == []
    assert bytes(peer.received) == data
    assert conn.tcp.all_sent_acked and conn.tcp.snd_una == (2**32 - 999 + 3000) % 2**32
    # And the close across it too.
    bench.loop.spawn(conn.close())
    out = peer.see(bench.take_tcp())
    assert [(flags(s), s.seq) for s in out] == [("FA", 2001)]
    out = peer.see(peer.send("FA"))
    assert [(flags(s), s.ack) for s in out] == [("A", 802)]
    assert conn.tcp.state is State.TIME_WAIT
    bench.close()


# ---------------------------------------------------------------- more shapes


def test_data_with_the_handshake_completing_ack_is_accepted() -> None:
    bench = Bench(TcpConfig(mss=1460, quickack=0))  # the data's ACK is delayed
    server = bench.listen()
    peer = Peer(bench)
    peer.syn()
    assert peer.send("PA", b"hello") == []  # third handshake packet carries data
    conn = bench.accept(server)
    assert conn.tcp.state is State.ESTABLISHED and conn.tcp.unread == 5
    out = bench.advance(0.04)
    assert [s.ack for s in out] == [seq_add(PEER_ISN, 6)]
    bench.close()


def test_response_data_carries_the_ack_and_cancels_the_delayed_one() -> None:
    # Delayed ACK from the first segment: quick-ACK (Linux's start) turned off.
    bench = Bench(TcpConfig(mss=1460, quickack=0))
    peer, conn = bench.established()
    # (The first read may send a window update: the SYN-ACK could offer only 65535.)
    peer.send("PA", b"hi")
    assert bench.loop.spawn(conn.read()).value() == b"hi"
    peer.see(bench.take_tcp())
    for _ in range(3):
        assert peer.send("PA", b"ping") == []
        assert bench.loop.spawn(conn.read()).value() == b"ping"
        bench.loop.spawn(conn.write(b"pong")).value()
        out = peer.see(bench.take_tcp())
        assert [(flags(s), s.ack, data_of(s)) for s in out] == [("PA", peer.nxt, b"pong")]
        assert bench.advance(0.1) == []  # no separate delayed ACK
        assert peer.send("A") == []


async def echo(conn: NativeConnection) -> int:
    """RFC 862 echo on the stream API: what comes in goes back; close at EOF."""
    total = 0
    while data := await conn.read():
        await conn.write(data)
        total += len(data)
    await conn.close()
    return total


def test_echo_app_on_the_stream_api(bench: Bench) -> None:
    peer, conn = bench.established()
    app = bench.loop.spawn(echo(conn))
    sent = b""
    for i in range(20):
        chunk = payload_bytes(700 + 37 * i, salt=i)
        sent += chunk
        peer.see(peer.send("PA", chunk))
    peer.see(bench.advance(1.0))
    peer.send("A")
    assert bytes(peer.received) == sent
    out = peer.see(peer.send("FA"))
    assert app.value() == len(sent)
    assert [flags(s) for s in out][-1] == "FA"
    assert peer.send("A") == []
    assert conn.tcp.state is State.CLOSED and not bench.layer.conns


def test_peer_mss_above_ours_is_capped_at_ours() -> None:
    bench = Bench()
    peer, conn = bench.established(Peer(bench, mss=9000))
    app_send(bench, conn, payload_bytes(4000))
    assert [len(data_of(s)) for s in bench.take_tcp()] == [1460, 1460, 1080]
    bench.close()


def test_peer_wscale_above_14_is_taken_as_14() -> None:
    bench = Bench()
    peer, conn = bench.established(Peer(bench, wscale=15))
    assert conn.tcp.snd_shift == 14
    bench.close()


def test_fin_arriving_before_missing_data_is_held_until_the_gap_fills(bench: Bench) -> None:
    peer, conn = bench.established()
    base = peer.nxt
    out = peer.send("FPA", b"tail", seq=seq_add(base, 4))
    assert [s.ack for s in out] == [base]  # dup ACK; the FIN is not taken yet
    assert conn.tcp.state is State.ESTABLISHED
    out = peer.send("PA", b"head", seq=base)
    assert [s.ack for s in out] == [seq_add(base, 9)]  # data + FIN
    assert conn.tcp.state is State.CLOSE_WAIT
    assert bench.loop.spawn(conn.read()).value() == b"headtail"
    assert bench.loop.spawn(conn.read()).value() == b""


def test_data_beyond_our_window_is_trimmed_and_acked_at_once() -> None:
    bench = Bench(TcpConfig(mss=1460, recv_buffer=4096))
    peer, conn = bench.established(Peer(bench, wscale=None))
    # The SYN-ACK offered 4096 bytes; the peer sends 3 x 1460 = 4380.
    peer.send("A", b"a" * 1460)
    peer.send("A", b"b" * 1460)
    out = peer.send("A", b"c" * 1460)
    assert [(s.ack, s.window) for s in out] == [(seq_add(PEER_ISN, 1 + 4096), 0)]
    assert conn.tcp.unread == 4096
    bench.close()


def test_newreno_partial_ack_retransmits_the_next_hole(bench: Bench) -> None:
    peer, conn = bench.established()
    app_send(bench, conn, payload_bytes(6 * 1460))
    sent = bench.take_tcp()
    seqs = [s.seq for s in sent]
    # The peer got 1, 3, 5, 6 (2 and 4 lost): ACK 2, then three duplicates.
    assert peer.send("A", ack=seqs[1]) == []
    assert peer.send("A", ack=seqs[1]) == []
    assert peer.send("A", ack=seqs[1]) == []
    out = peer.send("A", ack=seqs[1])
    assert [s.seq for s in out] == [seqs[1]]
    # The retransmitted 2 arrives: a partial ACK (up to 4), answered by 4 at once.
    out = peer.send("A", ack=seqs[3])
    assert seqs[3] in [s.seq for s in out]
    assert conn.tcp.in_recovery
    peer.send("A", ack=seq_add(seqs[0], 6 * 1460))
    assert not conn.tcp.in_recovery and conn.tcp.all_sent_acked
    assert conn.tcp.stats.timeouts == 0


def test_rto_follows_the_measured_rtt() -> None:
    bench = Bench(TcpConfig(mss=1460, rto_min=0.2))
    server = bench.listen()
    peer = Peer(bench)
    peer.syn()
    bench.advance(0.1)  # the handshake's round trip: 100 ms
    peer.send("A")
    conn = bench.accept(server)
    assert conn.tcp.srtt == pytest.approx(0.1)
    app_send(bench, conn, b"data")
    t0 = bench.now()
    bench.take_tcp()
    when, out = bench.next_timer()
    # RFC 6298: RTO = SRTT + 4 * RTTVAR = 0.1 + 4 * 0.05.
    assert when - t0 == pytest.approx(0.3) and [data_of(s) for s in out] == [b"data"]
    bench.close()


def test_persist_probe_byte_accepted_moves_on_to_the_next() -> None:
    bench = Bench(TcpConfig(zero_window_probe="byte"))  # RFC 9293's probe, not Linux's
    peer, conn = bench.established()
    peer.send("A", window=0)
    app_send(bench, conn, b"abc")
    first = seq_add(conn.tcp.iss, 1)
    _, out = bench.next_timer()
    assert [(s.seq, data_of(s)) for s in out] == [(first, b"a")]
    peer.send("A", ack=seq_add(first, 1), window=0)  # took the byte, still closed
    _, out = bench.next_timer()
    assert [(s.seq, data_of(s)) for s in out] == [(seq_add(first, 1), b"b")]
    out = peer.see(peer.send("A", ack=seq_add(first, 2), window=10))
    assert [(s.seq, data_of(s)) for s in out] == [(seq_add(first, 2), b"c")]


# ---------------------------------------------------------- loss timers vs queued ACKs


@pytest.mark.parametrize("drain", [True, False])
def test_loss_timer_takes_in_queued_acks_first(drain: bool) -> None:
    """A busy shard reaches due timers before the frames still queued on its device:
    the layer drains the device first, so an ACK waiting there cancels the
    retransmission (the same holds for TLP and RACK's timer)."""
    bench = Bench(TcpConfig(mss=1460))
    peer, conn = bench.established()
    data = payload_bytes(1000)
    app_send(bench, conn, data)
    peer.see(bench.take_tcp())
    queued = peer.frame("A", ack=peer.rcv_nxt)  # arrived, not yet read
    drained: list[int] = []

    def drain_device() -> None:
        drained.append(1)
        bench.inject(queued)

    if drain:
        bench.layer.drain = drain_device
    _, out = bench.next_timer()
    if drain:
        assert drained and out == []  # the ACK was seen: nothing to retransmit
        assert conn.tcp.all_sent_acked and conn.tcp.stats.retransmits == 0
    else:
        assert [data_of(s) for s in out] == [data]  # without it: a spurious resend
