"""Every close sequence through frames, TIME_WAIT on the virtual clock, and its bind rule."""

from __future__ import annotations

import errno

import pytest
from frames_helpers import PEER_IP, PEER_PORT, PORT, Bench, Peer, data_of, flags, seq_add

from seashard.net.api import BindError
from seashard.net.native.streams import NativeConnection
from seashard.tcp.connection import State, TcpConfig

MSL2 = 60.0  # 2 * the default msl of 30 s
KEY = (PEER_IP, PEER_PORT, PORT)


def close(bench: Bench, conn: NativeConnection) -> None:
    bench.loop.spawn(conn.close()).value()


def into_time_wait(bench: Bench) -> tuple[Peer, NativeConnection]:
    """Server closes first; the peer ACKs our FIN, then sends its own, which we ACK."""
    peer, conn = bench.established()
    close(bench, conn)
    peer.see(bench.take_tcp())
    assert peer.send("A") == []
    out = peer.send("FA")
    assert [flags(s) for s in out] == ["A"]
    assert conn.tcp.state is State.TIME_WAIT
    return peer, conn


def test_server_closes_first_fin_wait_then_time_wait_for_exactly_2msl(bench: Bench) -> None:
    peer, conn = bench.established()
    iss = conn.tcp.iss
    close(bench, conn)
    out = peer.see(bench.take_tcp())
    assert [(flags(s), s.seq, s.ack) for s in out] == [("FA", seq_add(iss, 1), peer.nxt)]
    assert conn.tcp.state is State.FIN_WAIT_1
    assert peer.send("A") == []  # ACK of our FIN
    assert conn.tcp.state is State.FIN_WAIT_2
    # FIN-WAIT-2 waits for the peer (no timer by default), and may still receive data.
    peer.send("PA", b"last words")
    bench.advance(0.04)
    out = peer.send("FA")
    assert [(flags(s), s.seq, s.ack) for s in out] == [("A", seq_add(iss, 2), peer.nxt)]
    assert conn.tcp.state is State.TIME_WAIT
    entered = bench.now()
    assert conn.tcp.time_wait_until == entered + MSL2
    assert bench.layer.time_wait() == [conn] and bench.layer.live() == []
    assert bench.run_to(entered + MSL2 - 1e-6) == []
    assert KEY in bench.layer.conns and conn.tcp.state is State.TIME_WAIT
    assert bench.run_to(entered + MSL2) == []  # no frame: it just goes
    assert KEY not in bench.layer.conns and conn.tcp.state is State.CLOSED
    assert bench.loop.next_deadline() is None


def test_fin_follows_queued_data_in_the_same_segment(bench: Bench) -> None:
    peer, conn = bench.established()
    bench.loop.spawn(conn.write(b"Seastar is the future!\n")).value()
    close(bench, conn)
    out = peer.see(bench.take_tcp())
    assert [flags(s) for s in out] == ["PA", "FA"]
    assert out[1].seq == seq_add(out[0].seq, len(data_of(out[0])))
    assert bytes(peer.received) == b"Seastar is the future!\n"
    out = peer.send("FA")  # ACKs data and FIN, and closes too
    assert [flags(s) for s in out] == ["A"]
    assert conn.tcp.state is State.TIME_WAIT


def test_unacked_fin_is_retransmitted() -> None:
    # RFC 6298's 1 s minimum RTO (Linux's 200 ms is tested in test_frames_linux.py).
    bench = Bench(TcpConfig(mss=1460, rto_min=1.0))
    peer, conn = bench.established()
    close(bench, conn)
    fin = bench.take_tcp()[0]
    t0 = bench.now()
    when, out = bench.next_timer()
    assert when == t0 + 1.0
    assert [(flags(s), s.seq) for s in out] == [("FA", fin.seq)]


def test_peer_closes_first_close_wait_then_last_ack(bench: Bench) -> None:
    peer, conn = bench.established()
    reading = bench.loop.spawn(conn.read())
    fin_seq = peer.nxt
    out = peer.send("FA")
    assert [(flags(s), s.ack) for s in out] == [("A", seq_add(fin_seq, 1))]  # ACKed at once
    assert conn.tcp.state is State.CLOSE_WAIT
    assert reading.value() == b""  # end of stream
    # Half-close: we may still send.
    bench.loop.spawn(conn.write(b"still here")).value()
    assert [data_of(s) for s in peer.see(bench.take_tcp())] == [b"still here"]
    close(bench, conn)
    out = peer.see(bench.take_tcp())
    assert [flags(s) for s in out] == ["FA"]
    assert conn.tcp.state is State.LAST_ACK
    assert peer.send("A") == []
    assert KEY not in bench.layer.conns and conn.tcp.state is State.CLOSED  # no TIME_WAIT
    assert bench.loop.next_deadline() is None
    assert bench.layer.time_wait_on(PORT) == 0


def test_last_ack_fin_retransmitted_until_acked(bench: Bench) -> None:
    peer, conn = bench.established()
    peer.send("FA")
    close(bench, conn)
    fin = bench.take_tcp()[0]
    _, out = bench.next_timer()
    assert [(flags(s), s.seq) for s in out] == [("FA", fin.seq)]
    assert peer.send("A", ack=seq_add(fin.seq, 1)) == []
    assert KEY not in bench.layer.conns


