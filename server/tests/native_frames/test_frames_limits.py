"""The native stack under attack, frame by frame: every bound on what a peer can make a
shard hold (limits.py), on the virtual clock. One test per bound, each with its counter."""

from __future__ import annotations

import random

import pytest
from frames_helpers import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, PORT, Bench, Peer, flags, options
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from seashard.net.native.limits import NativeLimits
from seashard.net.native.streams import NativeConnection
from seashard.tcp.connection import State, TcpConfig
from seashard.tcp.reassembly import BLOCK_OVERHEAD

MASK = 0xFFFFFFFF


def close(bench: Bench, conn: NativeConnection) -> None:
    bench.loop.spawn(conn.close()).value()


def write(bench: Bench, conn: NativeConnection, data: bytes) -> None:
    bench.loop.spawn(conn.write(data))


def read(bench: Bench, conn: NativeConnection) -> bytes:
    return bench.loop.spawn(conn.read()).value()


def fill_syn_queue(bench: Bench, n: int, first_port: int = 42000) -> list[Peer]:
    peers = [bench.peer(sport=first_port + i) for i in range(n)]
    for p in peers:
        assert [flags(s) for s in p.syn()] == ["SA"]
    return peers


# ------------------------------------------------------------ half-open connections


def test_half_open_is_freed_after_five_synack_retries_63s_after_the_syn(bench: Bench) -> None:
    server = bench.listen()
    peer = bench.peer()
    t0 = bench.now()
    peer.syn()
    times = []
    while True:
        when, out = bench.next_timer()
        if not out:
            break
        assert [flags(s) for s in out] == ["SA"]
        times.append(when - t0)
    # 1 s initial RTO, doubling: retransmissions at 1, 3, 7, 15, 31 s; freed at 63 s.
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert when - t0 == 63.0
    assert bench.layer.conns == {} and server.half_open == 0
    assert bench.layer.gave_up["synack_retries"] == 1
    assert bench.loop.next_deadline() is None


def test_accept_queue_full_drops_the_final_ack_and_the_retransmitted_synack_recovers() -> None:
    bench = Bench(limits=NativeLimits(accept_backlog=1))
    try:
        server = bench.listen()
        late = bench.peer(sport=41002)
        late.syn()
        bench.peer(sport=41001).handshake()  # fills the accept queue
        assert bench.peer(sport=41003).syn() == []  # a SYN meanwhile is dropped (Linux)
        assert late.send("A") == []  # dropped: nowhere to queue it
        assert bench.layer.limit_drops["accept_queue_full"] == 2
        assert bench.layer.conns[(PEER_IP, 41002, PORT)].tcp.state is State.SYN_RECEIVED
        bench.accept(server)  # room again
        out = late.see(bench.advance(1.0))  # the SYN-ACK again...
        assert [flags(s) for s in out] == ["SA"]
        late.nxt = (late.isn + 1) & MASK
        assert late.send("A") == []  # ...and the peer's ACK of it now completes
        assert bench.accept(server).tcp.state is State.ESTABLISHED
    finally:
        bench.close()


# ------------------------------------------------------------------- SYN cookies


def test_full_syn_queue_answers_with_a_cookie_and_its_ack_opens_a_working_connection() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=3))
    try:
        server = bench.listen()
        fill_syn_queue(bench, 3)
        assert server.half_open == 3
        peer = bench.peer(sport=43000, mss=1400)
        out = peer.syn()
        assert [flags(s) for s in out] == ["SA"]
        synack = out[0]
        assert synack.ack == peer.isn + 1
        # No wscale or SACK without timestamps, and the SYN left no state behind.
        assert options(synack) == {"MSS": 1460}
        assert (PEER_IP, 43000, PORT) not in bench.layer.conns
        assert bench.layer.stats["syncookies_sent"] == 1 and server.half_open == 3
        # The ACK echoing the cookie creates the connection (carrying data at once).
        out = peer.send("PA", b"hello")
        assert bench.layer.stats["syncookies_accepted"] == 1
        conn = bench.accept(server)
        tcp = conn.tcp
        assert tcp.state is State.ESTABLISHED and tcp.iss == synack.seq
        assert tcp.mss == 1300  # 1400 rounded down to the cookie's MSS table
        assert not tcp.wscale_ok and tcp.snd_shift == 0 and tcp.rcv_shift == 0
        assert read(bench, conn) == b"hello"
        write(bench, conn, b"world" * 1000)  # more than one 1300-byte segment
        for _ in range(10):
            segs = peer.see(bench.advance(0.05))
            if segs:
                peer.send("A")
        assert bytes(peer.received) == b"world" * 1000
        assert server.half_open == 3  # the cookie connection never sat in the SYN queue
    finally:
        bench.close()


