"""The per-shard L3 of the native stack: Ethernet in, ARP/ICMP/TCP dispatch, IPv4 out.

Sans-IO: frames leave through the ``transmit`` callable the owner supplies (the
device's ``send``), time comes in as ``now``.  ``offloads`` are the device's
(``devices.py``): with "csum"/"tso4" a TCP frame may leave with a partial
checksum and as a GSO frame beyond the MTU (``send_ipv4(gso_size=,
csum_partial=)``, passed on to ``transmit(frame, gso_size, csum_partial)``;
frames without either are passed as ``transmit(frame)``, as ever); a received
frame the device vouches for (``receive(csum_valid=True)``) is handed to TCP
with ``rx_csum_valid`` set, so its checksum is not verified again. Every received frame ends in
exactly one of ``counters["frames_accepted"]`` or ``drops[reason]`` (whose
total is ``counters["frames_dropped"]``); outgoing packets that could not be
sent are counted in ``tx_drops[reason]``.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from seashard.wire.arp import ArpPacket
from seashard.wire.checksum import Buffer
from seashard.wire.errors import MalformedError
from seashard.wire.ethernet import (
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IPV4,
    EthernetFrame,
    is_multicast_mac,
    local_mac,
    mac_to_str,
)
from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.vnet import software_offload

from .arp import ArpCache, LearnHook, Transmit, WakeupHook
from .icmp import echo_reply

# Called with the IPv4 packet (header fields; ``payload`` is the segment), the
# TCP segment bytes and ``now``. Raising MalformedError counts the frame as
# dropped with reason ``tcp_<reason>``.
TcpHandler = Callable[[IPv4Packet, bytes, float], None]
# The direct path's TCP handler: (source address, the segment, now), the segment a view
# into the frame there; the same contract otherwise (``Interface.tcp_segment``).
TcpSegmentHandler = Callable[[str, Buffer, float], None]
# A device's two-part send (``TapDevice.send_parts``): headers, then the payload behind
# them in the same write, so the payload is not copied to build the frame.
PartsTransmit = Callable[[Buffer, Buffer, int, bool], bool]

# Ethernet + a 20-byte IPv4 header, the fields the direct path checks: destination
# MAC, ethertype, version/IHL, total length, flags/fragment offset, TTL, protocol,
# source and destination addresses (the header checksum is summed whole).
_ETH_IPV4: Final = struct.Struct("!6s6xHBxH2xHBB2x4s4s")

_LIMITED_BROADCAST: Final = "255.255.255.255"
_MAX_NAMES: Final = 4096  # source addresses whose text form is kept (a flood cannot grow it)
# What a frame the direct path takes counts in, besides frames_accepted and bytes_received
_DIRECT_IN: Final = ("frames_received", "ipv4_received", "tcp_segments_received")


def _ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big")


@dataclass(slots=True)
class InterfaceConfig:
    """Addresses of one native-stack interface (Seastar's --host-ipv4-addr and friends).

    Without ``mac`` a locally administered one derived from ``host_ip`` is used,
    so every shard, and every restart, presents the same address.
    """

    host_ip: str
    netmask: str = "255.255.255.0"
    gateway: str | None = None
    mac: str | None = None
    mtu: int = 1500
    ttl: int = 64

    def __post_init__(self) -> None:
        network = ipaddress.IPv4Network(f"{self.host_ip}/{self.netmask}", strict=False)
        self.host_ip = str(ipaddress.IPv4Address(self.host_ip))
        self.netmask = str(network.netmask)
        if self.gateway is not None:
            self.gateway = str(ipaddress.IPv4Address(self.gateway))
            if ipaddress.IPv4Address(self.gateway) not in network:
                raise ValueError(f"gateway {self.gateway} is not on-link in {network}")
        self.mac = mac_to_str(self.mac) if self.mac else local_mac(socket.inet_aton(self.host_ip))
        if is_multicast_mac(self.mac):
            raise ValueError(f"interface MAC {self.mac} is a group address")
        if not 68 <= self.mtu <= 65535:
            raise ValueError(f"mtu {self.mtu} out of range")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.host_ip}/{self.netmask}", strict=False)


class Interface:
    """One shard's view of the native interface: ARP, IPv4, ICMP echo; TCP goes to a handler."""

    def __init__(
        self,
        config: InterfaceConfig,
        transmit: Transmit,
        *,
        tcp_handler: TcpHandler | None = None,
        on_arp_learn: LearnHook | None = None,
        on_arp_reply_elsewhere: LearnHook | None = None,
        ident_start: int = 0,
        arp_options: Mapping[str, float] | None = None,
        offloads: frozenset[str] = frozenset(),
        transmit_parts: PartsTransmit | None = None,
    ) -> None:
        self.config = config
        self.offloads = offloads  # the device's: "csum", "tso4", "gro" (devices.py)
        # The frame being received needs no L4 checksum check (its device said so).
        self.rx_csum_valid = False
        self.ip = config.host_ip
        assert config.mac is not None  # __post_init__ fills it in
        self.mac: str = config.mac
        self.tcp_handler = tcp_handler
        # The direct path (``receive``): set, unicast IPv4/TCP frames to us with
        # nothing unusual skip the EthernetFrame/IPv4Packet objects and come here.
        self.tcp_segment: TcpSegmentHandler | None = None
        self._device_transmit = transmit
        self._device_transmit_parts = transmit_parts  # None: frames are sent whole
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "frames_received",
                "bytes_received",
                "frames_accepted",
                "frames_dropped",
                "frames_sent",
                "bytes_sent",
                "ipv4_received",
                "ipv4_sent",
                "icmp_echo_requests",
                "icmp_echo_replies",
                "tcp_segments_received",
            ),
            0,
        )
        self.drops: Counter[str] = Counter()
        self.tx_drops: Counter[str] = Counter()
        self.arp = ArpCache(
            self.ip,
            self.mac,
            self._transmit,
            on_learn=on_arp_learn,
            on_reply_elsewhere=on_arp_reply_elsewhere,
            counters=self._counters,
            drops=self.drops,
            tx_drops=self.tx_drops,
            **(arp_options or {}),  # type: ignore[arg-type]
        )
        self._ident = ident_start & 0xFFFF
        self._mask = _ip_int(config.netmask)
        self._net = _ip_int(self.ip) & self._mask
        self._subnet_broadcast = str(config.network.broadcast_address)
        self._gateway = config.gateway
        # The direct path's comparands, as raw bytes.
        self._mac_b = bytes.fromhex(self.mac.replace(":", ""))
        self._ip_b = socket.inet_aton(self.ip)
        self._subnet_broadcast_b = socket.inet_aton(self._subnet_broadcast)
        self._src_names: dict[bytes, str] = {}  # inet_ntoa's answers (a bounded cache)
        # The direct paths' counts, as native ints until ``counters`` is read: five
        # string-keyed dict updates per frame in, three per frame out, were 2-3% of a
        # busy shard's CPU.
        self._fast_in = 0  # frames_received, ipv4_received, tcp_segments_received, accepted
        self._fast_in_bytes = 0
        self._fast_out = 0  # ipv4_sent, frames_sent
        self._fast_out_bytes = 0

    @property
    def counters(self) -> dict[str, int]:
        """Frames and packets in and out by kind (the ARP cache's among them); the
        direct paths' counts are added in when it is read: read it again to see more."""
        c = self._counters
        if self._fast_in:
            n, self._fast_in = self._fast_in, 0
            for key in _DIRECT_IN:
                c[key] += n
            c["frames_accepted"] += n
            c["bytes_received"] += self._fast_in_bytes
            self._fast_in_bytes = 0
        if self._fast_out:
            n, self._fast_out = self._fast_out, 0
            c["ipv4_sent"] += n
            c["frames_sent"] += n
            c["bytes_sent"] += self._fast_out_bytes
            self._fast_out_bytes = 0
        return c

    # -- hooks -----------------------------------------------------------------------

    def set_wakeup(self, wakeup: WakeupHook | None) -> None:
        """Have ``wakeup(deadline)`` called whenever a new timer deadline appears."""
        self.arp.wakeup = wakeup

    def poll(self, now: float) -> None:
        self.arp.poll(now)

    def next_deadline(self) -> float | None:
        return self.arp.next_deadline()

    def drop(self, reason: str) -> None:
        """Count a received frame as dropped (for handlers that reject it later)."""
        self.drops[reason] += 1
        self._counters["frames_dropped"] += 1

    # -- input -----------------------------------------------------------------------

    def receive(self, frame: Buffer, now: float, csum_valid: bool = False) -> None:
        """Process one received Ethernet frame; ``csum_valid``: the device checked (or
        a local sender left to us) its L4 checksum, TCP need not verify it.  ``frame``
        may be a view of the device's buffer (``Device.recv``): nothing keeps it."""
        n = len(frame)
        self.rx_csum_valid = csum_valid
        handler = self.tcp_segment
        if handler is not None and n >= 34:
            # The direct path: a unicast IPv4 frame to our MAC and address, 20-byte
            # header intact, TCP, no fragment, TTL > 0, a source that is not martian.
            # Anything else takes the general path below, which judges (and counts)
            # it from scratch: this path decides nothing the general one would not.
            dmac, etype, vihl, total, frag, ttl, proto, src_b, dst_b = _ETH_IPV4.unpack_from(frame)
            if (
                dmac == self._mac_b
                and etype == ETH_P_IPV4
                and vihl == 0x45
                and proto == 6
                and dst_b == self._ip_b
                and 20 <= total <= n - 14
                and not frag & 0x3FFF
                and ttl
                and not int.from_bytes(frame[14:34], "big") % 0xFFFF  # header sum 0xFFFF
            ):
                first = src_b[0]
                if (
                    0 < first < 224
                    and first != 127
                    and src_b != self._ip_b
                    and src_b != self._subnet_broadcast_b
                ):
                    names = self._src_names
                    src = names.get(src_b)
                    if src is None:
                        if len(names) >= _MAX_NAMES:
                            names.clear()
                        src = names[src_b] = socket.inet_ntoa(src_b)
                    try:
                        # A view: TCP copies the payload it keeps (one copy of a
                        # 64 KB GRO frame, not two).
                        handler(src, memoryview(frame)[34 : 14 + total], now)
                    except MalformedError as exc:
                        c = self._counters
                        for key in _DIRECT_IN:
                            c[key] += 1
                        c["bytes_received"] += n
                        self.drop(f"tcp_{exc.reason}")
                        return
                    self._fast_in += 1
                    self._fast_in_bytes += n
                    return
        c = self._counters
        c["frames_received"] += 1
        c["bytes_received"] += n
        if not isinstance(frame, bytes):  # a device's view: the general path wants bytes
            frame = bytes(frame)
        reason = self._receive(frame, now)
        if reason is None:
            c["frames_accepted"] += 1
        else:
            self.drop(reason)

    def _receive(self, frame: bytes, now: float) -> str | None:
        try:
            eth = EthernetFrame.parse(frame)
        except MalformedError as exc:
            return f"ethernet_{exc.reason}"
        if eth.dst != self.mac and eth.dst != BROADCAST_MAC:
            return "multicast" if is_multicast_mac(eth.dst) else "not_our_mac"
        if eth.ethertype == ETH_P_IPV4:
            return self._receive_ipv4(eth.payload, now)
        if eth.ethertype == ETH_P_ARP:
            try:
                arp = ArpPacket.parse(eth.payload)
            except MalformedError as exc:
                return f"arp_{exc.reason}"
            return self.arp.handle(arp, now)
        return "unsupported_ethertype"

    def _receive_ipv4(self, data: bytes, now: float) -> str | None:
        try:
            ip = IPv4Packet.parse(data)
        except MalformedError as exc:
            return f"ipv4_{exc.reason}"
        self._counters["ipv4_received"] += 1
        if ip.dst != self.ip:
            if ip.dst in (_LIMITED_BROADCAST, self._subnet_broadcast):
                return "broadcast"
            return "multicast" if 224 <= _first_octet(ip.dst) <= 239 else "not_for_us"
        if self._martian_source(ip.src):
            return "bad_source"
        if ip.is_fragment:
            return "fragment"  # no reassembly: our TCP never needs it (MSS < MTU)
        if ip.ttl == 0:
            return "ttl_zero"
        if ip.proto == IpProto.TCP:
            if self.tcp_handler is None and self.tcp_segment is None:
                return "no_tcp_handler"
            self._counters["tcp_segments_received"] += 1
            try:
                if self.tcp_segment is not None:
                    self.tcp_segment(ip.src, ip.payload, now)
                elif self.tcp_handler is not None:  # one of the two is set (checked above)
                    self.tcp_handler(ip, ip.payload, now)
            except MalformedError as exc:
                return f"tcp_{exc.reason}"
            return None
        if ip.proto == IpProto.ICMP:
            reply, reason = echo_reply(ip.payload)
            if reply is None:
                return reason
            self._counters["icmp_echo_requests"] += 1
            if self.send_ipv4(ip.src, IpProto.ICMP, reply, now):
                self._counters["icmp_echo_replies"] += 1
            return None
        return "unsupported_protocol"

    def _martian_source(self, src: str) -> bool:
        first = _first_octet(src)
        return (
            src in (self.ip, self._subnet_broadcast, _LIMITED_BROADCAST)
            or first == 0
            or first == 127
            or first >= 224
        )

    # -- output ----------------------------------------------------------------------

    def next_hop(self, dst: str) -> str | None:
        """``dst`` itself when on-link, else the gateway (None without one)."""
        if _ip_int(dst) & self._mask == self._net:
            return dst
        return self._gateway

    def send_ipv4(
        self,
        dst: str,
        proto: int,
        payload: bytes,
        now: float,
        *,
        ttl: int | None = None,
        tos: int = 0,
        dont_fragment: bool = True,
        gso_size: int = 0,
        csum_partial: bool = False,
    ) -> bool:
        """Send ``payload`` to ``dst``; False when it was dropped at once (counted).

        ``gso_size`` > 0 (a TCP segment whose payload exceeds it, device "tso4"):
        the datagram may exceed the MTU, the device cuts it up.  ``csum_partial``
        (device "csum"): its TCP checksum field holds the pseudo-header sum."""
        packet = IPv4Packet(
            self.ip,
            dst,
            proto,
            payload,
            ttl=self.config.ttl if ttl is None else ttl,
            ident=self._ident,
            tos=tos,
            dont_fragment=dont_fragment,
        ).build()
        if gso_size:
            # GSO: one IPv4 identifier per segment the device makes (as Linux does)
            segs = -(-(len(payload) - (payload[12] >> 4) * 4) // gso_size)
            self._ident = (self._ident + max(segs, 1)) & 0xFFFF
        else:
            self._ident = (self._ident + 1) & 0xFFFF
            if len(packet) > self.config.mtu:
                self.tx_drops["too_big"] += 1
                return False
        self._counters["ipv4_sent"] += 1
        if dst in (_LIMITED_BROADCAST, self._subnet_broadcast):
            self._transmit(
                EthernetFrame(BROADCAST_MAC, self.mac, ETH_P_IPV4, packet).build(),
                gso_size,
                csum_partial,
            )
            return True
        if dst == self.ip:
            self.tx_drops["loopback"] += 1
            return False
        hop = self.next_hop(dst)
        if hop is None:
            self.tx_drops["no_route"] += 1
            return False
        if gso_size or csum_partial:
            mac = self.arp.lookup(hop, now)
            if mac is not None:
                self._transmit(
                    EthernetFrame(mac, self.mac, ETH_P_IPV4, packet).build(),
                    gso_size,
                    csum_partial,
                )
                return True
            # Unresolved: the ARP queue holds plain packets; do the device's part here.
            frame = EthernetFrame(BROADCAST_MAC, self.mac, ETH_P_IPV4, packet).build()
            for f in software_offload(frame, gso_size, csum_partial):
                self.arp.send_ipv4(hop, f[14:], now)
            return True
        self.arp.send_ipv4(hop, packet, now)
        return True

    def take_ident(self, count: int = 1) -> int:
        """The next IPv4 identifier, reserving ``count`` (one per segment GSO makes)."""
        ident = self._ident
        self._ident = (ident + count) & 0xFFFF
        return ident

    def send_frame(
        self,
        frame: Buffer,
        gso_size: int = 0,
        csum_partial: bool = False,
        tail: Buffer = b"",
    ) -> None:
        """A complete Ethernet + IPv4 frame to a resolved neighbour, built by the caller
        (TCP's per-connection header templates, with ``take_ident``); counted as
        ``send_ipv4`` counts what it sends.  ``tail``: the rest of the frame (a
        segment's payload), written behind ``frame`` in one writev where the device
        can (a 64 KB TSO payload is then not copied in user space), else joined."""
        n = len(frame) + len(tail)
        if not tail:
            ok = self._device_send(frame, gso_size, csum_partial)
        elif self._device_transmit_parts is None:
            ok = self._device_send(bytes(frame) + tail, gso_size, csum_partial)
        elif self._device_transmit_parts(frame, tail, gso_size, csum_partial):
            ok = True
        else:
            self.tx_drops["device"] += 1
            ok = False
        if ok:
            self._fast_out += 1
            self._fast_out_bytes += n
        else:
            self._counters["ipv4_sent"] += 1

    def _transmit(self, frame: Buffer, gso_size: int = 0, csum_partial: bool = False) -> None:
        if self._device_send(frame, gso_size, csum_partial):
            self._counters["frames_sent"] += 1
            self._counters["bytes_sent"] += len(frame)

    def _device_send(self, frame: Buffer, gso_size: int, csum_partial: bool) -> bool:
        """To the device (a plain frame as the one argument: any transmit hook takes
        that); False, counted, when it dropped it."""
        if gso_size or csum_partial:
            ok = self._device_transmit(frame, gso_size, csum_partial)  # type: ignore[call-arg]
        else:
            ok = self._device_transmit(frame)
        if ok is False:
            self.tx_drops["device"] += 1
            return False
        return True


def _first_octet(ip: str) -> int:
    return int(ip[: ip.index(".")])
