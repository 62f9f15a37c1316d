"""CUBIC (RFC 9438) with Linux's constants: beta 0.7, C 0.4, fast convergence.

Window in segments inside the formulas, bytes outside.  The clock is the
caller's ``now``; ``rtt`` (SRTT) feeds the Reno-friendly estimate (RFC 9438 4.3).
"""

from __future__ import annotations

from typing import Final

from .base import Controller

__all__ = ["BETA", "C", "Cubic"]

BETA: Final = 0.7  # RFC 9438 4.6 (Linux: beta 717/1024)
C: Final = 0.4  # RFC 9438 5 (Linux: bic_scale 41 -> 0.4)
ALPHA_AIMD: Final = 3 * (1 - BETA) / (1 + BETA)  # RFC 9438 4.3


class Cubic(Controller):
    __slots__ = ("w_max", "k", "epoch", "w_est", "cwnd_epoch", "_acc")
    name = "cubic"

    def __init__(self, mss: int, iw: int | None = None) -> None:
        super().__init__(mss, iw)
        self.w_max = 0.0  # segments, before the last reduction
        self.k = 0.0
        self.epoch: float | None = None  # start of the current congestion-avoidance epoch
        self.w_est = 0.0
        self.cwnd_epoch = 0.0  # segments at the start of the epoch
        self._acc = 0.0  # fractional segments of growth not yet applied

    def w_cubic(self, t: float) -> float:
        """RFC 9438 eq. 1, in segments, ``t`` seconds into the epoch."""
        return C * (t - self.k) ** 3 + self.w_max

    def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
        mss = self.mss
        cwnd_seg = self.cwnd / mss
        if self.epoch is None:
            self.epoch = now
            self.cwnd_epoch = cwnd_seg
            self.w_est = cwnd_seg
            if self.w_max <= cwnd_seg:
                self.w_max = cwnd_seg
                self.k = 0.0
            else:
                self.k = ((self.w_max - cwnd_seg) / C) ** (1 / 3)  # RFC 9438 eq. 2
        r = rtt if rtt is not None else 0.0
        t = now - self.epoch
        target = self.w_cubic(t + r)
        # RFC 9438 4.4/4.5: target clamped to [cwnd, 1.5 cwnd].
        target = min(max(target, cwnd_seg), 1.5 * cwnd_seg)
        seg_acked = acked / mss
        # Reno-friendly region (RFC 9438 4.3).
        self.w_est += ALPHA_AIMD * seg_acked / cwnd_seg
        if self.w_est > target:
            target = self.w_est
        self._acc += (target - cwnd_seg) / cwnd_seg * seg_acked
        if self._acc >= 1.0:
            whole = int(self._acc)
            self._acc -= whole
            self.cwnd += whole * mss

    def _reduced(self, flight: int, now: float) -> int:
        mss = self.mss
        cwnd_seg = self.cwnd / mss
        # Fast convergence (RFC 9438 4.7).
        if cwnd_seg < self.w_max:
            self.w_max = cwnd_seg * (1 + BETA) / 2
        else:
            self.w_max = cwnd_seg
        self.epoch = None
        self._acc = 0.0
        return max(int(self.cwnd * BETA), 2 * mss)  # RFC 9438 4.6 (Linux: of cwnd)

    def on_rto(self, flight: int, now: float, repeated: bool = False) -> None:
        super().on_rto(flight, now, repeated)
        self.epoch = None