def test_cookie_with_timestamps_carries_wscale_and_sack_in_tsval() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=1))
    try:
        server = bench.listen()
        fill_syn_queue(bench, 1)
        peer = bench.peer(sport=43100, mss=1460)
        syn_opts = [
            ("MSS", 1460),
            ("SAckOK", b""),
            ("Timestamp", (777, 0)),
            ("NOP", None),
            ("WScale", 9),
        ]
        out = peer.send("S", window=64240, opts=syn_opts)
        assert [flags(s) for s in out] == ["SA"]
        synack = out[0]
        assert [name for name, _ in synack.options] == [
            "MSS",
            "SAckOK",
            "Timestamp",
            "NOP",
            "WScale",
        ]
        tsval, tsecr = dict(synack.options)["Timestamp"]
        assert tsecr == 777
        assert tsval & 0x0F == 9 and tsval & 0x10  # Linux: wscale in bits 0-3, SACK bit 4
        assert (PEER_IP, 43100, PORT) not in bench.layer.conns  # nothing stored
        # The ACK echoes the TSval: the connection gets the peer's shift and SACK back.
        ack_opts = [("NOP", None), ("NOP", None), ("Timestamp", (778, tsval))]
        peer.send("PA", b"hello", opts=ack_opts)
        assert bench.layer.stats["syncookies_accepted"] == 1
        conn = bench.accept(server)
        tcp = conn.tcp
        assert tcp.state is State.ESTABLISHED and tcp.iss == synack.seq
        assert tcp.wscale_ok and tcp.snd_shift == 9 and tcp.rcv_shift == 3
        assert tcp.sack_ok and tcp.ts_ok and tcp.ts_recent == 778
        assert read(bench, conn) == b"hello"
        # Our TSval clock goes on from the cookie's: the next segment's is not older.
        write(bench, conn, b"x")
        seg = bench.take_tcp()[-1]
        assert (dict(seg.options)["Timestamp"][0] - tsval) & 0xFFFFFFFF < 1 << 31
    finally:
        bench.close()


def test_forged_cookie_ack_is_rejected_counted_and_reset() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=1))
    try:
        bench.listen()
        fill_syn_queue(bench, 1)
        peer = bench.peer(sport=43000)
        synack = peer.syn()[0]
        forged = (synack.seq + 1 + 12345) & MASK
        out = peer.send("A", ack=forged)
        assert [(flags(s), s.seq) for s in out] == [("R", forged)]  # as any unknown ACK
        assert bench.layer.stats["syncookies_rejected"] == 1
        assert bench.layer.stats["syncookies_accepted"] == 0
        assert (PEER_IP, 43000, PORT) not in bench.layer.conns
        # The right cookie from another port is not valid for this one either.
        other = bench.peer(sport=43001, isn=peer.isn)
        out = other.send("A", seq=(peer.isn + 1) & MASK, ack=(synack.seq + 1) & MASK)
        assert [flags(s) for s in out] == ["R"] and bench.layer.stats["syncookies_rejected"] == 2
    finally:
        bench.close()


def test_without_recent_cookies_an_ack_is_not_even_checked() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=1))
    try:
        bench.listen()
        out = bench.peer(sport=43000).send("A", seq=1, ack=777)
        assert [flags(s) for s in out] == ["R"]
        assert bench.layer.stats["syncookies_rejected"] == 0
    finally:
        bench.close()


