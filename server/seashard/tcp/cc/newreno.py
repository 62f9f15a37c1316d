"""Reno's window (RFC 5681): additive increase of one MSS per window, halving."""

from __future__ import annotations

from .base import Controller

__all__ = ["Reno"]


class Reno(Controller):
    __slots__ = ("_ca_acked",)
    name = "newreno"

    def __init__(self, mss: int, iw: int | None = None) -> None:
        super().__init__(mss, iw)
        self._ca_acked = 0

    def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
        # Byte counting: one MSS per cwnd of data acknowledged (RFC 5681 3.1, RFC 3465).
        self._ca_acked += acked
        if self._ca_acked >= self.cwnd:
            self._ca_acked -= self.cwnd
            self.cwnd += self.mss

    def _reduced(self, flight: int, now: float) -> int:
        self._ca_acked = 0
        return max(flight // 2, 2 * self.mss)  # RFC 5681 eq. 4
