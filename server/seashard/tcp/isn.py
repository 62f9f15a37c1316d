"""RFC 6528 initial sequence numbers: ISN = M + F(localip, localport, remoteip, remoteport, key).

``M`` is a clock that ticks every 4 microseconds, derived from the ``now`` the
caller passes in (the package never reads a clock itself); ``F`` is a keyed
BLAKE2s hash of the connection's 4-tuple, so ISNs of different connections are
unrelated to an off-path observer while successive incarnations of the same
4-tuple get increasing ISNs (which keeps old duplicates out of new incarnations).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os

from .seq import SEQ_MASK

__all__ = ["IsnGenerator"]

TICKS_PER_SECOND = 250_000  # one tick per 4 microseconds

Endpoint = tuple[object, int]


def _addr_bytes(addr: object) -> bytes:
    if isinstance(addr, bytes | bytearray):
        return bytes(addr)
    if isinstance(addr, int):
        return addr.to_bytes(16 if addr >> 32 else 4, "big")
    if isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return addr.packed
    return ipaddress.ip_address(str(addr)).packed


class IsnGenerator:
    """``IsnGenerator(secret).isn((local_ip, local_port), (remote_ip, remote_port), now)``.

    ``secret`` should be random and per host (``os.urandom(16)`` when omitted);
    keys longer than BLAKE2s accepts (32 bytes) are hashed down first.
    Addresses may be dotted strings, ``ipaddress`` objects, packed bytes or ints.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = os.urandom(16)
        if not secret:
            raise ValueError("ISN secret must not be empty")
        if len(secret) > 32:
            secret = hashlib.blake2s(secret).digest()
        self._key = bytes(secret)

    def offset(self, local: Endpoint, remote: Endpoint) -> int:
        """F(): the keyed 32-bit hash of the 4-tuple."""
        h = hashlib.blake2s(key=self._key, digest_size=4, person=b"tcp-isn")
        lip, lport = local
        rip, rport = remote
        h.update(_addr_bytes(lip))
        h.update(lport.to_bytes(2, "big"))
        h.update(_addr_bytes(rip))
        h.update(rport.to_bytes(2, "big"))
        return int.from_bytes(h.digest(), "big")

    @staticmethod
    def clock(now: float) -> int:
        """M: the 4-microsecond timer at ``now`` (seconds)."""
        return int(now * TICKS_PER_SECOND)

    def isn(self, local: Endpoint, remote: Endpoint, now: float) -> int:
        return (self.clock(now) + self.offset(local, remote)) & SEQ_MASK
