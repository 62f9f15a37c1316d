"""virtio-net offloads through frames: the vnet header, GRO segments in, TSO segments out,
partial checksums, malformed headers counted and dropped, and the plain path when the
device has no offloads."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import pytest
from frames_helpers import (
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_ISN,
    PEER_MAC,
    Bench,
    Peer,
    check_ip_frame,
    data_of,
    flags,
    seq_add,
)
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from seashard.admin import prometheus_text
from seashard.net.native.devices import (
    ALL_OFFLOADS,
    NO_OFFLOADS,
    MemoryDevice,
    _VnetRx,
    offloads_label,
)
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.net.native.stack import NativeStack
from seashard.net.native.streams import NativeConnection
from seashard.net.native.tcp_layer import TcpLayer
from seashard.tcp.connection import TSO_MAX, TcpConfig
from seashard.wire import vnet
from seashard.wire.errors import MalformedError

MSS = 1460


def payload_bytes(n: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt) % 251 for i in range(n))


class OffloadBench(Bench):
    """A Bench whose device (and Interface) have ``offloads``; what is sent is kept with
    its gso_size and csum_partial (``take_sent``), and can be seen as the kernel would
    put it on the wire (``take_wire``)."""

    def __init__(
        self, config: TcpConfig | None = None, offloads: frozenset[str] = ALL_OFFLOADS, **kw: Any
    ) -> None:
        super().__init__(config, **kw)
        self.dev.offloads = offloads
        self.iface.offloads = offloads

    def _transmit(self, frame: bytes, gso_size: int = 0, csum_partial: bool = False) -> bool:
        self.sent_at.append(self.loop.time())
        return self.dev.send(frame, gso_size, csum_partial)

    def take_sent(self) -> list[tuple[Ether, int, bool]]:
        self.sent_at = []
        return [(Ether(f), g, c) for f, g, c in self.dev.take_sent_info()]

    def take_frames(self) -> list[tuple[float, Ether]]:
        """What the kernel puts on the wire for what we sent: cut, checksums completed
        (so the Bench's checks and the Peer see real segments)."""
        times, self.sent_at = self.sent_at, []
        return [
            (t, Ether(wire))
            for t, (f, g, c) in zip(times, self.dev.take_sent_info(), strict=True)
            for wire in vnet.software_offload(f, g, c)
        ]

    def take_wire(self) -> list[TCP]:
        return self.take_tcp()

    def inject_trusted(self, frame: Any) -> None:
        """A frame whose device vouched for its checksum (DATA_VALID / NEEDS_CSUM)."""
        self.iface.receive(bytes(frame), self.loop.time(), csum_valid=True)
        self.loop.pump()


def app_send(bench: Bench, conn: NativeConnection, data: bytes) -> None:
    assert conn.tcp.send(data, bench.now()) == len(data)
    bench.layer.kick(conn)


def tcp_frame(payload: bytes = b"x" * 3000, flags_: str = "PA") -> bytes:
    return bytes(
        Ether(dst=PEER_MAC, src=OUR_MAC)
        / IP(src=OUR_IP, dst=PEER_IP, id=100, flags="DF")
        / TCP(sport=1234, dport=40000, seq=7, ack=9, flags=flags_, options=[("NOP", None)] * 4)
        / payload
    )


# ---------------------------------------------------------------- the header


def test_vnet_header_for_tso_and_partial_checksum_round_trips() -> None:
    frame = tcp_frame()
    raw = vnet.header_for(frame, MSS, True)
    assert len(raw) == vnet.VNET_HDR_LEN == 10
    hdr, rest = vnet.split(raw + frame)
    assert bytes(rest) == frame
    assert hdr == vnet.VnetHeader(
        flags=vnet.F_NEEDS_CSUM,
        gso_type=vnet.GSO_TCPV4,
        hdr_len=14 + 20 + 24,
        gso_size=MSS,
        csum_start=34,
        csum_offset=16,
    )
    assert hdr.build() == raw and hdr.needs_csum and hdr.csum_ok and not hdr.data_valid
    # Partial checksum alone: no GSO.
    alone = vnet.VnetHeader.parse(vnet.header_for(frame, 0, True))
    assert (alone.flags, alone.gso_type, alone.gso_size, alone.csum_start) == (1, 0, 0, 34)
    assert vnet.header_for(frame, 0, False) == vnet.PLAIN == bytes(10)
    # DATA_VALID, as the kernel hands over a checked frame.
    valid = vnet.VnetHeader(flags=vnet.F_DATA_VALID)
    assert vnet.split(valid.build() + frame)[0].csum_ok


def test_header_fields_are_in_the_hosts_byte_order() -> None:
    import sys

    raw = vnet.VnetHeader(0, 1, 0x0102, 0x0304, 0x0506, 0x0708).build()
    order = sys.byteorder
    assert raw == bytes((0, 1)) + b"".join(
        v.to_bytes(2, order) for v in (0x0102, 0x0304, 0x0506, 0x0708)
    )


def test_partial_checksum_completes_to_the_real_one() -> None:
    frame = bytearray(tcp_frame())
    real = Ether(bytes(frame))[TCP].chksum
    seg_len = len(frame) - 34
    partial = vnet.partial_checksum(bytes(frame[26:30]), bytes(frame[30:34]), seg_len)
    frame[50:52] = partial.to_bytes(2, "big")
    assert vnet.checksum_is_partial(frame)
    assert Ether(vnet.complete_checksum(frame))[TCP].chksum == real


def test_software_gso_cuts_as_the_kernel_does() -> None:
    data = payload_bytes(4000)
    frame = tcp_frame(data, "FPA")
    segs = [Ether(f) for f in vnet.tcp4_segment(frame, MSS)]
    assert [len(data_of(s[TCP])) for s in segs] == [1460, 1460, 1080]
    assert [s[TCP].seq for s in segs] == [7, 7 + 1460, 7 + 2920]
    assert [flags(s[TCP]) for s in segs] == ["A", "A", "FPA"]  # FIN and PSH on the last
    assert [s[IP].id for s in segs] == [100, 101, 102]
    assert all(s[TCP].options == [("NOP", None)] * 4 for s in segs)
    for s in segs:
        check_ip_frame(s)
    assert b"".join(data_of(s[TCP]) for s in segs) == data


MALFORMED = {
    "truncated": b"\x00" * 6,
    "unknown_flags": vnet.VnetHeader(flags=0x10).build(),
    "unknown_gso_type": vnet.VnetHeader(gso_type=7, gso_size=MSS).build(),
    "unsupported_gso_type": vnet.VnetHeader(gso_type=vnet.GSO_TCPV6, gso_size=MSS).build(),
    "gso_size_zero": vnet.VnetHeader(gso_type=vnet.GSO_TCPV4, gso_size=0).build(),
    "csum_beyond_frame": vnet.VnetHeader(flags=1, csum_start=9000, csum_offset=16).build(),
    "bad_csum_offset": vnet.VnetHeader(flags=1, csum_start=34, csum_offset=3).build(),
    "hdr_len_beyond_frame": vnet.VnetHeader(hdr_len=60000).build(),
    "ecn_without_gso": vnet.VnetHeader(gso_type=vnet.GSO_ECN).build(),
    "bad_csum_start": vnet.VnetHeader(
        flags=1, gso_type=1, gso_size=MSS, csum_start=14, csum_offset=16
    ).build(),
}


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_malformed_vnet_header_raises_its_reason(reason: str) -> None:
    hdr = MALFORMED[reason]
    with pytest.raises(MalformedError) as info:
        vnet.split(hdr if len(hdr) < 10 else hdr + tcp_frame())
    assert info.value.reason == reason


def test_gso_on_a_frame_that_is_not_ipv4_tcp_is_malformed() -> None:
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(psrc=PEER_IP, pdst=OUR_IP))
    hdr = vnet.VnetHeader(gso_type=vnet.GSO_TCPV4, gso_size=MSS).build()
    with pytest.raises(MalformedError) as info:
        vnet.split(hdr + arp)
    assert info.value.reason == "gso_not_tcpv4"


