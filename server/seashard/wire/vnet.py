"""struct virtio_net_hdr (<linux/virtio_net.h>): the offload header before every frame.

A TAP opened with ``IFF_VNET_HDR`` (and ``TUNSETVNETHDRSZ`` 10) and an AF_PACKET
socket with ``PACKET_VNET_HDR`` prefix each frame, both ways, with this 10-byte
header::

    u8  flags        NEEDS_CSUM (1): the L4 checksum at csum_start + csum_offset holds
                     only the pseudo-header sum; DATA_VALID (2): it was checked already
    u8  gso_type     NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5; | ECN 0x80
    u16 hdr_len      the length of the headers (a hint for the linear part)
    u16 gso_size     payload bytes per segment when the frame is to be (or was) cut up
    u16 csum_start   where checksumming starts (the L4 header)
    u16 csum_offset  where the checksum sits, from csum_start (16 for TCP, 6 for UDP)

The u16s are in the legacy virtio byte order, the host's own (a TAP without
``TUNSETVNETLE``/``TUNSETVNETBE``; AF_PACKET always): ``struct``'s ``=``.

Received headers that make no sense raise :class:`MalformedError`; the device
counts the frame by ``reason`` (``vnet_<reason>`` in the shard's drops) and
drops it. :func:`tcp4_segment` and :func:`complete_checksum` do in software
what the kernel does with a header we send (memory devices, fallbacks, tests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import internet_checksum, pseudo_header_sum
from .errors import MalformedError

VNET_HDR_LEN: Final = 10
F_NEEDS_CSUM: Final = 1
F_DATA_VALID: Final = 2
GSO_NONE: Final = 0
GSO_TCPV4: Final = 1
GSO_UDP: Final = 3
GSO_TCPV6: Final = 4
GSO_UDP_L4: Final = 5
GSO_ECN: Final = 0x80

_KNOWN_FLAGS: Final = F_NEEDS_CSUM | F_DATA_VALID
_KNOWN_GSO: Final = (GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4)
_HDR: Final = struct.Struct("=BBHHHH")
_ETH_LEN: Final = 14
_TCP_CSUM_OFFSET: Final = 16
_UDP_CSUM_OFFSET: Final = 6

PLAIN: Final = bytes(VNET_HDR_LEN)  # the header of a frame that asks for nothing


@dataclass(slots=True)
class VnetHeader:
    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    # Written out, as Segment's is: compiled, dataclass's generated __init__ runs as
    # interpreted Python, once per GRO frame received (and frozen=True would make it
    # set each field through object.__setattr__).
    def __init__(
        self,
        flags: int = 0,
        gso_type: int = GSO_NONE,
        hdr_len: int = 0,
        gso_size: int = 0,
        csum_start: int = 0,
        csum_offset: int = 0,
    ) -> None:
        self.flags = flags
        self.gso_type = gso_type
        self.hdr_len = hdr_len
        self.gso_size = gso_size
        self.csum_start = csum_start
        self.csum_offset = csum_offset

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & F_DATA_VALID)

    @property
    def gso(self) -> int:
        """The GSO type without the ECN bit."""
        return self.gso_type & ~GSO_ECN

    @property
    def csum_ok(self) -> bool:
        """The frame's L4 checksum needs no check: verified, or left to us by a local sender."""
        return bool(self.flags & _KNOWN_FLAGS)

    def build(self) -> bytes:
        return _HDR.pack(
            self.flags,
            self.gso_type,
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        )

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> VnetHeader:
        """The header at the start of ``data`` (fields only; :meth:`validate` checks them)."""
        if len(data) < VNET_HDR_LEN:
            raise MalformedError("truncated", f"vnet header of {len(data)} bytes")
        return cls(*_HDR.unpack_from(data))

    def shortest_frame(self) -> int:
        """For a header without GSO that passed :meth:`validate`: the shortest frame it
        is valid for (nothing else that validate checks depends on the frame)."""
        if self.flags & F_NEEDS_CSUM:
            return max(self.hdr_len, self.csum_start + self.csum_offset + 2)
        return self.hdr_len

    def validate(self, frame: bytes | bytearray | memoryview) -> None:
        """Raise MalformedError unless this header makes sense for ``frame`` (the
        Ethernet frame after it) and for a stack that speaks IPv4 TCP only."""
        n = len(frame)
        if self.flags & ~_KNOWN_FLAGS:
            raise MalformedError("unknown_flags", f"flags {self.flags:#x}")
        gso = self.gso
        if gso not in _KNOWN_GSO:
            raise MalformedError("unknown_gso_type", f"gso_type {self.gso_type:#x}")
        if self.flags & F_NEEDS_CSUM:
            if self.csum_offset not in (_TCP_CSUM_OFFSET, _UDP_CSUM_OFFSET):
                raise MalformedError("bad_csum_offset", f"csum_offset {self.csum_offset}")
            if self.csum_start + self.csum_offset + 2 > n:
                raise MalformedError(
                    "csum_beyond_frame",
                    f"csum at {self.csum_start}+{self.csum_offset} in {n} bytes",
                )
        if self.hdr_len > n:
            raise MalformedError("hdr_len_beyond_frame", f"hdr_len {self.hdr_len} > {n} bytes")
        if gso == GSO_NONE:
            if self.gso_type & GSO_ECN:
                raise MalformedError("ecn_without_gso", f"gso_type {self.gso_type:#x}")
            return
        if gso != GSO_TCPV4:
            raise MalformedError("unsupported_gso_type", f"gso_type {self.gso_type:#x}")
        if self.gso_size == 0:
            raise MalformedError("gso_size_zero", "gso set with gso_size 0")
        l4 = _tcp4_offset(frame)
        if l4 is None:
            raise MalformedError("gso_not_tcpv4", "gso TCPV4 on a frame that is not IPv4 TCP")
        if self.flags & F_NEEDS_CSUM and (
            self.csum_start != l4 or self.csum_offset != _TCP_CSUM_OFFSET
        ):
            raise MalformedError(
                "bad_csum_start", f"csum at {self.csum_start}+{self.csum_offset}, tcp at {l4}"
            )


