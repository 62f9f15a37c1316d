"""ARP for Ethernet and IPv4 (RFC 826)."""

from __future__ import annotations

import enum
import socket
import struct
from dataclasses import dataclass
from typing import ClassVar

from .errors import MalformedError
from .ethernet import ZERO_MAC, mac_to_bytes

_ARP = struct.Struct("!HHBBH6s4s6s4s")
_HTYPE_ETHERNET = 1
_PTYPE_IPV4 = 0x0800


class ArpOp(enum.IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet; ``op`` is an int (1 request, 2 reply, others kept)."""

    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str = ZERO_MAC
    target_ip: str = "0.0.0.0"

    LENGTH: ClassVar[int] = 28

    @classmethod
    def parse(cls, data: bytes) -> ArpPacket:
        """Parse the first 28 bytes; Ethernet padding after them is ignored."""
        if len(data) < 28:
            raise MalformedError("truncated", f"arp packet of {len(data)} bytes")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
        if htype != _HTYPE_ETHERNET or ptype != _PTYPE_IPV4 or hlen != 6 or plen != 4:
            raise MalformedError("unsupported_format", f"htype={htype} ptype={ptype:#x}")
        return cls(op, sha.hex(":"), socket.inet_ntoa(spa), tha.hex(":"), socket.inet_ntoa(tpa))

    def build(self) -> bytes:
        return _ARP.pack(
            _HTYPE_ETHERNET,
            _PTYPE_IPV4,
            6,
            4,
            self.op,
            mac_to_bytes(self.sender_mac),
            socket.inet_aton(self.sender_ip),
            mac_to_bytes(self.target_mac),
            socket.inet_aton(self.target_ip),
        )
