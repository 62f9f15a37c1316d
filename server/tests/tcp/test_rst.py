"""Resets and RFC 5961 challenge ACKs."""

from __future__ import annotations

import pytest

from seashard.tcp import Connection, Segment, State, TcpConfig, TcpError

from .helpers import ISS, PEER_ISS, A, F, Peer, R, S, config, only, open_active, open_passive


def _in_state(state: State) -> tuple[Connection, Peer]:
    """An established connection driven into ``state``."""
    if state is State.SYN_RECEIVED:
        peer = Peer()
        conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig())
        peer.absorb(conn.segments_out())
        return conn, peer
    conn, peer = open_active()
    if state is State.ESTABLISHED:
        pass
    elif state is State.FIN_WAIT_1:
        conn.close(0.0)
        conn.segments_out()  # the peer has not seen our FIN
    elif state is State.FIN_WAIT_2:
        conn.close(0.0)
        peer.absorb(conn.segments_out())
        conn.on_segment(peer.ack(), 0.0)
    elif state is State.CLOSE_WAIT:
        conn.on_segment(peer.fin(), 0.0)
    elif state is State.CLOSING:
        conn.close(0.0)
        conn.segments_out()
        conn.on_segment(peer.fin(), 0.0)
    elif state is State.LAST_ACK:
        conn.on_segment(peer.fin(), 0.0)
        conn.close(0.0)
    conn.segments_out()
    assert conn.state is state
    return conn, peer


RESET_ERRORS = {
    State.SYN_RECEIVED: TcpError.RESET,
    State.ESTABLISHED: TcpError.RESET,
    State.FIN_WAIT_1: TcpError.RESET,
    State.FIN_WAIT_2: TcpError.RESET,
    State.CLOSE_WAIT: TcpError.RESET,
    State.CLOSING: None,
    State.LAST_ACK: None,
}


@pytest.mark.parametrize("state", list(RESET_ERRORS), ids=lambda s: s.name)
def test_valid_rst_closes(state: State) -> None:
    conn, peer = _in_state(state)
    conn.on_segment(peer.rst(), 1.0)
    assert conn.state is State.CLOSED
    assert conn.error == RESET_ERRORS[state]
    assert conn.segments_out() == []
    assert conn.next_deadline() is None


@pytest.mark.parametrize("state", list(RESET_ERRORS), ids=lambda s: s.name)
def test_rst_in_window_not_exact_gets_challenge_ack(state: State) -> None:
    conn, peer = _in_state(state)
    conn.on_segment(peer.rst(seq=peer.nxt + 100), 1.0)
    assert conn.state is state
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == conn.rcv_nxt
    assert conn.stats.challenge_acks == 1


@pytest.mark.parametrize("state", list(RESET_ERRORS), ids=lambda s: s.name)
def test_rst_out_of_window_ignored(state: State) -> None:
    conn, peer = _in_state(state)
    conn.on_segment(peer.rst(seq=peer.nxt + 10_000_000), 1.0)
    conn.on_segment(peer.rst(seq=peer.nxt - 1), 1.0)
    assert conn.state is state
    assert conn.segments_out() == []


def test_rst_after_challenge_ack_with_right_seq_closes():
    conn, peer = open_passive()
    conn.on_segment(peer.rst(seq=peer.nxt + 5), 1.0)
    challenge = only(conn.segments_out())
    # A legitimate peer answers the challenge with a RST at exactly SEG.ACK.
    conn.on_segment(peer.rst(seq=challenge.ack), 1.1)
    assert conn.is_closed and conn.error is TcpError.RESET


def test_rst_in_syn_received_of_simultaneous_open_is_refused():
    a = Connection.connect(100, 0.0, TcpConfig())
    a.segments_out()
    a.on_segment(Segment(900, 0, S, 65535), 0.0)
    assert a.state is State.SYN_RECEIVED
    a.segments_out()
    a.on_segment(Segment(901, 0, R, 0), 0.1)
    assert a.is_closed and a.error is TcpError.REFUSED


@pytest.mark.parametrize(
    "state",
    [State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.LAST_ACK],
    ids=lambda s: s.name,
)
def test_syn_in_synchronized_state_gets_challenge_ack(state: State) -> None:
    conn, peer = _in_state(state)
    for seq in (peer.nxt, peer.nxt + 100, PEER_ISS - 1000):  # whatever its sequence number
        conn.on_segment(Segment(seq, 0, S, 65535, mss=1460), 1.0)
        ack = only(conn.segments_out())
        assert ack.flags == A and ack.ack == conn.rcv_nxt and ack.seq == conn.snd_max
    assert conn.state is state
    assert conn.stats.challenge_acks == 3


def test_challenge_ack_rate_limit():
    conn, peer = open_passive(cfg=config(challenge_ack_limit=3, challenge_ack_interval=1.0))
    for i in range(10):
        conn.on_segment(Segment(peer.nxt, 0, S, 100), 5.0 + i * 0.01)
    assert len(conn.segments_out()) == 3
    assert conn.stats.challenge_acks == 3 and conn.stats.challenge_acks_suppressed == 7
    conn.on_segment(peer.rst(seq=peer.nxt + 1), 6.0)  # a new interval
    assert len(conn.segments_out()) == 1
    assert conn.state is State.ESTABLISHED


def test_ack_of_unsent_data_gets_challenge_ack_and_is_dropped():
    conn, peer = open_passive()
    conn.send(b"abc", 0.0)
    conn.segments_out()
    conn.on_segment(peer.data(b"evil", ack=ISS + 500), 0.1)
    ack = only(conn.segments_out())
    assert ack.flags == A and ack.ack == PEER_ISS + 1  # the data was not accepted
    assert conn.unread == 0 and conn.snd_una == ISS + 1
    assert conn.stats.challenge_acks == 1


def test_ack_too_old_gets_challenge_ack():
    conn, peer = open_passive(peer=Peer(window=1000))
    conn.send(b"x" * 1000, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.1)  # SND.UNA = ISS + 1001, MAX.SND.WND = 1000
    conn.on_segment(peer.data(b"old ack", ack=ISS), 0.2)  # below SND.UNA - MAX.SND.WND
    assert conn.unread == 0
    assert only(conn.segments_out()).flags == A
    assert conn.stats.challenge_acks == 1


def test_old_but_plausible_ack_is_ignored_and_data_accepted():
    conn, peer = open_passive(peer=Peer(window=5000))
    conn.send(b"x" * 1000, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.1)
    conn.on_segment(peer.data(b"fine", ack=ISS + 500), 0.2)  # old ACK, within MAX.SND.WND
    assert conn.recv() == b"fine" and conn.snd_una == ISS + 1001
    assert conn.stats.challenge_acks == 0


def test_segment_without_ack_is_dropped_in_established():
    conn, peer = open_passive()
    conn.on_segment(peer.seg(F, b"noack"), 0.1)
    assert conn.unread == 0 and conn.state is State.ESTABLISHED


def test_out_of_window_data_gets_ack_not_accepted():
    conn, peer = open_active(cfg=config(recv_buffer=10000, wscale=None))
    conn.on_segment(peer.data(b"far", seq=peer.nxt + 50_000, advance=False), 0.1)
    ack = only(conn.segments_out())
    assert ack.ack == PEER_ISS + 1 and conn.unread == 0
    assert conn.stats.ooo_segments == 0