def test_random_vnet_headers_never_raise_anything_but_malformed() -> None:
    rng = random.Random(11)
    frame = tcp_frame()
    for _ in range(5000):
        raw = bytes(rng.getrandbits(8) for _ in range(10))
        try:
            hdr, _ = vnet.split(raw + frame)
        except MalformedError:
            continue
        assert hdr.gso in (vnet.GSO_NONE, vnet.GSO_TCPV4)


def test_transmit_headers_from_the_cache_are_the_computed_ones() -> None:
    # header_for remembers its answer per (TCP data offset, gso_size) for IPv4 frames
    # without options; every frame shape must still get the header computed for it.
    plain_ip = tcp_frame()
    with_ip_options = bytes(
        Ether(dst=PEER_MAC, src=OUR_MAC)
        / IP(src=OUR_IP, dst=PEER_IP, options=b"\x01\x01\x01\x00")
        / TCP(sport=1, dport=2)
        / (b"z" * 100)
    )
    no_tcp_options = bytes(Ether() / IP(src=OUR_IP, dst=PEER_IP) / TCP() / (b"q" * 10))
    for _ in range(2):  # the second round answers from the cache
        for frame in (plain_ip, with_ip_options, no_tcp_options):
            for gso, partial in ((0, True), (MSS, True), (536, True), (0, False)):
                want = vnet.PLAIN if not gso and not partial else vnet._tcp4_header(frame, gso)
                assert vnet.header_for(frame, gso, partial) == want
    h = vnet.VnetHeader.parse(vnet.header_for(with_ip_options, 0, True))
    assert h.csum_start == 14 + 24 and h.hdr_len == 14 + 24 + 20


