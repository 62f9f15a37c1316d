"""Odds and ends: per-connection options, config validation, probes that are
never answered, handshake recovery, listener helper."""

from __future__ import annotations

import pytest

from seashard.tcp import Connection, Segment, State, TcpConfig, TcpError, is_initial_syn

from .helpers import ISS, PEER_ISS, A, F, P, Peer, R, S, config, only, open_active, open_passive


def test_set_keepalive_at_runtime():
    conn, peer = open_passive()
    assert conn.next_deadline() is None
    conn.set_keepalive(5.0, now=2.0, interval=1.0, count=2)
    assert conn.next_deadline() == 5.0  # idle counted from the last segment (t=0)
    conn.on_timer(5.0)
    assert only(conn.segments_out()).seq == ISS  # SND.UNA - 1
    conn.set_keepalive(None, now=5.5)
    assert conn.next_deadline() is None


def test_set_nagle_at_runtime():
    conn, peer = open_passive()
    conn.set_nagle(True)
    conn.send(b"a", 0.0)
    conn.send(b"b", 0.0)
    assert [s.payload for s in conn.segments_out()] == [b"a"]
    conn.set_nagle(False)
    conn.send(b"c", 0.0)
    assert [s.payload for s in conn.segments_out()] == [b"bc"]


def test_config_shared_between_connections_is_not_mutated():
    cfg = TcpConfig()
    a, _ = open_passive(cfg=cfg)
    b, _ = open_passive(cfg=cfg)
    a.set_nagle(True)
    assert cfg.nagle is False and b.nagle is False


@pytest.mark.parametrize(
    "kw",
    [
        {"mss": 10},
        {"wscale": -2},
        {"wscale": 15},
        {"recv_buffer": 0},
        {"send_buffer": -5},
        {"rto_min": 0},
        {"cc": "bbr"},
    ],
)
def test_config_validation(kw):
    with pytest.raises(ValueError):
        TcpConfig(**kw)


def test_wscale_limited_for_small_receive_buffer():
    # A 4 KiB buffer with a shift of 14 could only ever offer a zero window.
    conn = Connection.connect(ISS, 0.0, TcpConfig(recv_buffer=4096, wscale=14))
    assert only(conn.segments_out()).wscale == 9  # granularity 512 = buffer/8


def test_unanswered_zero_window_probes_time_out():
    cfg = config(rto_min=0.5, rto_initial=0.5, max_retries=3, rto_max=4.0)
    conn, peer = open_passive(cfg=cfg, peer=Peer(window=100))
    conn.send(b"x" * 500, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(window=0), 0.1)
    probes = 0
    while not conn.is_closed:
        conn.on_timer(conn.next_deadline())
        probes += len(conn.segments_out())
    assert probes == 4 and conn.error is TcpError.TIMED_OUT


def test_answered_zero_window_probes_continue_forever():
    cfg = config(rto_min=0.5, rto_initial=0.5, max_retries=3, rto_max=4.0)
    conn, peer = open_passive(cfg=cfg, peer=Peer(window=100))
    conn.send(b"x" * 500, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(window=0), 0.1)
    for _ in range(20):
        now = conn.next_deadline()
        conn.on_timer(now)
        assert len(conn.segments_out()) == 1
        conn.on_segment(peer.ack(window=0), now + 0.01)
    assert conn.state is State.ESTABLISHED and conn.stats.probes == 20


def test_lost_handshake_ack_recovered_by_synack_retransmission():
    """Passive side: the peer's handshake ACK is lost; our SYN-ACK goes again
    and the (established) peer's answer completes the handshake."""
    a = Connection.connect(100, 0.0, TcpConfig())
    b = Connection.accept(only(a.segments_out()), 900, 0.0, TcpConfig())
    a.on_segment(only(b.segments_out()), 0.01)
    only(a.segments_out())  # lost
    assert a.is_established and b.state is State.SYN_RECEIVED
    b.on_timer(1.0)
    synack = only(b.segments_out())
    a.on_segment(synack, 1.01)
    ack = only(a.segments_out())  # the established side answers the old SYN-ACK
    assert ack.flags == A and ack.ack == 901
    b.on_segment(ack, 1.02)
    assert b.state is State.ESTABLISHED


def test_handshake_ack_lost_but_data_completes_it():
    a = Connection.connect(100, 0.0, TcpConfig())
    b = Connection.accept(only(a.segments_out()), 900, 0.0, TcpConfig())
    a.on_segment(only(b.segments_out()), 0.01)
    a.segments_out()  # lost
    a.send(b"hello", 0.02)
    b.on_segment(only(a.segments_out()), 0.03)
    assert b.state is State.ESTABLISHED and b.recv() == b"hello"


def test_synack_answers_sack_and_timestamps_offered():
    syn = Peer().syn(sack_permitted=True, timestamps=(1, 0))
    conn = Connection.accept(syn, ISS, 0.0, TcpConfig())
    sa = only(conn.segments_out())
    assert sa.sack_permitted and sa.timestamps is not None and sa.timestamps[1] == 1
    assert conn.sack_ok and conn.ts_ok


def test_synack_does_not_echo_sack_or_timestamps_when_turned_off():
    syn = Peer().syn(sack_permitted=True, timestamps=(1, 0))
    conn = Connection.accept(syn, ISS, 0.0, TcpConfig(sack=False, timestamps=False))
    sa = only(conn.segments_out())
    assert not sa.sack_permitted and sa.timestamps is None
    assert not conn.sack_ok and not conn.ts_ok


def test_is_initial_syn():
    assert is_initial_syn(Segment(1, 0, S, 10))
    assert not is_initial_syn(Segment(1, 0, S | A, 10))
    assert not is_initial_syn(Segment(1, 0, S | R, 10))
    assert not is_initial_syn(Segment(1, 0, S | F, 10))


def test_repr_and_str_are_readable():
    conn, peer = open_active()
    assert "ESTABLISHED" in repr(conn)
    conn.send(b"abc", 0.0)
    seg = only(conn.segments_out())
    assert str(seg) == f"P. {ISS + 1}:{ISS + 4}(3) ack {PEER_ISS + 1} win 65535"


def test_stats_count_segments_and_bytes():
    conn, peer = open_passive()
    conn.send(b"x" * 3000, 0.0)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.data(b"y" * 10), 0.1)
    st = conn.stats
    assert st.bytes_out == 3000 and st.bytes_in == 10
    # SYN-ACK + three data segments; the data's ACK is delayed: we sent just before it
    # arrived (Linux's pingpong mode)
    assert st.segments_out == 1 + 3
    assert st.segments_in == 3  # SYN, handshake ACK, data


def test_psh_data_from_peer_delivered_and_acked_on_timer():
    conn, peer = open_passive()
    conn.on_segment(peer.seg(A | P, b"q"), 0.0)
    assert conn.readable and not conn.at_eof
    deadline = conn.next_deadline()
    if deadline is not None:  # None: quick-ACK at the start, the ACK is already out
        conn.on_timer(deadline)
    assert only(conn.segments_out()).ack == PEER_ISS + 2
