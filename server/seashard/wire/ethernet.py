"""Ethernet II frames and MAC address helpers.

MAC addresses are lowercase ``aa:bb:cc:dd:ee:ff`` strings in parsed objects;
builders also accept 6 raw bytes or ``-``-separated / uppercase strings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import Buffer
from .errors import MalformedError

ETH_P_IPV4: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_VLAN: Final = 0x8100
ETH_P_IPV6: Final = 0x86DD

BROADCAST_MAC: Final = "ff:ff:ff:ff:ff:ff"
ZERO_MAC: Final = "00:00:00:00:00:00"

_HEADER: Final = struct.Struct("!6s6sH")
HEADER_LEN: Final = 14  # a module constant: a compiled (mypyc) class cannot carry one

Mac = str | bytes


def mac_to_bytes(mac: Mac) -> bytes:
    """6 raw bytes from a MAC given as bytes or as a colon/dash separated string."""
    if isinstance(mac, bytes | bytearray):
        raw = bytes(mac)
    else:
        try:
            raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
        except ValueError:
            raise ValueError(f"invalid MAC address {mac!r}") from None
    if len(raw) != 6:
        raise ValueError(f"invalid MAC address {mac!r}: need 6 bytes")
    return raw


def mac_to_str(mac: Mac) -> str:
    """The canonical lowercase ``aa:bb:cc:dd:ee:ff`` form."""
    return mac_to_bytes(mac).hex(":")


def is_multicast_mac(mac: Mac) -> bool:
    """True for group addresses (broadcast included): the I/G bit of the first octet."""
    return bool(mac_to_bytes(mac)[0] & 0x01)


def local_mac(seed: bytes) -> str:
    """A unicast, locally administered MAC (02:xx:..) whose last 4 octets are ``seed``.

    Deterministic so every shard (and every restart) of one host address agrees.
    """
    if len(seed) != 4:
        raise ValueError("local_mac seed must be 4 bytes")
    return (b"\x02\x53" + seed).hex(":")


@dataclass(slots=True)
class EthernetFrame:
    """An Ethernet II frame; ``payload`` is everything after the 14-byte header."""

    dst: str
    src: str
    ethertype: int
    payload: bytes = b""

    @classmethod
    def parse(cls, data: Buffer) -> EthernetFrame:
        if len(data) < 14:
            raise MalformedError("truncated", f"ethernet frame of {len(data)} bytes")
        dst, src, ethertype = _HEADER.unpack_from(data)
        return cls(dst.hex(":"), src.hex(":"), ethertype, bytes(data[14:]))

    def build(self) -> bytes:
        """The frame bytes (no FCS, no padding to 60 bytes: devices and the kernel add it)."""
        return _HEADER.pack(mac_to_bytes(self.dst), mac_to_bytes(self.src), self.ethertype) + (
            self.payload
        )