def test_device_counts_a_malformed_header_by_reason_and_drops_the_frame() -> None:
    # The receive path TapDevice and PacketDevice share (header buffer, frame buffer).
    rx = _VnetRx()
    frame = tcp_frame()

    def read(hdr: bytes) -> bytes | None:
        rx._hdr[:] = hdr
        rx._buf[: len(frame)] = frame
        return rx._take(10 + len(frame))

    assert read(MALFORMED["gso_size_zero"]) is None
    assert read(MALFORMED["csum_beyond_frame"]) is None
    assert read(MALFORMED["csum_beyond_frame"]) is None
    assert rx._take(4) is None  # shorter than a header
    assert rx.vnet_drops == Counter(gso_size_zero=1, csum_beyond_frame=2, truncated=1)
    assert read(vnet.PLAIN) == frame and not rx.rx_csum_valid
    assert read(vnet.VnetHeader(flags=vnet.F_DATA_VALID).build()) == frame and rx.rx_csum_valid
    gso = vnet.header_for(frame, MSS, True)
    assert read(gso) == frame and rx.rx_csum_valid and rx.stats["rx_gso_frames"] == 1
    # The memory device's vnet entry point does the same.
    dev = MemoryDevice()
    dev.inject_vnet(MALFORMED["unknown_gso_type"] + frame)
    dev.inject_vnet(gso + frame)
    assert dev.vnet_drops == Counter(unknown_gso_type=1)
    assert dev.recv() == frame and dev.rx_csum_valid and dev.recv() is None


def test_a_repeated_header_is_judged_as_the_first_one_for_every_frame() -> None:
    # The receive path remembers the last valid header without GSO; what it accepts
    # on that memory must be what a full check accepts, frame by frame.
    rx = _VnetRx()
    long, short = tcp_frame(), tcp_frame(b"")[:40]  # the partial checksum ends at 52

    def read(hdr: bytes, frame: bytes) -> bytes | None:
        rx._hdr[:] = hdr
        rx._buf[: len(frame)] = frame
        return rx._take(10 + len(frame))

    partial = vnet.header_for(long, 0, True)  # NEEDS_CSUM at 34 + 16
    valid = vnet.VnetHeader(flags=vnet.F_DATA_VALID).build()
    hint = vnet.VnetHeader(hdr_len=54).build()  # asks for nothing: the checksum is ours to check
    for _ in range(2):
        assert read(partial, long) == long and rx.rx_csum_valid
        assert read(partial, short) is None  # the same header, a frame too short for it
        assert read(valid, short) == short and rx.rx_csum_valid
        assert read(vnet.PLAIN, long) == long and not rx.rx_csum_valid
        assert read(hint, long) == long and not rx.rx_csum_valid
        assert read(hint, long) == long and not rx.rx_csum_valid
    assert rx.vnet_drops == Counter(csum_beyond_frame=2)
    # GSO headers are checked against every frame (is it IPv4 TCP?)
    gso = vnet.header_for(long, MSS, True)
    arp = bytes(Ether(dst=PEER_MAC, src=OUR_MAC, type=0x0806)) + bytes(60)
    assert read(gso, long) == long and read(gso, arp) is None and read(gso, long) == long
    assert rx.vnet_drops["gso_not_tcpv4"] == 1 and rx.stats["rx_gso_frames"] == 2
    # (the last GSO header's parse is kept; another header is parsed, and judged, anew)
    assert read(MALFORMED["gso_size_zero"], long) is None
    other = vnet.header_for(long, MSS - 8, True)
    assert read(other, long) == long and read(gso, arp) is None and read(gso, long) == long
    assert rx.vnet_drops == Counter(csum_beyond_frame=2, gso_not_tcpv4=2, gso_size_zero=1)
    assert rx.stats["rx_gso_frames"] == 4 and rx.rx_csum_valid