def test_cookie_is_valid_for_a_minute_and_expired_after_two() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=1))
    try:
        server = bench.listen()
        fill_syn_queue(bench, 1)
        fresh, stale = bench.peer(sport=43000), bench.peer(sport=43001, isn=9000)
        fresh.syn()
        stale.syn()
        t0 = bench.now()
        bench.run_to(t0 + 60.0)  # the half-open one is still in the queue (freed at 63 s)
        fresh.send("A")
        assert bench.accept(server).tcp.state is State.ESTABLISHED
        bench.run_to(t0 + 129.0)  # at least two 64 s ticks later
        fill_syn_queue(bench, 1, first_port=44000)  # the queue is full again...
        bench.peer(sport=44500).syn()  # ...and a cookie went out recently
        out = stale.send("A")
        assert [flags(s) for s in out] == ["R"]
        assert bench.layer.stats["syncookies_rejected"] == 1
        assert bench.layer.stats["syncookies_accepted"] == 1
        assert (PEER_IP, 43001, PORT) not in bench.layer.conns
    finally:
        bench.close()


def test_cookies_off_full_syn_queue_drops_syns() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=1, syncookies=False))
    try:
        bench.listen()
        fill_syn_queue(bench, 1)
        assert bench.peer(sport=43000).syn() == []
        assert bench.layer.limit_drops["syn_queue_full"] == 1
        assert bench.layer.stats["syncookies_sent"] == 0
    finally:
        bench.close()


# --------------------------------------------------------------- reassembly


def test_out_of_order_flood_of_tiny_segments_stays_within_the_connection_limit() -> None:
    cfg = TcpConfig(mss=1460, recv_buffer=8192, wscale=None)
    bench = Bench(cfg)
    try:
        peer, conn = bench.established()
        base = peer.nxt
        window = 8192
        for off in range(2, window, 2):  # every other byte, one byte each: a gap before each
            bench.inject(peer.frame("A", b"x", seq=(base + off) & MASK))
        bench.take_tcp()
        reasm = conn.tcp.reassembly
        assert reasm.truesize <= 2 * cfg.recv_buffer  # the per-connection bound (true size)
        assert reasm.held * (1 + BLOCK_OVERHEAD) == reasm.truesize
        assert conn.tcp.stats.ooo_refused > 0
        assert bench.layer.reassembly.refused_conn == conn.tcp.stats.ooo_refused
        # Beyond the window: nothing is kept at all.
        held = reasm.held
        bench.inject(peer.frame("A", b"y" * 100, seq=(base + window + 10) & MASK))
        assert reasm.held == held
        # The connection still works: the gap filled in order, the data delivered.
        peer.send("PA", b"z" * 100)
        bench.advance(0.05)
        assert read(bench, conn).startswith(b"z" * 100)
    finally:
        bench.close()


