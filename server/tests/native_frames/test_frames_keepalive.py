"""Keepalive through frames on the virtual clock."""

from __future__ import annotations

import pytest
from frames_helpers import PEER_IP, PEER_PORT, PORT, Bench, data_of, flags, seq_add

from seashard.tcp.connection import State

KEY = (PEER_IP, PEER_PORT, PORT)


@pytest.fixture
def ka_bench(bench: Bench) -> Bench:
    bench.layer.config.keepalive_idle = 10.0
    bench.layer.config.keepalive_interval = 5.0
    bench.layer.config.keepalive_count = 3
    return bench


def test_keepalive_probe_after_idle_and_answered(ka_bench: Bench) -> None:
    bench = ka_bench
    peer, conn = bench.established()
    t0 = bench.now()
    assert bench.run_to(t0 + 10.0 - 1e-6) == []
    out = bench.run_to(t0 + 10.0)
    # SEG.SEQ = SND.NXT - 1, no data: the peer must answer with an ACK.
    assert [(flags(s), s.seq, s.ack, data_of(s)) for s in out] == [
        ("A", conn.tcp.iss, peer.nxt, b"")
    ]
    assert peer.send("A") == []  # the answer resets the idle timer
    when, out = bench.next_timer()
    assert when == t0 + 20.0 and len(out) == 1
    assert conn.tcp.stats.keepalives == 2 and conn.tcp.state is State.ESTABLISHED


def test_traffic_postpones_keepalive(ka_bench: Bench) -> None:
    bench = ka_bench
    peer, conn = bench.established()
    t0 = bench.now()
    bench.run_to(t0 + 6.0)
    peer.send("PA", b"ping")
    bench.advance(0.04)  # its delayed ACK
    assert bench.run_to(t0 + 16.0 - 1e-6) == []
    out = bench.run_to(t0 + 16.0)
    assert [flags(s) for s in out] == ["A"] and out[0].seq == conn.tcp.iss


def test_unanswered_keepalives_reset_the_connection(ka_bench: Bench) -> None:
    bench = ka_bench
    peer, conn = bench.established()
    reading = bench.loop.spawn(conn.read())
    t0 = bench.now()
    log = []
    while bench.loop.next_deadline() is not None:
        when, out = bench.next_timer()
        log += [(when - t0, flags(s)) for s in out]
    # Probes at idle, idle + interval, ... count of them; then RST.
    assert log == [(10.0, "A"), (15.0, "A"), (20.0, "A"), (25.0, "RA")]
    assert KEY not in bench.layer.conns
    assert reading.done and isinstance(reading.exception, TimeoutError)


def test_no_keepalive_by_default(bench: Bench) -> None:
    bench.established()
    assert bench.loop.next_deadline() is None
    assert bench.advance(3600.0) == []


def test_keepalive_not_sent_while_data_is_outstanding(ka_bench: Bench) -> None:
    bench = ka_bench
    bench.layer.config.rto_min = 1.0  # RFC 6298's minimum: retransmissions at 1, 3, 7 s
    peer, conn = bench.established()
    bench.loop.spawn(conn.write(b"unacked")).value()
    first = bench.take_tcp()[0]
    t0 = bench.now()
    out = bench.run_to(t0 + 10.0)
    # Only retransmissions (1 s, 3 s, 7 s): no keepalive probe among them.
    assert [(s.seq, data_of(s)) for s in out] == [(first.seq, b"unacked")] * 3
    assert conn.tcp.stats.keepalives == 0
    peer.send("A", ack=seq_add(first.seq, 7))
