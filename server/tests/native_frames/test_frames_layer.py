"""The TcpLayer's own duties through frames: active open, listener lifecycle and backlog,
TIME_WAIT reuse, app-closed connections, software-RSS forwarding."""

from __future__ import annotations

from frames_helpers import (
    OUR_IP,
    PEER_IP,
    PEER_PORT,
    PORT,
    Bench,
    Peer,
    data_of,
    flags,
    seq_add,
)

from seashard.net.api import SocketAddress
from seashard.net.native import tcp_layer
from seashard.net.native.limits import NativeLimits
from seashard.tcp.connection import State, TcpConfig
from seashard.virtual_loop import Proc

KEY = (PEER_IP, PEER_PORT, PORT)
MASK = 0xFFFFFFFF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & MASK) < 2**31


# ---------------------------------------------------------------- active open


def start_connect(bench: Bench, port: int = 80) -> tuple[Proc, Peer]:
    proc = bench.loop.spawn(bench.layer.connect(SocketAddress(PEER_IP, port)))
    out = bench.take_tcp()
    assert len(out) == 1 and flags(out[0]) == "S", [s.summary() for s in out]
    syn = out[0]
    assert syn.sport in tcp_layer.EPHEMERAL
    assert syn.sport % bench.layer.shards == bench.layer.shard_id
    peer = Peer(bench, sport=port, dport=syn.sport, isn=777_000)
    peer.see(out)
    return proc, peer


def test_active_open(bench: Bench) -> None:
    proc, peer = start_connect(bench)
    assert not proc.done
    assert peer.our_iss is not None
    out = peer.send("SA", opts=peer.syn_options())
    assert [(flags(s), s.seq, s.ack) for s in out] == [
        ("A", seq_add(peer.our_iss, 1), seq_add(777_000, 1))
    ]
    conn = proc.value()
    assert conn.tcp.state is State.ESTABLISHED
    assert conn.remote_address == SocketAddress(PEER_IP, 80)
    assert conn.local_address == SocketAddress(OUR_IP, peer.dport)
    bench.loop.spawn(conn.write(b"GET / HTTP/1.0\r\n\r\n")).value()
    assert [data_of(s) for s in peer.see(bench.take_tcp())] == [b"GET / HTTP/1.0\r\n\r\n"]


def test_active_open_syn_options(bench: Bench) -> None:
    bench.loop.spawn(bench.layer.connect(SocketAddress(PEER_IP, 80)))
    syn = bench.take_tcp()[0]
    # Linux's SYN: mss, sackOK, TS val ecr, nop, wscale (the shift fitting 256 KiB).
    assert [name for name, _ in syn.options] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
    got = dict(syn.options)
    assert got["MSS"] == 1460 and got["WScale"] == 3 and got["Timestamp"][1] == 0
    assert syn.ack == 0 and syn.window == 65535


def test_active_open_refused(bench: Bench) -> None:
    proc, peer = start_connect(bench)
    assert peer.send("RA", seq=0) == []
    assert proc.done and isinstance(proc.exception, ConnectionRefusedError)
    assert not bench.layer.conns


def test_active_open_timeout_raises_timeout_error(bench: Bench) -> None:
    proc, _ = start_connect(bench)
    t0 = bench.now()
    times = []
    while not proc.done:
        when, out = bench.next_timer()
        times += [when - t0] * len(out)
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert bench.now() == t0 + 63.0
    # The posix stack's connect() raises TimeoutError (ETIMEDOUT) here; so must this one.
    assert isinstance(proc.exception, TimeoutError), repr(proc.exception)


def test_simultaneous_open(bench: Bench) -> None:
    proc, peer = start_connect(bench)
    assert peer.our_iss is not None
    out = peer.send("S", opts=peer.syn_options())  # crossing SYN, no ACK
    assert [(flags(s), s.seq, s.ack) for s in out] == [("SA", peer.our_iss, seq_add(777_000, 1))]
    assert not proc.done
    out = peer.send("SA", seq=777_000, opts=peer.syn_options())
    assert proc.done and proc.value().tcp.state is State.ESTABLISHED


def test_ack_of_our_syn_with_a_bad_ack_is_reset(bench: Bench) -> None:
    proc, peer = start_connect(bench)
    out = peer.send("SA", ack=12345, opts=peer.syn_options())
    assert [(flags(s), s.seq) for s in out] == [("R", 12345)]
    assert not proc.done


# ---------------------------------------------------------------- listener lifecycle