def test_vnet_drops_reach_the_metrics_as_frames_dropped_and_the_offloads_label() -> None:
    stack = cast(NativeStack, object.__new__(NativeStack))
    stack.device = cast(Any, SimpleNamespace(vnet_drops=Counter(gso_size_zero=2)))
    assert stack._vnet_drops() == {"vnet_gso_size_zero": 2}
    assert offloads_label(ALL_OFFLOADS) == "csum,tso4,gro" and offloads_label(NO_OFFLOADS) == ""
    text = prometheus_text(
        [
            {
                "shard": s,
                "pid": 1,
                "cpus": [s],
                "stack": "native",
                "metrics": {
                    "device_offloads": {label: 1},
                    "frames_dropped": {"vnet_gso_size_zero": 2},
                },
            }
            for s, label in ((0, "csum,tso4,gro"), (1, ""))
        ]
    )
    assert '\nseashard_device_offloads{shard="0",offloads="csum,tso4,gro"} 1\n' in text
    assert '\nseashard_device_offloads{shard="1",offloads=""} 1\n' in text
    assert "# TYPE seashard_device_offloads gauge" in text
    assert 'seashard_frames_dropped_total{shard="0",reason="vnet_gso_size_zero"} 2' in text


# ---------------------------------------------------------------- GRO in


def gro_frame(peer: Peer, data: bytes, chksum: int | None = None) -> Any:
    frame = peer.frame("PA", data)
    if chksum is not None:
        frame[TCP].chksum = chksum
    return frame


def test_a_64k_gro_segment_is_acked_at_once_and_delivered_exactly() -> None:
    bench = OffloadBench(TcpConfig(mss=MSS, quickack=0))  # no quick-ACK: the MSS-unit rule
    peer, conn = bench.established()
    data = payload_bytes(64000, salt=5)
    # As the kernel hands it over: beyond the MTU, the checksum left to us (NEEDS_CSUM).
    bench.inject_trusted(gro_frame(peer, data, chksum=0x1234))
    assert bench.iface.counters["frames_accepted"] >= 1 and not bench.iface.drops
    out = bench.take_wire()
    assert [(flags(s), s.ack) for s in out] == [("A", seq_add(PEER_ISN + 1, 64000))]
    assert conn.tcp.unread == 64000
    assert bench.loop.spawn(conn.read()).value() == data
    assert conn.tcp._rcv_mss == MSS  # the peer's segments, not the merged one
    # A full segment after it is one MSS unit: its ACK waits (delayed), as Linux's.
    assert peer.send("A", b"z" * MSS) == []
    assert [s.ack for s in bench.advance(0.04)] == [seq_add(PEER_ISN + 1, 64000 + MSS)]
    bench.close()


def test_a_gro_segment_needs_the_device_to_vouch_for_its_checksum() -> None:
    bench = OffloadBench()
    peer, conn = bench.established()
    bench.inject(gro_frame(peer, payload_bytes(20000), chksum=0x1234))  # csum_valid False
    assert bench.iface.drops == Counter(tcp_bad_checksum=1)
    assert conn.tcp.unread == 0
    bench.close()


def test_gro_segments_out_of_order_are_reassembled() -> None:
    bench = OffloadBench()
    peer, conn = bench.established()
    data = payload_bytes(3 * 20000, salt=9)  # within the 65535 our SYN-ACK offered
    start = peer.nxt
    parts = [data[i : i + 20000] for i in range(0, len(data), 20000)]
    for i in (2, 0, 1):
        bench.inject_trusted(peer.frame("A", parts[i], seq=seq_add(start, 20000 * i)))
    got = b""
    while len(got) < len(data):
        got += bench.loop.spawn(conn.read()).value()
    assert got == data
    bench.close()


