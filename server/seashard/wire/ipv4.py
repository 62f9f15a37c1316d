"""IPv4 headers (RFC 791). Addresses are dotted-quad strings."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final

from .checksum import Buffer, internet_checksum, verify
from .errors import MalformedError
from .numbers import IpProto as IpProto  # re-exported: its home before mypyc

_HEADER: Final = struct.Struct("!BBHHHBBH4s4s")
_DF: Final = 0x4000
_MF: Final = 0x2000


def ip_to_bytes(ip: str | bytes) -> bytes:
    return socket.inet_aton(ip) if isinstance(ip, str) else bytes(ip)


@dataclass(slots=True)
class IPv4Packet:
    """An IPv4 header and its payload.

    ``frag_offset`` is in 8-byte units, as on the wire. ``options`` are kept raw;
    ``build`` pads them to a 4-byte boundary with zeros (EOL). ``checksum`` holds
    the parsed value; ``build`` always computes a fresh one.
    """

    src: str
    dst: str
    proto: int
    payload: bytes = b""
    ttl: int = 64
    ident: int = 0
    tos: int = 0
    dont_fragment: bool = True
    more_fragments: bool = False
    frag_offset: int = 0
    options: bytes = b""
    checksum: int = 0

    @property
    def header_length(self) -> int:
        return 20 + (len(self.options) + 3) // 4 * 4

    @property
    def total_length(self) -> int:
        return self.header_length + len(self.payload)

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.frag_offset != 0

    @classmethod
    def parse(cls, data: Buffer, *, verify_checksum: bool = True) -> IPv4Packet:
        """Parse a datagram; bytes past the total length (Ethernet padding) are ignored."""
        if len(data) < 20:
            raise MalformedError("truncated", f"ipv4 header of {len(data)} bytes")
        vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HEADER.unpack_from(data)
        if vihl >> 4 != 4:
            raise MalformedError("bad_version", f"version {vihl >> 4}")
        hlen = (vihl & 0x0F) * 4
        if hlen < 20:
            raise MalformedError("bad_header_length", f"ihl {hlen // 4}")
        if len(data) < hlen:
            raise MalformedError("truncated", f"header length {hlen} > {len(data)} bytes")
        if total < hlen:
            raise MalformedError("bad_length", f"total length {total} < header {hlen}")
        if total > len(data):
            raise MalformedError("truncated", f"total length {total} > {len(data)} bytes")
        if verify_checksum and not verify(data[:hlen]):
            raise MalformedError("bad_checksum", "ipv4 header")
        return cls(
            src=socket.inet_ntoa(src),
            dst=socket.inet_ntoa(dst),
            proto=proto,
            payload=bytes(data[hlen:total]),
            ttl=ttl,
            ident=ident,
            tos=tos,
            dont_fragment=bool(frag & _DF),
            more_fragments=bool(frag & _MF),
            frag_offset=frag & 0x1FFF,
            options=bytes(data[20:hlen]),
            checksum=csum,
        )

    def build_header(self) -> bytes:
        options = self.options
        if len(options) > 40:
            raise ValueError("ipv4 options longer than 40 bytes")
        if len(options) % 4:
            options += b"\x00" * (4 - len(options) % 4)
        hlen = 20 + len(options)
        total = hlen + len(self.payload)
        if total > 0xFFFF:
            raise ValueError(f"ipv4 datagram of {total} bytes")
        frag = (
            (_DF if self.dont_fragment else 0)
            | (_MF if self.more_fragments else 0)
            | (self.frag_offset & 0x1FFF)
        )
        header = bytearray(
            _HEADER.pack(
                0x40 | hlen // 4,
                self.tos,
                total,
                self.ident & 0xFFFF,
                frag,
                self.ttl,
                self.proto,
                0,
                ip_to_bytes(self.src),
                ip_to_bytes(self.dst),
            )
        )
        header += options
        struct.pack_into("!H", header, 10, internet_checksum(header))
        return bytes(header)

    def build(self) -> bytes:
        return self.build_header() + self.payload
