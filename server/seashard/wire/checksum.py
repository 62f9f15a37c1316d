"""RFC 1071 internet checksum and the TCP/UDP pseudo-header sum.

The one's-complement sum of 16-bit big-endian words equals the value of the
whole buffer, read as one big-endian integer, modulo 0xFFFF (because
2**16 == 1 mod 0xFFFF). ``int.from_bytes`` and a single modulo run in C, so
this is fast for any size without a per-word Python loop.
"""

from __future__ import annotations

import socket

Buffer = bytes | bytearray | memoryview


def ones_complement_sum(data: Buffer, initial: int = 0) -> int:
    """The folded 16-bit one's-complement sum of ``data`` (odd length is zero-padded).

    Returns 0 only when every word (and ``initial``) is zero, else 1..0xFFFF, so that
    sums can be chained: ``ones_complement_sum(b, ones_complement_sum(a))``.
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    n += initial
    if n == 0:
        return 0
    return n % 0xFFFF or 0xFFFF


def internet_checksum(data: Buffer, initial: int = 0) -> int:
    """The checksum to store in a header whose checksum field is zero in ``data``."""
    return ~ones_complement_sum(data, initial) & 0xFFFF


def verify(data: Buffer, initial: int = 0) -> bool:
    """True when ``data`` (checksum field included) sums to 0xFFFF, i.e. is intact."""
    return ones_complement_sum(data, initial) == 0xFFFF


def pseudo_header_sum(src: str | bytes, dst: str | bytes, proto: int, length: int) -> int:
    """The one's-complement sum of the IPv4 pseudo-header (RFC 793 / RFC 768)."""
    src_b = socket.inet_aton(src) if isinstance(src, str) else src
    dst_b = socket.inet_aton(dst) if isinstance(dst, str) else dst
    # src(4) dst(4) zero(1) proto(1) length(2) as one 96-bit integer.
    n = (
        (int.from_bytes(src_b, "big") << 64)
        | (int.from_bytes(dst_b, "big") << 32)
        | (proto << 16)
        | (length & 0xFFFF)
    )
    if n == 0:
        return 0
    return n % 0xFFFF or 0xFFFF