# ---------------------------------------------------------------- TSO out


def test_a_large_write_goes_out_as_tso_segments_within_cwnd_and_the_mss() -> None:
    bench = OffloadBench(TcpConfig(mss=MSS, tso_max=TSO_MAX, send_buffer=1 << 20))
    peer, conn = bench.established()
    data = payload_bytes(600_000, salt=1)
    writing = bench.loop.spawn(conn.write(data))
    tcp = conn.tcp
    sizes: list[int] = []
    flights = 0
    sent = bench.take_sent()
    while sent:
        flight = 0
        for frame, gso, partial in sent:
            n = len(data_of(frame[TCP]))
            assert partial and vnet.checksum_is_partial(bytes(frame))  # the device completes it
            assert gso == (MSS if n > MSS else 0)  # cut into MSS-sized segments
            assert n <= TSO_MAX and len(frame[IP]) <= 65535
            if n > MSS and frame[TCP].seq + n != (tcp.iss + 1 + len(data)) & 0xFFFFFFFF:
                assert n % MSS == 0  # whole MSS units but the tail
            flight += n
            sizes.append(n)
        assert flight <= tcp.cwnd  # one flight per ACK round, within the window
        # The peer sees the wire segments (cut, checksummed) and ACKs them.
        wire = []
        for frame, gso, partial in sent:
            wire += [Ether(w)[TCP] for w in vnet.software_offload(bytes(frame), gso, partial)]
        assert all(len(data_of(s)) <= MSS for s in wire)
        peer.see(wire)
        flights += 1
        bench.inject(peer.frame("A"))
        sent = bench.take_sent()
    assert writing.done
    assert bytes(peer.received) == data
    assert max(sizes) > 10 * MSS  # cwnd grew, and so did the segments
    assert sizes[0] == 10 * MSS  # IW10 in one frame
    assert flights < 12  # far fewer rounds than segments (stretch ACKs grow cwnd whole)
    bench.close()


def test_tso_segments_respect_the_peers_window() -> None:
    bench = OffloadBench(TcpConfig(mss=MSS, tso_max=TSO_MAX))
    peer, conn = bench.established(Peer(bench, window=10000, wscale=None))
    app_send(bench, conn, payload_bytes(200_000))
    out = bench.take_sent()
    # Within the window (10000: 6 segments), each at most half the peer's largest window
    # (Linux tcp_bound_to_half_wnd: 5000, i.e. 3 segments), the rest (1240) waits (SWS).
    assert [(len(data_of(f[TCP])), g) for f, g, _ in out] == [(3 * MSS, MSS), (3 * MSS, MSS)]
    # The window opens: within cwnd and the window again, in MSS multiples (cut where
    # the write's forced pushes fell, Linux's skb boundaries of that write).
    tcp = conn.tcp
    while tcp.unsent or tcp.bytes_in_flight:
        bench.inject(peer.frame("A", ack=tcp.snd_nxt, window=65535))
        out = bench.take_sent()
        sizes = [len(data_of(f[TCP])) for f, _, _ in out]
        assert sum(sizes) <= min(tcp.cwnd, 65535)
        for (f, g, _), n in zip(out, sizes, strict=True):
            assert n <= 65535 // 2 and g == (MSS if n > MSS else 0)
            assert n % MSS == 0 or f[TCP].seq + n == seq_add(tcp.iss, 1 + 200_000)
    # A write made while the peer's largest window is 65535: segments of up to half of it.
    app_send(bench, conn, payload_bytes(100_000))
    out = bench.take_sent()
    assert max(len(data_of(f[TCP])) for f, _, _ in out) == 65535 // 2 // MSS * MSS
    bench.close()


def test_retransmissions_stay_within_the_mss() -> None:
    bench = OffloadBench(TcpConfig(mss=MSS, tso_max=TSO_MAX))
    peer, conn = bench.established()
    app_send(bench, conn, payload_bytes(10 * MSS))
    first = bench.take_sent()
    assert [(len(data_of(f[TCP])), g) for f, g, _ in first] == [(10 * MSS, MSS)]
    deadline = bench.loop.next_deadline()
    assert deadline is not None
    bench.loop.run_until(deadline)  # the RTO: go back N, one segment at a time
    out = bench.take_sent()
    assert [(f[TCP].seq, len(data_of(f[TCP])), g) for f, g, _ in out] == [
        (first[0][0][TCP].seq, MSS, 0)
    ]
    # The ACK of it: slow start from one segment; what was sent once goes again MSS-sized.
    bench.inject(peer.frame("A", ack=seq_add(conn.tcp.iss, 1 + MSS)))
    out = bench.take_sent()
    assert [(len(data_of(f[TCP])), g) for f, g, _ in out] == [(MSS, 0), (MSS, 0)]
    bench.close()