def test_out_of_order_data_of_many_connections_stays_within_the_shard_budget() -> None:
    budget = 20_000
    bench = Bench(limits=NativeLimits(reassembly_budget=budget))
    try:
        bench.listen()
        conns = []
        for i in range(4):
            peer, conn = bench.established(bench.peer(sport=45000 + i))
            conns.append((peer, conn))
            for k in range(10):  # 1000-byte segments, 1000 bytes apart, after a 1-byte gap
                seq = (peer.nxt + 1 + 2000 * k) & MASK
                bench.inject(peer.frame("A", b"o" * 1000, seq=seq))
                assert bench.layer.reassembly.used <= budget
            bench.take_tcp()  # the duplicate ACKs
        used = bench.layer.reassembly.used
        assert budget - (1000 + BLOCK_OVERHEAD) < used <= budget
        assert bench.layer.reassembly.refused == 40 - used // (1000 + BLOCK_OVERHEAD)
        assert bench.layer.reassembly.peak <= budget
        # Filling each gap delivers what was held and gives the budget back.
        held = [conn.tcp.reassembly.held for _, conn in conns]
        assert held[0] == 10_000 and sum(held) == 1000 * (used // (1000 + BLOCK_OVERHEAD))
        for (peer, conn), h in zip(conns, held, strict=True):
            peer.send("A", b"g")
            assert read(bench, conn) == b"g" + (b"o" * 1000 if h else b"")
        # What was delivered went back to the budget; the rest goes when they close.
        delivered = sum(1 for h in held if h) * (1000 + BLOCK_OVERHEAD)
        assert bench.layer.reassembly.used == used - delivered
        for _, conn in conns:
            conn.abort()
        assert bench.layer.reassembly.used == 0
    finally:
        bench.close()


# -------------------------------------------------------------------- orphans


def test_orphan_in_fin_wait_2_goes_away_after_60s_a_half_closed_one_does_not() -> None:
    bench = Bench()
    try:
        bench.listen()
        p1, orphan = bench.established(bench.peer(sport=46001))
        p2, half = bench.established(bench.peer(sport=46002))
        close(bench, orphan)  # the app is gone: an orphan
        half.shutdown_output()  # the app still reads: not an orphan
        segs = bench.take_tcp()
        for p in (p1, p2):
            p.see(segs)
        p1.send("A")
        p2.send("A")
        assert orphan.tcp.state is State.FIN_WAIT_2 and half.tcp.state is State.FIN_WAIT_2
        t0 = bench.now()
        bench.run_to(t0 + 60.0 - 1e-6)
        assert orphan.key in bench.layer.conns
        bench.run_to(t0 + 60.0)
        assert orphan.key not in bench.layer.conns
        assert bench.layer.gave_up["fin_wait_2_timeout"] == 1
        bench.run_to(t0 + 600.0)
        assert half.key in bench.layer.conns and half.tcp.state is State.FIN_WAIT_2
    finally:
        bench.close()


def _zero_window_peer(bench: Bench, sport: int) -> tuple[Peer, NativeConnection]:
    peer, conn = bench.established(bench.peer(sport=sport))
    write(bench, conn, b"d" * 3000)
    peer.see(bench.take_tcp())
    peer.send("A", window=0)  # took it all, and shut its window
    write(bench, conn, b"more")
    assert bench.take_tcp() == []
    return peer, conn


def _answer_probes(bench: Bench, peers: list[Peer], seconds: float) -> dict[int, list[str]]:
    """Advance ``seconds`` answering every probe with a zero window (the byte refused);
    returns what each peer (by port) was sent."""
    end = bench.now() + seconds
    seen: dict[int, list[str]] = {p.sport: [] for p in peers}
    while (when := bench.loop.next_deadline()) is not None and when <= end:
        for seg in bench.run_to(when):
            seen[seg.dport].append(flags(seg))
            if "R" not in flags(seg):
                peer = next(p for p in peers if p.sport == seg.dport)
                peer.send("A", ack=peer.rcv_nxt, window=0)
    return seen


def test_zero_window_orphan_gives_up_after_its_retries_a_live_connection_does_not() -> None:
    bench = Bench(limits=NativeLimits(orphan_retries=8))
    try:
        bench.listen()
        p1, orphan = _zero_window_peer(bench, 47001)
        p2, alive = _zero_window_peer(bench, 47002)
        close(bench, orphan)
        seen = _answer_probes(bench, [p1, p2], 3600.0)
        assert seen[p1.sport] == ["A"] * 8 + ["RA"]  # eight probes, then a reset
        assert orphan.key not in bench.layer.conns
        assert bench.layer.gave_up["orphan_retries"] == 1
        # The same peer behaviour towards a connection whose app is still there:
        # probing goes on (RFC 1122 4.2.2.17), an hour later too.
        assert alive.key in bench.layer.conns and alive.tcp.state is State.ESTABLISHED
        assert len(seen[p2.sport]) > 8 and "RA" not in seen[p2.sport]
    finally:
        bench.close()


# ------------------------------------------------------------------ TIME_WAIT


def test_time_wait_table_is_bounded_overflow_skips_time_wait_logged_once() -> None:
    bench = Bench(limits=NativeLimits(max_tw_buckets=2))
    try:
        bench.listen()
        conns = []
        for i in range(4):
            peer, conn = bench.established(bench.peer(sport=48000 + i))
            close(bench, conn)
            peer.see(bench.take_tcp())
            peer.send("A")
            out = peer.send("FA")
            assert [flags(s) for s in out] == ["A"]  # the peer's FIN is ACKed either way
            conns.append(conn)
        assert [c.tcp.state for c in conns] == [State.TIME_WAIT] * 2 + [State.CLOSED] * 2
        assert len(bench.layer.time_wait()) == 2 and len(bench.layer.conns) == 2
        assert bench.layer.limit_drops["time_wait_overflow"] == 2
        assert sum("time wait bucket table overflow" in line for line in bench.logs) == 1
        bench.advance(60.0)  # 2 MSL: the table empties, and takes new ones again
        assert bench.layer.time_wait() == []
        peer, conn = bench.established(bench.peer(sport=48010))
        close(bench, conn)
        peer.see(bench.take_tcp())
        peer.send("A")
        peer.send("FA")
        assert conn.tcp.state is State.TIME_WAIT
    finally:
        bench.close()


# ----------------------------------------------------------------------- ARP


def test_arp_cache_is_bounded_and_unsolicited_replies_add_nothing() -> None:
    bench = Bench(arp_options={"max_entries": 8})
    try:
        arp = bench.iface.arp
        for i in range(50):  # spoofed requests for our address: each sender is learned...
            mac = f"02:00:00:00:01:{i:02x}"
            bench.inject(
                Ether(dst="ff:ff:ff:ff:ff:ff", src=mac)
                / ARP(op=1, hwsrc=mac, psrc=f"10.0.0.{100 + i}", pdst=OUR_IP)
            )
        bench.take_frames()
        entries = arp.entries(bench.now())
        assert len(entries) == 8  # ...but the oldest make room
        assert set(entries) == {f"10.0.0.{100 + i}" for i in range(42, 50)}
        assert bench.iface.counters["arp_cache_evictions"] == 50 + 1 - 8  # + the peer's
        for i in range(20):  # replies nobody asked for
            bench.inject(
                Ether(dst=OUR_MAC, src=PEER_MAC)
                / ARP(op=2, hwsrc=PEER_MAC, psrc=f"10.0.0.{200 + i}", hwdst=OUR_MAC, pdst=OUR_IP)
            )
        assert arp.entries(bench.now()) == entries
        assert bench.iface.counters["arp_unsolicited_replies"] == 20
    finally:
        bench.close()


def test_syn_flood_from_spoofed_on_link_sources_keeps_arp_bounded() -> None:
    bench = Bench(limits=NativeLimits(syn_backlog=16), arp_options={"max_entries": 8})
    try:
        bench.listen()
        rng = random.Random(7)
        for i in range(200):
            src = f"10.0.0.{rng.randrange(100, 250)}"
            syn = TCP(sport=1024 + i, dport=PORT, seq=rng.getrandbits(32), flags="S")
            bench.inject(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=src, dst=OUR_IP) / syn)
        assert len(bench.iface.arp.pending()) <= 8
        assert bench.iface.tx_drops["arp_pending_full"] > 0
        assert bench.layer.stats["syncookies_sent"] > 0
        for _ in range(120):  # the driver's ARP polling, by hand: resolutions give up
            bench.loop.advance(1.0)
            bench.iface.poll(bench.now())
        assert bench.iface.arp.pending() == [] and bench.layer.conns == {}
        assert bench.iface.counters["arp_resolution_failures"] > 8
    finally:
        bench.close()