def test_simultaneous_close_goes_through_closing(bench: Bench) -> None:
    peer, conn = bench.established()
    iss = conn.tcp.iss
    close(bench, conn)
    our_fin = bench.take_tcp()[0]
    assert flags(our_fin) == "FA"
    # The peer's FIN crossed ours: it does not acknowledge our FIN.
    out = peer.send("FA", ack=seq_add(iss, 1))
    assert [(flags(s), s.ack) for s in out] == [("A", peer.nxt)]
    assert conn.tcp.state is State.CLOSING
    assert peer.send("A", ack=seq_add(iss, 2)) == []  # the ACK of our FIN
    assert conn.tcp.state is State.TIME_WAIT
    entered = bench.now()
    bench.run_to(entered + MSL2 - 1e-6)
    assert KEY in bench.layer.conns
    bench.run_to(entered + MSL2)
    assert KEY not in bench.layer.conns


def test_fin_ack_covering_our_fin_in_fin_wait_1_goes_straight_to_time_wait(bench: Bench) -> None:
    peer, conn = bench.established()
    close(bench, conn)
    peer.see(bench.take_tcp())
    out = peer.send("FA")
    assert [flags(s) for s in out] == ["A"]
    assert conn.tcp.state is State.TIME_WAIT


def test_time_wait_re_acks_a_retransmitted_fin_and_restarts_2msl(bench: Bench) -> None:
    peer, conn = into_time_wait(bench)
    fin_seq = seq_add(peer.nxt, -1)
    bench.advance(30.0)
    out = peer.send("FA", seq=fin_seq)
    assert [(flags(s), s.seq, s.ack) for s in out] == [("A", seq_add(conn.tcp.iss, 2), peer.nxt)]
    again = bench.now()
    assert conn.tcp.time_wait_until == again + MSL2
    bench.run_to(again + MSL2 - 1e-6)
    assert KEY in bench.layer.conns
    bench.run_to(again + MSL2)
    assert KEY not in bench.layer.conns


def test_time_wait_answers_old_data_and_old_syn_with_an_ack(bench: Bench) -> None:
    peer, conn = into_time_wait(bench)
    out = peer.send("PA", b"old", seq=seq_add(peer.nxt, -10))
    assert [(flags(s), s.ack) for s in out] == [("A", peer.nxt)]
    out = peer.send("S", seq=seq_add(peer.nxt, -100))  # below RCV.NXT: not a new incarnation
    assert [(flags(s), s.ack) for s in out] == [("A", peer.nxt)]
    assert conn.tcp.state is State.TIME_WAIT


def test_new_syn_above_rcv_nxt_reopens_a_time_wait_connection(bench: Bench) -> None:
    peer, old = into_time_wait(bench)
    new_isn = seq_add(peer.nxt, 100_000)
    new = Peer(bench, isn=new_isn)
    out = new.syn()
    assert [(flags(s), s.ack) for s in out] == [("SA", seq_add(new_isn, 1))]
    assert old.tcp.state is State.CLOSED
    conn = bench.layer.conns[KEY]
    assert conn is not old and conn.tcp.state is State.SYN_RECEIVED


def test_listen_during_time_wait_needs_reuse_address(bench: Bench) -> None:
    server = bench.listen()
    into_time_wait(bench)
    server.abort_accept()
    with pytest.raises(OSError) as info:
        bench.listen()
    assert isinstance(info.value, BindError)
    assert info.value.errno == errno.EADDRINUSE
    assert str(info.value) == "bind: Address already in use"
    assert bench.layer.time_wait_on(PORT) == 1
    # Another port is free.
    bench.listen(PORT + 1).abort_accept()
    # With reuse_address the same listen succeeds.
    again = bench.listen(reuse_address=True)
    assert bench.layer.listeners[PORT] is again
    again.abort_accept()
    # Once TIME_WAIT is over, no option is needed.
    bench.advance(MSL2)
    assert bench.layer.time_wait_on(PORT) == 0
    assert bench.listen() is bench.layer.listeners[PORT]


def test_listen_on_a_port_already_listening_is_refused(bench: Bench) -> None:
    bench.listen()
    with pytest.raises(OSError) as info:
        bench.listen(reuse_address=True)
    assert info.value.errno == errno.EADDRINUSE


def test_fin_wait_2_timeout_when_configured() -> None:
    bench = Bench(TcpConfig(mss=1460, fin_wait_2_timeout=10.0))
    peer, conn = bench.established()
    close(bench, conn)
    peer.see(bench.take_tcp())
    peer.send("A")
    assert conn.tcp.state is State.FIN_WAIT_2
    t0 = bench.now()
    bench.run_to(t0 + 10.0 - 1e-6)
    assert KEY in bench.layer.conns
    bench.run_to(t0 + 10.0)
    assert KEY not in bench.layer.conns
    bench.close()


def test_data_after_the_app_closed_is_acked_and_discarded(bench: Bench) -> None:
    peer, conn = bench.established()
    close(bench, conn)
    peer.see(bench.take_tcp())
    peer.send("A")
    for _ in range(4):
        peer.send("A", b"x" * 1460)
    bench.advance(0.04)
    assert conn.tcp.unread == 0  # nobody will read it: the window stays open
    out = peer.send("FA")
    assert [(flags(s), s.ack, s.window) for s in out] == [("A", peer.nxt, (256 * 1024) >> 3)]
