"""Idle connections cost the shard nothing per event: an ESTABLISHED connection that has
nothing in flight holds no loop timer, the layer keeps no per-flow table beside its
connection table, and the per-connection objects have no ``__dict__``.  (Memory per
connection is measured by scripts/bench_scale, never asserted here.)"""

from __future__ import annotations

import gc

from frames_helpers import PEER_IP, PEER_PORT, Bench, Peer, flags

from seashard.net.api import SocketAddress
from seashard.net.native.streams import NativeConnection


def echo(bench: Bench, peer: Peer, conn: NativeConnection, data: bytes) -> None:
    """The peer sends ``data``; the app reads it and writes it back; the peer ACKs."""
    reading = bench.loop.spawn(conn.read())
    peer.send("PA", data)
    assert reading.value() == data
    writing = bench.loop.spawn(conn.write(data))
    assert writing.done
    peer.see(bench.take_tcp())
    peer.send("A")


def test_an_idle_established_connection_holds_no_timer(bench: Bench) -> None:
    peer, conn = bench.established()
    assert conn.timer_when is None and bench.loop.next_deadline() is None
    received = bytearray()
    for i in range(3):
        msg = bytes([65 + i]) * 100
        echo(bench, peer, conn, msg)
        received += msg
    assert bytes(peer.received) == bytes(received)
    assert conn.tcp.state.name == "ESTABLISHED" and conn.tcp.bytes_in_flight == 0
    # The delayed ACK (if any) fires; after that nothing is armed for this connection.
    bench.advance(1.0)
    assert conn.timer_when is None and bench.loop.next_deadline() is None


def test_many_idle_connections_leave_no_timers_and_one_table_entry_each(bench: Bench) -> None:
    conns = []
    for i in range(20):
        peer, conn = bench.established(bench.peer(sport=PEER_PORT + i))
        echo(bench, peer, conn, b"x" * 10)
        conns.append(conn)
    bench.advance(1.0)
    assert bench.loop.next_deadline() is None
    assert all(c.timer_when is None for c in conns)
    assert len(bench.layer.conns) == 20
    # The per-flow segment count lives on the connection, not in a per-shard table.
    assert not hasattr(bench.layer, "segment_counts")
    assert all(c.segments_in == conns[0].segments_in > 0 for c in conns)


def test_native_connection_has_no_instance_dict(bench: Bench) -> None:
    _peer, conn = bench.established()
    assert not hasattr(conn, "__dict__")
    assert not hasattr(conn.tcp, "__dict__")
    # Accepted connections share their listener's local address object.
    listener = bench.layer.listeners[conn.local_address.port]
    assert conn.local_address is listener.local_address


def test_connections_from_one_peer_hold_its_address_once(bench: Bench) -> None:
    server = bench.listen()
    results = []
    for i in range(3):
        bench.peer(sport=PEER_PORT + i).handshake()
        accepting = bench.loop.spawn(server.accept())
        results.append(accepting.value())
    conns = [r.connection for r in results]
    # one string for the peer's address, not one per connection (each frame brings its own)
    assert len({id(c.key[0]) for c in conns}) == 1
    for i, (result, conn) in enumerate(zip(results, conns, strict=True)):
        # no remote address object until asked: the key says it all
        held = gc.get_referents(conn) + gc.get_referents(result)
        assert not [o for o in held if isinstance(o, SocketAddress) and o is not conn.local_address]
        assert result.remote_address == conn.remote_address == SocketAddress(PEER_IP, PEER_PORT + i)
        assert str(conn.remote_address) == f"{PEER_IP}:{PEER_PORT + i}"


def test_segments_in_counts_what_the_connection_was_handed(bench: Bench) -> None:
    peer, conn = bench.established()
    before = conn.segments_in
    assert before == 2  # the SYN and the handshake's ACK
    out = peer.send("PA", b"hello")
    assert conn.segments_in == before + 1
    assert all("R" not in flags(s) for s in out)
