"""Resets through frames: closed ports, stray segments, RFC 5961 checks, aborts."""

from __future__ import annotations

import pytest
from frames_helpers import PEER_IP, PEER_PORT, PORT, Bench, Peer, data_of, flags, seq_add

from seashard.tcp.connection import State

KEY = (PEER_IP, PEER_PORT, PORT)


def test_syn_to_a_port_without_listener_gets_rst_ack(bench: Bench) -> None:
    peer = bench.peer(dport=9999, isn=123456)
    out = peer.syn()
    assert [(flags(s), s.seq, s.ack, s.window) for s in out] == [("RA", 0, 123457, 0)]
    assert (out[0].sport, out[0].dport) == (9999, PEER_PORT)
    assert data_of(out[0]) == b"" and out[0].options == []
    assert bench.layer.stats["syn_no_listener"] == 1 and bench.layer.stats["rst_sent"] == 1
    assert not bench.layer.conns


def test_syn_with_data_to_a_closed_port_acks_the_data_too(bench: Bench) -> None:
    peer = bench.peer(dport=9999, isn=2**32 - 2)
    out = peer.send("S", b"abcd")
    assert [(flags(s), s.ack) for s in out] == [("RA", 3)]  # seq + 1 + 4, mod 2**32


@pytest.mark.parametrize("listening", [False, True])
def test_stray_ack_gets_rst_with_seq_equal_to_its_ack(bench: Bench, listening: bool) -> None:
    if listening:
        bench.listen()
    peer = bench.peer()
    out = peer.send("A", seq=42, ack=987654)
    assert [(flags(s), s.seq, s.ack) for s in out] == [("R", 987654, 0)]
    out = peer.send("PA", b"data", seq=42, ack=2**32 - 1)
    assert [(flags(s), s.seq) for s in out] == [("R", 2**32 - 1)]
    assert not bench.layer.conns


def test_rst_to_nothing_is_not_answered(bench: Bench) -> None:
    peer = bench.peer(dport=9999)
    assert peer.send("R", seq=1) == []
    assert peer.send("RA", seq=1, ack=2) == []


def test_valid_rst_closes_the_connection(bench: Bench) -> None:
    peer, conn = bench.established()
    reading = bench.loop.spawn(conn.read())
    assert peer.send("R") == []  # seq == RCV.NXT exactly
    assert conn.tcp.state is State.CLOSED and KEY not in bench.layer.conns
    assert reading.done and isinstance(reading.exception, ConnectionResetError)
    writing = bench.loop.spawn(conn.write(b"x"))
    assert writing.done and isinstance(writing.exception, ConnectionResetError)
    assert bench.loop.next_deadline() is None
    # Later segments of that flow meet no connection.
    out = peer.send("A", seq=peer.nxt, ack=1234)
    assert [(flags(s), s.seq) for s in out] == [("R", 1234)]


def test_rst_with_ack_at_rcv_nxt_closes_too(bench: Bench) -> None:
    peer, conn = bench.established()
    assert peer.send("RA") == []
    assert KEY not in bench.layer.conns


@pytest.mark.parametrize("offset", [-1, -1000, 2**31, 65535, 256 * 1024 + 1])
def test_out_of_window_rst_is_ignored(bench: Bench, offset: int) -> None:
    peer, conn = bench.established()
    assert peer.send("R", seq=seq_add(peer.nxt, offset)) == []
    assert conn.tcp.state is State.ESTABLISHED and KEY in bench.layer.conns
    assert conn.tcp.stats.challenge_acks == 0


# Right after the handshake the window the peer knows is the SYN-ACK's 65535.
@pytest.mark.parametrize("offset", [1, 1000, 65534])
def test_in_window_inexact_rst_gets_a_challenge_ack(bench: Bench, offset: int) -> None:
    peer, conn = bench.established()
    out = peer.send("R", seq=seq_add(peer.nxt, offset))
    assert [(flags(s), s.seq, s.ack) for s in out] == [("A", seq_add(conn.tcp.iss, 1), peer.nxt)]
    assert conn.tcp.state is State.ESTABLISHED
    # The peer (if it really meant it) answers with the exact RST.
    assert peer.send("R") == []
    assert KEY not in bench.layer.conns


def test_syn_on_an_established_connection_gets_a_challenge_ack(bench: Bench) -> None:
    peer, conn = bench.established()
    for seq in (peer.nxt, seq_add(peer.nxt, 5000), seq_add(peer.nxt, -5000)):
        out = peer.send("S", seq=seq, opts=peer.syn_options())
        assert [(flags(s), s.ack) for s in out] == [("A", peer.nxt)]
    assert conn.tcp.state is State.ESTABLISHED


def test_ack_beyond_anything_sent_gets_a_challenge_ack(bench: Bench) -> None:
    peer, conn = bench.established()
    out = peer.send("PA", b"zzz", ack=seq_add(conn.tcp.iss, 5000))
    assert [(flags(s), s.seq, s.ack) for s in out] == [
        ("A", seq_add(conn.tcp.iss, 1), peer.nxt - 3)
    ]
    assert conn.tcp.unread == 0  # the segment was dropped


def test_challenge_acks_are_rate_limited(bench: Bench) -> None:
    peer, conn = bench.established()
    answers = [len(peer.send("R", seq=seq_add(peer.nxt, 10))) for _ in range(15)]
    assert answers == [1] * 10 + [0] * 5
    assert conn.tcp.stats.challenge_acks_suppressed == 5
    bench.advance(1.0)
    assert len(peer.send("R", seq=seq_add(peer.nxt, 10))) == 1


def test_rst_in_syn_received_drops_the_half_open_connection(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    peer.syn()
    assert server.half_open == 1
    assert peer.send("R") == []
    assert KEY not in bench.layer.conns and server.half_open == 0 and not server.pending
    assert bench.loop.next_deadline() is None


def test_bad_ack_in_syn_received_is_reset(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    synack = peer.syn()[0]
    out = peer.send("A", ack=seq_add(synack.seq, 7))
    assert [(flags(s), s.seq) for s in out] == [("R", seq_add(synack.seq, 7))]


def test_rst_in_time_wait_is_ignored(bench: Bench) -> None:
    peer, conn = bench.established()
    bench.loop.spawn(conn.close()).value()
    peer.see(bench.take_tcp())
    peer.send("FA")
    assert conn.tcp.state is State.TIME_WAIT
    assert peer.send("R") == []  # RFC 1337
    assert conn.tcp.state is State.TIME_WAIT and KEY in bench.layer.conns


def test_app_abort_sends_rst(bench: Bench) -> None:
    peer, conn = bench.established()
    bench.loop.spawn(conn.write(b"partial")).value()
    sent = peer.see(bench.take_tcp())
    conn.abort()
    out = bench.take_tcp()
    assert [(flags(s), s.seq, s.ack) for s in out] == [("RA", seq_add(sent[0].seq, 7), peer.nxt)]
    assert KEY not in bench.layer.conns and bench.loop.next_deadline() is None


def test_second_peer_on_another_port_is_unaffected_by_a_reset(bench: Bench) -> None:
    server = bench.listen()
    a, conn_a = bench.established(Peer(bench, sport=50001))
    b, conn_b = bench.established(Peer(bench, sport=50002))
    a.send("R")
    assert conn_a.tcp.is_closed and conn_b.tcp.state is State.ESTABLISHED
    assert [s.ack for s in b.send("FA")] == [b.nxt]
    assert not server.pending
