"""Passive open through frames: SYN -> SYN-ACK (options) -> ACK -> accept queue."""

from __future__ import annotations

from frames_helpers import (
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    PEER_PORT,
    PORT,
    Bench,
    data_of,
    flags,
    options,
)
from scapy.layers.inet import IP, TCP, IPOption_RR
from scapy.layers.l2 import Ether

from seashard.net.api import SocketAddress
from seashard.tcp.connection import State


def test_syn_gets_syn_ack_with_mss_and_wscale(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    out = peer.syn()
    assert len(out) == 1
    synack = out[0]
    assert flags(synack) == "SA"
    assert (synack.sport, synack.dport) == (PORT, PEER_PORT)
    assert synack.ack == peer.isn + 1
    assert synack.window == 65535  # a SYN's window is never scaled
    opts = options(synack)
    assert opts["MSS"] == 1460  # MTU 1500 - 40
    assert opts["WScale"] == 3  # Linux's: the smallest shift fitting 256 KiB in 16 bits
    assert "SAckOK" not in opts and "Timestamp" not in opts  # the peer offered neither
    assert data_of(synack) == b""
    # Half-open: not yet in the accept queue.
    assert not server.pending and server.half_open == 1
    conn = bench.layer.conns[(PEER_IP, PEER_PORT, PORT)]
    assert conn.tcp.state is State.SYN_RECEIVED


def test_ack_completes_handshake_and_queues_connection(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    accepting = bench.loop.spawn(server.accept())
    assert not accepting.done
    synack = peer.handshake()
    assert accepting.done
    result = accepting.value()
    conn = result.connection
    assert result.remote_address == SocketAddress(PEER_IP, PEER_PORT)
    assert conn.local_address == SocketAddress(OUR_IP, PORT)
    assert conn.tcp.state is State.ESTABLISHED
    assert conn.tcp.iss == synack.seq and conn.tcp.rcv_nxt == peer.isn + 1
    assert server.half_open == 0 and not server.pending
    assert bench.layer.live() == [conn]


def test_accept_queue_holds_several_connections_in_order(bench: Bench) -> None:
    server = bench.listen()
    for sport in (40001, 40002, 40003):
        bench.peer(sport=sport).handshake()
    assert [c.remote_address.port for c in server.pending] == [40001, 40002, 40003]
    assert bench.accept(server).remote_address.port == 40001


def test_lost_syn_ack_is_retransmitted_and_repeated_syn_answered(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    synack = peer.syn()[0]
    # The peer's SYN again (our SYN-ACK was lost): the same SYN-ACK again.
    again = peer.send("S", seq=peer.isn, opts=peer.syn_options())
    assert [(flags(s), s.seq, s.ack) for s in again] == [("SA", synack.seq, peer.isn + 1)]
    # Nobody answers: the SYN-ACK is retransmitted on the RTO timer (1 s, then 2 s later).
    t0 = bench.now()
    when, out = bench.next_timer()
    assert when == t0 + 1.0 and [(flags(s), s.seq) for s in out] == [("SA", synack.seq)]
    when, out = bench.next_timer()
    assert when == t0 + 3.0 and [flags(s) for s in out] == ["SA"]
    assert peer.send("A") == []
    assert bench.layer.conns[(PEER_IP, PEER_PORT, PORT)].tcp.state is State.ESTABLISHED


def test_half_open_connection_gives_up_after_syn_retries(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    peer.syn()
    times = []
    while bench.loop.next_deadline() is not None:
        when, out = bench.next_timer()
        if out:
            times.append(round(when - 1000.0, 6))
    # syn_retries = 5 retransmissions (1, 2, 4, 8, 16 s apart), then dropped after 32 s more.
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert bench.now() == 1000.0 + 63.0
    assert not bench.layer.conns and server.half_open == 0 and not server.pending


def test_syn_with_fin_or_rst_or_bare_fin_to_listener_is_dropped(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    assert peer.send("SF", advance=False) == []
    assert peer.send("R", advance=False) == []
    assert peer.send("F", advance=False) == []
    assert not bench.layer.conns


def test_peer_without_options_gets_default_mss_and_no_wscale(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer(mss=None, wscale=None)
    synack = peer.syn()[0]
    opts = options(synack)
    assert opts["MSS"] == 1460  # we still announce ours
    assert "WScale" not in opts  # offered only in reply to the peer's
    assert peer.send("A") == []
    conn = bench.layer.conns[(PEER_IP, PEER_PORT, PORT)]
    assert conn.tcp.mss == 536  # RFC 9293 default when no MSS option came


def test_syn_ack_to_listener_port_is_answered_with_rst(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    out = peer.send("SA", seq=777, ack=12345)
    assert [(flags(s), s.seq) for s in out] == [("R", 12345)]
    assert isinstance(out[0], TCP) and not bench.layer.conns


def test_linux_style_syn_options_are_answered_in_linux_layout(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    opts = [
        ("MSS", 1460),
        ("SAckOK", b""),
        ("Timestamp", (123456, 0)),
        ("NOP", None),
        ("WScale", 7),
    ]
    out = peer.send("S", window=64240, opts=opts)
    assert [flags(s) for s in out] == ["SA"]
    got = out[0].options
    assert [name for name, _ in got] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
    tsval, tsecr = dict(got)["Timestamp"]
    assert tsecr == 123456
    # Linux's bytes: mss, sackOK packed with TS (12 bytes), nop, wscale.
    raw = bytes(out[0])[20 : out[0].dataofs * 4]
    assert raw == (
        bytes.fromhex("020405b40402080a")
        + tsval.to_bytes(4, "big")
        + tsecr.to_bytes(4, "big")
        + bytes.fromhex("01030303")
    )
    # Later segments carry timestamps: the handshake's ACK echoes our TSval.
    ack_opts = [("NOP", None), ("NOP", None), ("Timestamp", (123457, tsval))]
    assert peer.send("A", opts=ack_opts) == []
    tcp = bench.layer.conns[(PEER_IP, PEER_PORT, PORT)].tcp
    assert tcp.state is State.ESTABLISHED and tcp.ts_ok and tcp.sack_ok
    assert tcp.ts_recent == 123457


def test_ethernet_padding_after_a_short_frame_is_ignored(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer()
    frame = bytes(peer.frame("S", opts=peer.syn_options()))
    bench.inject(frame + b"\xaa" * 6)  # a NIC pads to 60 bytes; not always with zeros
    assert [flags(s) for s in peer.see(bench.take_tcp())] == ["SA"]
    ack = bytes(peer.frame("A"))
    assert len(ack) == 54
    bench.inject(ack + b"\x55" * 6)
    assert not bench.iface.drops
    assert bench.layer.conns[(PEER_IP, PEER_PORT, PORT)].tcp.state is State.ESTABLISHED


def test_syn_in_an_ipv4_packet_with_options(bench: Bench) -> None:
    bench.listen()
    bench.inject(
        Ether(dst=OUR_MAC, src=PEER_MAC)
        / IP(src=PEER_IP, dst=OUR_IP, options=[IPOption_RR()])
        / TCP(sport=PEER_PORT, dport=PORT, flags="S", seq=99)
    )
    out = bench.take_tcp()
    assert [(flags(s), s.ack) for s in out] == [("SA", 100)]


def test_handshake_ack_carrying_fin_gives_an_accepted_connection_at_eof(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    peer.syn()
    out = peer.send("FA")
    assert [(flags(s), s.ack) for s in out] == [("A", peer.isn + 2)]
    conn = bench.accept(server)
    assert conn.tcp.state is State.CLOSE_WAIT
    assert bench.loop.spawn(conn.read()).value() == b""


def test_peer_isn_at_the_top_of_the_sequence_space(bench: Bench) -> None:
    bench.listen()
    peer = bench.peer(isn=2**32 - 1)
    synack = peer.syn()[0]
    assert synack.ack == 0  # 2**32 - 1 + 1, mod 2**32
    assert peer.send("A") == []
    out = peer.send("PA", b"x" * 10)
    out += bench.advance(0.04)
    assert [s.ack for s in out] == [10]