# ------------------------------------------------------------ max connections


def test_max_connections_refuses_with_rst_and_counts_time_wait_does_not_count() -> None:
    bench = Bench(limits=NativeLimits(max_connections=2))
    try:
        bench.listen()
        first, c1 = bench.established(bench.peer(sport=49001))
        bench.established(bench.peer(sport=49002))
        third = bench.peer(sport=49003)
        out = third.syn()
        assert [(flags(s), s.ack) for s in out] == [("RA", (third.isn + 1) & MASK)]
        assert bench.layer.limit_drops["max_connections"] == 1
        assert (PEER_IP, 49003, PORT) not in bench.layer.conns
        close(bench, c1)  # into TIME_WAIT: no longer a live connection
        first.see(bench.take_tcp())
        first.send("A")
        first.send("FA")
        assert c1.tcp.state is State.TIME_WAIT
        assert [flags(s) for s in bench.peer(sport=49004).syn()] == ["SA"]
    finally:
        bench.close()


@pytest.mark.parametrize(
    ("limits", "tlp", "rack"),
    [
        (NativeLimits(), True, True),  # Linux's: TLP and RACK on in the server
        (NativeLimits(tcp_tlp=False), False, True),  # --no-tcp-tlp
        (NativeLimits(tcp_profile="rfc"), False, False),
    ],
)
def test_server_loss_detection_follows_the_profile(
    limits: NativeLimits, tlp: bool, rack: bool
) -> None:
    bench = Bench(limits=limits)
    assert (bench.layer.config.tlp, bench.layer.config.rack) == (tlp, rack)