def split(data: bytes | bytearray | memoryview) -> tuple[VnetHeader, memoryview]:
    """A received buffer as (validated header, the frame after it); MalformedError if bad."""
    hdr = VnetHeader.parse(data)
    frame = memoryview(data)[VNET_HDR_LEN:]
    hdr.validate(frame)
    return hdr, frame


def _tcp4_offset(frame: bytes | bytearray | memoryview) -> int | None:
    """Where the TCP header starts in an untagged IPv4 TCP frame (else None)."""
    if len(frame) < _ETH_LEN + 20 or frame[12] != 0x08 or frame[13] != 0x00:
        return None
    vihl = frame[_ETH_LEN]
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or frame[_ETH_LEN + 9] != 6:
        return None
    if len(frame) < _ETH_LEN + ihl + 20:
        return None
    return _ETH_LEN + ihl


# header_for's answers for the usual frame (IPv4 without options, TCP): by (the TCP data
# offset byte, gso_size).  A stack sends a handful of header lengths and one MSS per peer.
_TX_HEADERS: dict[tuple[int, int], bytes] = {}
_TX_HEADERS_MAX: Final = 256


def header_for(frame: bytes | bytearray | memoryview, gso_size: int, csum_partial: bool) -> bytes:
    """The header to send ``frame`` (an IPv4 TCP frame when either is asked for) with:
    ``csum_partial``: the TCP checksum field holds the pseudo-header sum, the kernel
    completes it; ``gso_size`` > 0: the kernel cuts the payload into segments of
    that size (GSO always comes with a partial checksum)."""
    if not gso_size and not csum_partial:
        return PLAIN
    if len(frame) >= _ETH_LEN + 40 and frame[12:15] == b"\x08\x00\x45" and frame[23] == 6:
        key = (frame[46], gso_size)
        hdr = _TX_HEADERS.get(key)
        if hdr is None:
            if len(_TX_HEADERS) >= _TX_HEADERS_MAX:
                _TX_HEADERS.clear()
            hdr = _TX_HEADERS[key] = _tcp4_header(frame, gso_size)
        return hdr
    return _tcp4_header(frame, gso_size)


def _tcp4_header(frame: bytes | bytearray | memoryview, gso_size: int) -> bytes:
    l4 = _tcp4_offset(frame)
    if l4 is None:
        raise ValueError("offloads are for IPv4 TCP frames")
    hdr_len = l4 + (frame[l4 + 12] >> 4) * 4
    if gso_size:
        return _HDR.pack(F_NEEDS_CSUM, GSO_TCPV4, hdr_len, gso_size, l4, _TCP_CSUM_OFFSET)
    return _HDR.pack(F_NEEDS_CSUM, GSO_NONE, hdr_len, 0, l4, _TCP_CSUM_OFFSET)


def partial_checksum(src: str | bytes, dst: str | bytes, tcp_length: int) -> int:
    """What a TCP checksum field holds for offload: the folded pseudo-header sum
    including the length (Linux ``~tcp_v4_check(len, saddr, daddr, 0)``)."""
    return pseudo_header_sum(src, dst, 6, tcp_length)


