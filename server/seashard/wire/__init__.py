"""Pure header parse/build and checksums: no state, no I/O, no clock.

Every parser raises :class:`MalformedError` (with a short ``reason``) on bad input.
"""

from .arp import ArpOp, ArpPacket
from .checksum import internet_checksum, ones_complement_sum, pseudo_header_sum, verify
from .errors import MalformedError
from .ethernet import (
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IPV4,
    ETH_P_IPV6,
    EthernetFrame,
    is_multicast_mac,
    local_mac,
    mac_to_bytes,
    mac_to_str,
)
from .icmp import IcmpPacket, IcmpType
from .ipv4 import IpProto, IPv4Packet, ip_to_bytes
from .tcp import TcpFlags, TcpOption, TcpPacket, tcp_checksum

__all__ = [
    "BROADCAST_MAC",
    "ETH_P_ARP",
    "ETH_P_IPV4",
    "ETH_P_IPV6",
    "ArpOp",
    "ArpPacket",
    "EthernetFrame",
    "IPv4Packet",
    "IcmpPacket",
    "IcmpType",
    "IpProto",
    "MalformedError",
    "TcpFlags",
    "TcpOption",
    "TcpPacket",
    "internet_checksum",
    "ip_to_bytes",
    "is_multicast_mac",
    "local_mac",
    "mac_to_bytes",
    "mac_to_str",
    "ones_complement_sum",
    "pseudo_header_sum",
    "tcp_checksum",
    "verify",
]
