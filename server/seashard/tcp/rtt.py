"""RFC 6298 retransmission timeout estimator (SRTT/RTTVAR, clamping, backoff).

Karn's rule is the caller's part: only feed ``sample()`` with round trips of
segments that were never retransmitted.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RttEstimator"]

ALPHA: Final = 1 / 8
BETA: Final = 1 / 4
K: Final = 4


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "rto", "rto_min", "rto_max", "granularity", "samples", "min_rtt")

    def __init__(
        self,
        rto_initial: float = 1.0,
        rto_min: float = 1.0,
        rto_max: float = 60.0,
        granularity: float = 0.001,
    ) -> None:
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity
        self.rto = min(max(rto_initial, rto_min), rto_max)
        self.samples = 0
        # The smallest sample (RACK's min_RTT; Linux keeps a 5-minute windowed min).
        self.min_rtt: float | None = None

    def sample(self, r: float) -> None:
        """Feed one round-trip measurement (seconds), RFC 6298 sections 2.2 and 2.3."""
        if r < 0:
            r = 0.0
        if self.min_rtt is None or r < self.min_rtt:
            self.min_rtt = r
        if self.srtt is None or self.rttvar is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - r)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * r
        self.samples += 1
        self._set(self.srtt + max(self.granularity, K * self.rttvar))

    def backoff(self) -> None:
        """Timer expired: double the RTO (RFC 6298 5.5), up to ``rto_max``."""
        self.rto = min(self.rto * 2, self.rto_max)

    def reset(self, rto: float) -> None:
        """Forget a backed-off value (e.g. after the handshake, RFC 6298 5.7)."""
        self._set(rto)

    def _set(self, rto: float) -> None:
        self.rto = min(max(rto, self.rto_min), self.rto_max)
