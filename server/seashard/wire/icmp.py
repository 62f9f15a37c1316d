"""ICMP messages (RFC 792); echo request/reply is what the stack answers."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .checksum import internet_checksum, verify
from .errors import MalformedError

_HEADER = struct.Struct("!BBHHH")


class IcmpType(enum.IntEnum):
    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11


@dataclass(slots=True)
class IcmpPacket:
    """An ICMP message. ``ident``/``seq`` are the two 16-bit halves of the 4-byte
    rest-of-header: identifier and sequence number for echo messages."""

    type: int
    code: int = 0
    ident: int = 0
    seq: int = 0
    payload: bytes = b""
    checksum: int = 0

    @classmethod
    def parse(cls, data: bytes, *, verify_checksum: bool = True) -> IcmpPacket:
        if len(data) < 8:
            raise MalformedError("truncated", f"icmp message of {len(data)} bytes")
        if verify_checksum and not verify(data):
            raise MalformedError("bad_checksum", "icmp")
        type_, code, csum, ident, seq = _HEADER.unpack_from(data)
        return cls(type_, code, ident, seq, bytes(data[8:]), csum)

    def echo_reply(self) -> IcmpPacket:
        """The reply to this echo request: same identifier, sequence and data."""
        return IcmpPacket(IcmpType.ECHO_REPLY, 0, self.ident, self.seq, self.payload)

    def build(self) -> bytes:
        header = _HEADER.pack(self.type, self.code, 0, self.ident & 0xFFFF, self.seq & 0xFFFF)
        csum = internet_checksum(header + self.payload)
        return header[:2] + csum.to_bytes(2, "big") + header[4:] + self.payload
