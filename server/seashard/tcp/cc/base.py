"""What every congestion controller shares: the window, slow start, the interface."""

from __future__ import annotations

from typing import Final

__all__ = ["Controller", "initial_window"]

INFINITE_SSTHRESH: Final = 1 << 30  # "arbitrarily high" (RFC 5681 3.1)


def initial_window(mss: int) -> int:
    """RFC 6928's initial window: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class Controller:
    """Slow start and the shared bookkeeping; subclasses decide congestion
    avoidance (``_avoid``) and the multiplicative decrease (``_reduced``)."""

    __slots__ = ("mss", "iw", "cwnd", "ssthresh")  # one per connection: no __dict__
    name = "base"

    def __init__(self, mss: int, iw: int | None = None) -> None:
        self.mss = mss
        self.iw = iw if iw is not None else initial_window(mss)
        self.cwnd = self.iw
        self.ssthresh = INFINITE_SSTHRESH

    def set_mss(self, mss: int, iw: int | None = None) -> None:
        """The effective MSS became known (handshake): recompute the initial window."""
        self.mss = mss
        self.iw = iw if iw is not None else initial_window(mss)
        self.cwnd = self.iw

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        if self.cwnd < self.ssthresh:
            # Slow start as Linux's tcp_slow_start: every byte a stretch ACK covers
            # counts (a GRO receiver ACKs 64 KB at a time; RFC 5681 eq. 2's min(acked,
            # MSS) would grow the window by one segment per 45), up to ssthresh; the
            # rest goes to congestion avoidance.
            grown = min(self.cwnd + acked, self.ssthresh)
            acked -= grown - self.cwnd
            self.cwnd = grown
            if acked <= 0:
                return
        self._avoid(acked, now, rtt)

    def enter_recovery(self, flight: int, now: float) -> int:
        self.ssthresh = self._reduced(flight, now)
        return self.ssthresh

    def exit_recovery(self) -> None:
        self.cwnd = self.ssthresh

    def on_rto(self, flight: int, now: float, repeated: bool = False) -> None:
        """RFC 5681 eq. 4 with a loss window of one segment; a repeated timeout
        of the same segment keeps ssthresh (RFC 5681 3.1)."""
        if not repeated:
            self.ssthresh = self._reduced(flight, now)
        self.cwnd = self.mss

    def on_idle(self) -> None:
        self.cwnd = min(self.cwnd, self.iw)

    def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
        raise NotImplementedError

    def _reduced(self, flight: int, now: float) -> int:
        raise NotImplementedError