def test_a_tso_segment_carries_no_sack_blocks_and_every_wire_segment_fits() -> None:
    # SACK negotiated; an out-of-order segment from the peer leaves a block to report.
    bench = OffloadBench(TcpConfig(mss=MSS, tso_max=TSO_MAX))
    server = bench.listen()
    peer = bench.peer()
    opts = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("NOP", None), ("NOP", None)]
    out = peer.send("S", opts=[*opts, ("SAckOK", b"")])
    assert flags(out[0]) == "SA"
    peer.send("A")
    conn = bench.accept(server)
    assert conn.tcp.sack_ok
    bench.inject_trusted(peer.frame("A", b"q" * 100, seq=seq_add(peer.nxt, 5000)))
    ack = bench.take_sent()
    assert [o for o in ack[0][0][TCP].options if o[0] == "SAck"]  # reported at once
    bench.inject_trusted(peer.frame("A", b"q" * 100, seq=seq_add(peer.nxt, 7000)))
    bench.take_sent()
    app_send(bench, conn, payload_bytes(8 * MSS))
    out = bench.take_sent()
    assert [(len(data_of(f[TCP])), g) for f, g, _ in out] == [(8 * MSS, MSS)]
    assert not [o for o in out[0][0][TCP].options if o[0] == "SAck"]
    for f, g, c in out:
        assert all(len(w) <= 14 + 1500 for w in vnet.software_offload(bytes(f), g, c))
    bench.close()


def test_without_offloads_everything_is_the_plain_path() -> None:
    # The layer's own config: no "tso4" on the device, no TSO; no "csum", full checksums.
    bench = OffloadBench(offloads=NO_OFFLOADS)
    assert bench.layer.config.tso_max == 0
    peer, conn = bench.established()
    app_send(bench, conn, payload_bytes(5000))
    out = bench.take_sent()
    assert [(len(data_of(f[TCP])), g, c) for f, g, c in out] == [
        (1460, 0, False),
        (1460, 0, False),
        (1460, 0, False),
        (620, 0, False),
    ]
    for f, _, _ in out:
        check_ip_frame(f)
    bench.close()


def test_the_layer_turns_tso_on_when_the_device_has_it() -> None:
    loop = cast(asyncio.AbstractEventLoop, SimpleNamespace(time=lambda: 0.0))
    config = InterfaceConfig(OUR_IP, "255.255.255.0")
    on = Interface(config, lambda f: True, offloads=ALL_OFFLOADS)
    off = Interface(config, lambda f: True)
    assert TcpLayer(on, loop, 0, 1).config.tso_max == TSO_MAX
    assert TcpLayer(off, loop, 0, 1).config.tso_max == 0


def test_an_unresolved_next_hop_gets_plain_frames_once_resolved() -> None:
    # ARP queues plain packets: a GSO frame waiting for a MAC is cut up here.
    dev = MemoryDevice(offloads=ALL_OFFLOADS)
    iface = Interface(InterfaceConfig(OUR_IP, "255.255.255.0", mac=OUR_MAC), dev.send)
    iface.offloads = ALL_OFFLOADS
    segment = bytes(tcp_frame(payload_bytes(4000)))[34:]
    assert iface.send_ipv4(PEER_IP, 6, segment, 0.0, gso_size=MSS, csum_partial=True)
    assert [Ether(f).type for f in dev.take_sent()] == [0x0806]  # who-has
    reply = Ether(dst=OUR_MAC, src=PEER_MAC) / ARP(
        op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=OUR_MAC, pdst=OUR_IP
    )
    iface.receive(bytes(reply), 0.1)
    info = dev.take_sent_info()
    assert [(len(data_of(Ether(f)[TCP])), g, c) for f, g, c in info] == [
        (1460, 0, False),
        (1460, 0, False),
        (1080, 0, False),
    ]
    for f, _, _ in info:
        check_ip_frame(Ether(f))
