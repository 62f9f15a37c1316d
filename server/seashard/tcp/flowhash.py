"""Keyed 32-bit hashes of a connection's 4-tuple: what RFC 6528 ISNs, SYN cookies
and the TSval clock offsets are made of (BLAKE2b under a per-process secret, so
an off-path observer can neither predict nor correlate them)."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import struct

__all__ = ["Endpoint", "FlowHash", "addr_bytes", "flow_bytes"]

Endpoint = tuple[object, int]  # (address, port); addresses as in ``addr_bytes``


def addr_bytes(addr: object) -> bytes:
    """An address as packed bytes: dotted strings, ``ipaddress`` objects, bytes or ints."""
    if isinstance(addr, str):
        try:
            return socket.inet_aton(addr)  # the common case, and the fast one (SYN floods)
        except OSError:
            return ipaddress.ip_address(addr).packed
    if isinstance(addr, bytes | bytearray):
        return bytes(addr)
    if isinstance(addr, int):
        return addr.to_bytes(16 if addr >> 32 else 4, "big")
    if isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return addr.packed
    return ipaddress.ip_address(str(addr)).packed


def flow_bytes(local: Endpoint, remote: Endpoint) -> bytes:
    """The 4-tuple as bytes: remote address, local address, remote port, local port."""
    (lip, lport), (rip, rport) = local, remote
    return addr_bytes(rip) + addr_bytes(lip) + struct.pack("!HH", rport, lport)


class FlowHash:
    """``FlowHash(secret).hash32(flow, salt)``: keyed BLAKE2b, 32 bits.  ``secret``
    defaults to 32 random bytes; longer than BLAKE2b's 64-byte key, it is hashed down."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes | None = None, *, what: str = "flow hash") -> None:
        if secret is None:
            secret = os.urandom(32)
        if not secret:
            raise ValueError(f"{what} secret must not be empty")
        if len(secret) > 64:
            secret = hashlib.blake2b(secret).digest()
        self._key = bytes(secret)

    def hash32(self, flow: bytes, salt: bytes = b"") -> int:
        h = hashlib.blake2b(flow + salt, key=self._key, digest_size=4)
        return int.from_bytes(h.digest(), "big")
