"""Helpers for the frame-level tests of the native TCP path (a uniquely named module).

``VirtualLoop`` stands in for the event loop the TcpLayer uses (``time``,
``call_at``, ``create_future``): time moves only when a test calls ``advance``,
and due timers run in deadline order. Coroutines of the stream API are driven
by hand (``spawn``): a coroutine is resumed whenever the future it awaits is
done, after every injected frame and every timer.

``Bench`` wires an Interface (on a MemoryDevice) to a TcpLayer on that loop;
``Peer`` is the remote end of one flow, played with scapy-built frames.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from seashard.net.api import ListenOptions, SocketAddress
from seashard.net.native.devices import MemoryDevice
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.net.native.limits import NativeLimits
from seashard.net.native.streams import NativeConnection
from seashard.net.native.tcp_layer import NativeServerSocket, TcpLayer
from seashard.tcp.connection import TcpConfig
from seashard.virtual_loop import VirtualLoop

OUR_IP, OUR_MAC = "10.0.0.2", "02:00:00:00:00:02"
PEER_IP, PEER_MAC = "10.0.0.7", "02:00:00:00:00:07"
GW_IP = "10.0.0.1"
PORT = 1234
PEER_PORT = 40000
PEER_ISN = 5000
START = 1000.0
MASK = 0xFFFFFFFF


def seq_add(a: int, n: int) -> int:
    return (a + n) & MASK


class FixedIsn:
    """Stands in for the layer's IsnGenerator: every connection gets ``iss``."""

    def __init__(self, iss: int) -> None:
        self.iss = iss

    def isn(self, local: object, remote: object, now: float) -> int:
        return self.iss


# ---------------------------------------------------------------- frames out


def verify_checksums(frame: Packet) -> None:
    """The IPv4 header checksum and the TCP/ICMP checksum, as scapy computes them."""
    ip = frame[IP]
    fresh = ip.copy()
    fresh.chksum = None
    for layer in (TCP, ICMP):
        if layer in fresh:
            fresh[layer].chksum = None
    rebuilt = IP(bytes(fresh))
    assert rebuilt.chksum == ip.chksum, "bad IPv4 header checksum"
    for layer in (TCP, ICMP):
        if layer in ip:
            assert rebuilt[layer].chksum == ip[layer].chksum, f"bad {layer.__name__} checksum"


def check_ip_frame(frame: Packet) -> None:
    assert frame.dst == PEER_MAC and frame.src == OUR_MAC and frame.type == 0x0800
    ip = frame[IP]
    assert ip.version == 4 and ip.ihl == 5 and ip.src == OUR_IP and ip.dst == PEER_IP
    assert ip.ttl == 64 and ip.flags.DF and ip.frag == 0
    verify_checksums(frame)


def flags(seg: TCP) -> str:
    """scapy's flag letters in bit order: "SA", "A", "PA", "FA", "FPA", "R", "RA"."""
    return str(seg.flags)


def options(seg: TCP) -> dict[str, Any]:
    return {name: value for name, value in seg.options}


def data_of(seg: TCP) -> bytes:
    """The TCP payload, without Ethernet padding."""
    ip = seg.underlayer
    assert isinstance(ip, IP)
    return bytes(seg)[seg.dataofs * 4 : ip.len - ip.ihl * 4]


# ---------------------------------------------------------------- the bench