def test_abort_accept_wakes_the_acceptor_and_resets_queued_connections(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    peer.handshake()
    assert len(server.pending) == 1
    server.abort_accept()
    out = bench.take_tcp()
    assert [(flags(s), s.seq) for s in out] == [("RA", seq_add(peer.rcv_nxt, 0))]
    assert KEY not in bench.layer.conns
    waiting = bench.loop.spawn(server.accept())
    assert waiting.done and isinstance(waiting.exception, ConnectionAbortedError)
    # A SYN to the port now meets no listener.
    out = bench.peer(sport=41000).syn()
    assert [flags(s) for s in out] == ["RA"]


def test_abort_accept_wakes_a_waiting_acceptor(bench: Bench) -> None:
    server = bench.listen()
    waiting = bench.loop.spawn(server.accept())
    assert not waiting.done
    server.abort_accept()
    bench.loop.pump()
    assert waiting.done and isinstance(waiting.exception, ConnectionAbortedError)


def test_handshake_completing_after_the_listener_closed_is_reset(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    synack = peer.syn()[0]
    server.abort_accept()
    out = peer.send("A")
    # Nobody can ever accept it: it must not linger as an orphan ESTABLISHED connection.
    assert [(flags(s), s.seq) for s in out] == [("RA", seq_add(synack.seq, 1))]
    assert KEY not in bench.layer.conns and not server.pending


def test_accept_queue_full_drops_syns_silently() -> None:
    bench = Bench(limits=NativeLimits(accept_backlog=1))
    try:
        server = bench.listen()
        bench.peer(sport=41001).handshake()  # waits in the accept queue
        assert bench.peer(sport=41003).syn() == []
        assert bench.layer.limit_drops["accept_queue_full"] == 1
        bench.accept(server)
        assert [flags(s) for s in bench.peer(sport=41003).syn()] == ["SA"]
    finally:
        bench.close()


def test_syn_carrying_data_is_acked_without_the_data(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    bench.inject(peer.frame("S", b"early", opts=peer.syn_options()))
    synack = bench.take_tcp()[0]
    assert flags(synack) == "SA" and synack.ack == seq_add(peer.isn, 1)
    peer.see([synack])
    peer.nxt = seq_add(peer.isn, 1)
    peer.send("A")
    peer.send("PA", b"early")
    bench.advance(0.04)
    assert bench.accept(bench.layer.listeners[PORT]).tcp.unread == 5


# ---------------------------------------------------------------- TIME_WAIT reuse


def test_reopened_time_wait_connection_starts_above_the_old_sequence_space() -> None:
    # A fixed ISN generator: the new incarnation would reuse the old ISS. RFC 1122
    # 4.2.2.13 lets a SYN reopen TIME-WAIT only if the new ISS is above every
    # sequence number the old incarnation used (Linux: old SND.NXT + 65535 + 2).
    bench = Bench(iss=1_000_000)
    peer, conn = bench.established()
    bench.loop.spawn(conn.write(b"x" * 50_000)).value()
    out = peer.see(bench.take_tcp())
    while out:
        out = peer.send("A")
    bench.loop.spawn(conn.close()).value()
    peer.see(bench.take_tcp())
    peer.see(peer.send("FA"))
    assert conn.tcp.state is State.TIME_WAIT
    old_max = conn.tcp.snd_max
    new = Peer(bench, isn=seq_add(peer.nxt, 10_000))
    out = new.syn()
    assert [flags(s) for s in out] == ["SA"]
    assert seq_gt(out[0].seq, old_max), (out[0].seq, old_max)
    bench.close()


# ---------------------------------------------------------------- app-closed connections


def test_close_with_unread_data_reopens_the_window_at_once() -> None:
    bench = Bench(TcpConfig(mss=1460, recv_buffer=8192))
    peer, conn = bench.established(Peer(bench, wscale=None))
    for _ in range(5):
        peer.send("A", b"q" * 1460)
    peer.send("PA", b"r" * (8192 - 5 * 1460))
    bench.advance(0.04)
    assert conn.tcp.rcv_wnd == 0
    bench.loop.spawn(conn.close()).value()  # the app never read: the data is discarded
    out = peer.see(bench.take_tcp())
    assert "FA" in [flags(s) for s in out]
    # The discarded bytes free the buffer: the peer must learn it without having to probe.
    assert out[-1].window == 8192, [(flags(s), s.window) for s in out]
    bench.close()


# ---------------------------------------------------------------- software RSS


def test_segments_for_another_shard_are_forwarded_not_answered(bench: Bench) -> None:
    forwarded: list[tuple[int, str, bytes]] = []
    layer = bench.layer
    layer.shards = 2
    layer.forward = lambda owner, src, seg: forwarded.append((owner, src, seg))
    layer.owner_of = lambda rip, rport, lport: 1
    bench.listen()
    assert bench.peer().syn() == []
    assert len(forwarded) == 1 and forwarded[0][:2] == (1, PEER_IP)
    assert layer.stats["segments_forwarded"] == 1
    # The owner (here: the same layer, playing shard 1) processes it without forwarding.
    layer.shard_id = 1
    layer.on_forwarded(PEER_IP, forwarded[0][2])
    assert [flags(s) for s in bench.take_tcp()] == ["SA"]
    # A damaged forwarded segment is counted, not raised.
    layer.on_forwarded(PEER_IP, forwarded[0][2][:10])
    assert layer.stats["segments_malformed"] == 1


def test_replies_to_our_own_active_open_stay_with_the_opener(bench: Bench) -> None:
    layer = bench.layer
    forwarded: list[int] = []
    layer.forward = lambda owner, src, seg: forwarded.append(owner)
    layer.owner_of = lambda rip, rport, lport: 1 - layer.shard_id
    layer.shards = 2
    proc, peer = start_connect(bench)  # a local port = 0 (mod 2): ours
    peer.send("SA", opts=peer.syn_options())
    assert proc.done and forwarded == []