def complete_checksum(frame: bytes | bytearray | memoryview) -> bytes:
    """An IPv4 TCP/UDP frame with its L4 checksum computed afresh (the field's old
    content, e.g. a partial sum, is ignored); other frames unchanged."""
    out = bytearray(frame)
    if len(out) < _ETH_LEN + 20 or out[12:14] != b"\x08\x00":
        return bytes(out)
    ihl = (out[_ETH_LEN] & 0x0F) * 4
    total = int.from_bytes(out[16:18], "big")
    proto = out[_ETH_LEN + 9]
    start, end = _ETH_LEN + ihl, _ETH_LEN + total
    offset = {6: _TCP_CSUM_OFFSET, 17: _UDP_CSUM_OFFSET}.get(proto)
    if offset is None or ihl < 20 or end > len(out) or end - start < offset + 2:
        return bytes(out)
    out[start + offset : start + offset + 2] = b"\x00\x00"
    pseudo = pseudo_header_sum(bytes(out[26:30]), bytes(out[30:34]), proto, end - start)
    csum = internet_checksum(memoryview(out)[start:end], pseudo)
    if proto == 17 and csum == 0:
        csum = 0xFFFF  # UDP: zero means "no checksum"
    out[start + offset : start + offset + 2] = csum.to_bytes(2, "big")
    return bytes(out)


def tcp4_segment(frame: bytes | bytearray | memoryview, gso_size: int) -> list[bytes]:
    """Cut an IPv4 TCP frame into frames of at most ``gso_size`` payload bytes, as
    the kernel's GSO does (tcp_gso_segment): the same options on each, sequence
    numbers and IPv4 identifiers advancing, FIN and PSH on the last only, CWR on
    the first only; every checksum computed."""
    l4 = _tcp4_offset(frame)
    if l4 is None or gso_size <= 0:
        raise ValueError("tcp4_segment: an IPv4 TCP frame and a positive gso_size")
    data = bytes(frame)
    total = int.from_bytes(data[16:18], "big")
    ihl = l4 - _ETH_LEN
    thl = (data[l4 + 12] >> 4) * 4
    hdr_end = l4 + thl
    payload = data[hdr_end : _ETH_LEN + total]
    if len(payload) <= gso_size:
        return [complete_checksum(data[: _ETH_LEN + total])]
    eth_ip = bytearray(data[:l4])
    tcp_hdr = bytearray(data[l4:hdr_end])
    ident = int.from_bytes(eth_ip[18:20], "big")
    seq = int.from_bytes(tcp_hdr[4:8], "big")
    tcp_flags = tcp_hdr[13]
    src, dst = bytes(eth_ip[26:30]), bytes(eth_ip[30:34])
    out = []
    chunks = range(0, len(payload), gso_size)
    for i, off in enumerate(chunks):
        chunk = payload[off : off + gso_size]
        last = off + gso_size >= len(payload)
        ip = bytearray(eth_ip)
        ip[16:18] = (ihl + thl + len(chunk)).to_bytes(2, "big")
        ip[18:20] = ((ident + i) & 0xFFFF).to_bytes(2, "big")
        ip[24:26] = b"\x00\x00"
        ip[24:26] = internet_checksum(memoryview(ip)[_ETH_LEN:l4]).to_bytes(2, "big")
        th = bytearray(tcp_hdr)
        th[4:8] = ((seq + off) & 0xFFFFFFFF).to_bytes(4, "big")
        fl = tcp_flags
        if not last:
            fl &= ~0x09  # FIN, PSH
        if i:
            fl &= ~0x80  # CWR
        th[13] = fl
        th[16:18] = b"\x00\x00"
        seg = bytes(th) + chunk
        csum = internet_checksum(seg, pseudo_header_sum(src, dst, 6, len(seg)))
        th[16:18] = csum.to_bytes(2, "big")
        out.append(bytes(ip) + bytes(th) + chunk)
    return out


def checksum_is_partial(frame: bytes | bytearray | memoryview) -> bool:
    """True when an IPv4 TCP frame's checksum field holds the bare pseudo-header sum."""
    l4 = _tcp4_offset(frame)
    if l4 is None:
        return False
    total = int.from_bytes(frame[16:18], "big")
    length = _ETH_LEN + total - l4
    field = int.from_bytes(frame[l4 + 16 : l4 + 18], "big")
    expect = partial_checksum(bytes(frame[26:30]), bytes(frame[30:34]), length)
    return field == expect or {field, expect} == {0, 0xFFFF}  # one's complement: 0 == -0


def software_offload(
    frame: bytes | bytearray | memoryview, gso_size: int, csum_partial: bool
) -> list[bytes]:
    """What the kernel puts on the wire for ``frame`` sent with these offloads, done
    here, for a device that lacks them (memory devices, a fallback)."""
    if gso_size:
        return tcp4_segment(frame, gso_size)
    if csum_partial:
        return [complete_checksum(frame)]
    return [bytes(frame)]