class Bench:
    """An Interface on a MemoryDevice, a TcpLayer on a VirtualLoop, the peer's MAC known."""

    def __init__(
        self,
        config: TcpConfig | None = None,
        *,
        iss: int | None = None,
        limits: NativeLimits | None = None,
        arp_options: dict[str, float] | None = None,
    ) -> None:
        self.loop = VirtualLoop(START)
        self.dev = MemoryDevice()
        self._rx = bytearray(65536 + 64)  # inject()'s receive buffer
        self.sent_at: list[float] = []  # the virtual time of each frame in dev.sent
        self.iface = Interface(
            InterfaceConfig(OUR_IP, "255.255.255.0", gateway=GW_IP, mac=OUR_MAC),
            self._transmit,
            # The virtual clock runs for minutes: entries must not expire meanwhile.
            arp_options={"entry_ttl": 1e9, **(arp_options or {})},
        )
        self.logs: list[str] = []
        self.layer = TcpLayer(
            self.iface,
            cast(asyncio.AbstractEventLoop, self.loop),
            0,
            1,
            config=config,
            limits=limits,
            log=self.logs.append,
        )
        self.iface.tcp_handler = self.layer.on_packet
        self.iface.tcp_segment = self.layer.on_tcp
        self.iface.arp.learn(PEER_IP, PEER_MAC, self.loop.time())
        if iss is not None:
            self.layer.isn = FixedIsn(iss)  # type: ignore[assignment]

    def _transmit(self, frame: bytes) -> bool:
        self.sent_at.append(self.loop.time())
        return self.dev.send(frame)

    def close(self) -> None:
        self.loop.close()

    def now(self) -> float:
        return self.loop.time()

    # input

    def inject(self, frame: Packet | bytes) -> None:
        """Receive ``frame`` as a view of a reused buffer, as TAP and AF_PACKET hand
        it over, and overwrite it at once: what the stack keeps must be a copy."""
        data = bytes(frame)
        if len(data) > len(self._rx):
            self._rx = bytearray(len(data))
        view = memoryview(self._rx)[: len(data)]
        view[:] = data
        self.iface.receive(view, self.loop.time())
        view[:] = b"\xee" * len(data)
        self.loop.pump()

    def advance(self, seconds: float) -> list[TCP]:
        self.loop.advance(seconds)
        return self.take_tcp()

    def run_to(self, when: float) -> list[TCP]:
        self.loop.run_until(when)
        return self.take_tcp()

    def next_timer(self) -> tuple[float, list[TCP]]:
        """Run to the TCP layer's next deadline (or the loop's next timer when it has
        none); returns its time and the TCP segments sent then.  The layer's loop timer
        may fire earlier with nothing due: it is not moved later (LoopTimer.update)."""
        when = self.layer.next_deadline()
        if when is None:
            when = self.loop.next_deadline()
        assert when is not None, "no timer armed"
        self.loop.run_until(when)
        return when, self.take_tcp()

    # output

    def take_frames(self) -> list[tuple[float, Packet]]:
        times, self.sent_at = self.sent_at, []
        return [(t, Ether(f)) for t, f in zip(times, self.dev.take_sent(), strict=True)]

    def take_timed(self) -> list[tuple[float, TCP]]:
        out = []
        for t, frame in self.take_frames():
            check_ip_frame(frame)
            assert TCP in frame, frame.summary()
            out.append((t, frame[TCP]))
        return out

    def take_tcp(self) -> list[TCP]:
        return [seg for _, seg in self.take_timed()]

    # app side

    def listen(self, port: int = PORT, reuse_address: bool = False) -> NativeServerSocket:
        return self.layer.listen(
            SocketAddress(OUR_IP, port), ListenOptions(reuse_address=reuse_address)
        )

    def accept(self, server: NativeServerSocket) -> NativeConnection:
        proc = self.loop.spawn(server.accept())
        assert proc.done, "nothing to accept"
        conn: NativeConnection = proc.value().connection
        return conn

    def peer(self, **kw: Any) -> Peer:
        return Peer(self, **kw)

    def established(
        self, peer: Peer | None = None, port: int = PORT
    ) -> tuple[Peer, NativeConnection]:
        """A listener on ``port``, the peer's handshake, the accepted connection."""
        server = self.layer.listeners.get(port) or self.listen(port)
        peer = peer or self.peer(dport=port)
        peer.handshake()
        return peer, self.accept(server)


class Peer:
    """The remote end of one flow. ``nxt``: its next sequence number; ``rcv_nxt``: the
    next one it expects from us (advanced by the in-order segments it is shown)."""

    def __init__(
        self,
        bench: Bench,
        *,
        sport: int = PEER_PORT,
        dport: int = PORT,
        isn: int = PEER_ISN,
        window: int = 65535,
        mss: int | None = 1460,
        wscale: int | None = 7,
    ) -> None:
        self.bench = bench
        self.sport = sport
        self.dport = dport
        self.isn = isn
        self.nxt = isn
        self.rcv_nxt = 0
        self.window = window
        self.mss = mss
        self.wscale = wscale
        self.received = bytearray()
        self.our_iss: int | None = None

    def frame(
        self,
        flag_str: str = "A",
        data: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        opts: list[tuple[str, Any]] | None = None,
        advance: bool | None = None,
    ) -> Packet:
        if advance is None:
            advance = seq is None
        s = self.nxt if seq is None else seq
        a = (self.rcv_nxt if ack is None else ack) if "A" in flag_str else 0
        seg = TCP(
            sport=self.sport,
            dport=self.dport,
            seq=s,
            ack=a,
            flags=flag_str,
            window=self.window if window is None else window,
            options=opts or [],
        )
        if advance:
            self.nxt = seq_add(s, len(data) + ("S" in flag_str) + ("F" in flag_str))
        pkt = Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / seg
        return pkt / data if data else pkt

    def send(self, flag_str: str = "A", data: bytes = b"", **kw: Any) -> list[TCP]:
        """Inject one segment; return what was sent in answer (and take it in)."""
        self.bench.inject(self.frame(flag_str, data, **kw))
        return self.see(self.bench.take_tcp())

    def see(self, segs: list[TCP]) -> list[TCP]:
        """Take in segments from us: in-order ones advance ``rcv_nxt``."""
        for seg in segs:
            if seg.dport != self.sport or "R" in flags(seg):
                continue
            f = flags(seg)
            if "S" in f:
                self.our_iss = seg.seq
                self.rcv_nxt = seq_add(seg.seq, 1)
                continue
            if seg.seq == self.rcv_nxt:
                data = data_of(seg)
                self.received += data
                self.rcv_nxt = seq_add(self.rcv_nxt, len(data) + ("F" in f))
        return segs

    def syn_options(self) -> list[tuple[str, Any]]:
        opts: list[tuple[str, Any]] = []
        if self.mss is not None:
            opts.append(("MSS", self.mss))
        if self.wscale is not None:
            opts += [("NOP", None), ("WScale", self.wscale)]
        return opts

    def syn(self) -> list[TCP]:
        return self.send("S", window=min(self.window, 65535), opts=self.syn_options())

    def handshake(self) -> TCP:
        """SYN, our SYN-ACK, ACK; returns the SYN-ACK."""
        out = self.syn()
        assert len(out) == 1 and flags(out[0]) == "SA", [s.summary() for s in out]
        assert self.send("A") == []
        return out[0]
