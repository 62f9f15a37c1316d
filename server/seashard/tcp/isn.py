"""RFC 6528 initial sequence numbers: ISN = M + F(localip, localport, remoteip, remoteport, key).

``M`` is a clock that ticks every 4 microseconds, derived from the ``now`` the
caller passes in (the package never reads a clock itself); ``F`` is a keyed
BLAKE2b hash of the connection's 4-tuple (``flowhash``), so ISNs of different connections are
unrelated to an off-path observer while successive incarnations of the same
4-tuple get increasing ISNs (which keeps old duplicates out of new incarnations).
"""

from __future__ import annotations

from .flowhash import Endpoint, FlowHash, flow_bytes
from .seq import SEQ_MASK

__all__ = ["Endpoint", "IsnGenerator"]

TICKS_PER_SECOND = 250_000  # one tick per 4 microseconds


class IsnGenerator:
    """``IsnGenerator(secret).isn((local_ip, local_port), (remote_ip, remote_port), now)``.

    ``secret`` should be random and per host (random bytes when omitted).
    Addresses may be dotted strings, ``ipaddress`` objects, packed bytes or ints.
    """

    __slots__ = ("_hash",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._hash = FlowHash(secret, what="ISN")

    def offset(self, local: Endpoint, remote: Endpoint) -> int:
        """F(): the keyed 32-bit hash of the 4-tuple."""
        return self._hash.hash32(flow_bytes(local, remote), b"isn")

    @staticmethod
    def clock(now: float) -> int:
        """M: the 4-microsecond timer at ``now`` (seconds)."""
        return int(now * TICKS_PER_SECOND)

    def isn(self, local: Endpoint, remote: Endpoint, now: float) -> int:
        return (self.clock(now) + self.offset(local, remote)) & SEQ_MASK
