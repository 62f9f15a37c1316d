"""NewReno loss recovery without SACK: RFC 5681 fast retransmit / fast recovery
with RFC 6582's partial-ACK handling, over any window controller (``cc/``).

The connection tells this object about new ACKs, duplicate ACKs and timeouts;
the object answers with the congestion window and whether a segment must be
retransmitted now.  How the window grows outside recovery and how far it is
cut on a loss is the controller's (CUBIC by default, Reno's halving with
``cc="newreno"``).  SACK connections use ``sack.py``'s RFC 6675 recovery
instead, with the same controller.  Sequence numbers are compared modulo 2**32.
"""

from __future__ import annotations

from .cc import Controller, Reno, initial_window
from .seq import seq_ge

__all__ = ["NewReno", "initial_window"]


class NewReno:
    __slots__ = ("ctl", "in_recovery", "recover", "dup_acks", "_partial_seen")

    def __init__(
        self, mss: int, recover: int = 0, iw: int | None = None, ctl: Controller | None = None
    ) -> None:
        self.ctl = ctl if ctl is not None else Reno(mss, iw)
        self.in_recovery = False
        # One past the highest sequence number sent when recovery (or an RTO) began.
        self.recover = recover
        self.dup_acks = 0
        self._partial_seen = False

    @property
    def mss(self) -> int:
        return self.ctl.mss

    @property
    def cwnd(self) -> int:
        return self.ctl.cwnd

    @cwnd.setter
    def cwnd(self, v: int) -> None:
        self.ctl.cwnd = v

    @property
    def ssthresh(self) -> int:
        return self.ctl.ssthresh

    @ssthresh.setter
    def ssthresh(self, v: int) -> None:
        self.ctl.ssthresh = v

    @property
    def iw(self) -> int:
        return self.ctl.iw

    def set_mss(self, mss: int, iw: int | None = None) -> None:
        """The effective MSS became known (handshake): recompute the initial window."""
        self.ctl.set_mss(mss, iw)

    def on_new_ack(
        self, acked: int, ack: int, flight_after: int, now: float = 0.0, rtt: float | None = None
    ) -> tuple[bool, bool]:
        """``acked`` new bytes were acknowledged up to ``ack``; ``flight_after`` is
        what is still outstanding.  Returns ``(retransmit, restart_timer)``:
        ``retransmit`` means a partial ACK in fast recovery asks for the first
        unacknowledged segment to be sent again now (RFC 6582 3.2 step 5);
        ``restart_timer`` is false only for the second and later partial ACKs
        (the "Impatient" variant keeps the timer running then).
        """
        self.dup_acks = 0
        mss = self.mss
        ctl = self.ctl
        if self.in_recovery:
            if seq_ge(ack, self.recover):
                # Full acknowledgment: leave fast recovery, deflate (option 1).
                ctl.cwnd = min(ctl.ssthresh, max(flight_after, mss) + mss)
                self.in_recovery = False
                return False, True
            # Partial acknowledgment.
            ctl.cwnd -= acked
            if acked >= mss:
                ctl.cwnd += mss
            if ctl.cwnd < mss:
                ctl.cwnd = mss
            first = not self._partial_seen
            self._partial_seen = True
            return True, first
        ctl.on_ack(acked, now, rtt)
        return False, True

    def on_dup_ack(self, ack: int, flight: int, snd_max: int, now: float = 0.0) -> bool:
        """A duplicate ACK arrived.  Returns True when this is the third one and
        fast retransmit must send the first unacknowledged segment now."""
        self.dup_acks += 1
        ctl = self.ctl
        if self.in_recovery:
            ctl.cwnd += self.mss  # inflate for the segment that left the network
            return False
        if self.dup_acks == 3 and seq_ge(ack, self.recover):
            ctl.enter_recovery(flight, now)
            ctl.cwnd = ctl.ssthresh + 3 * self.mss
            self.recover = snd_max
            self.in_recovery = True
            self._partial_seen = False
            return True
        return False

    def on_timeout(
        self, flight: int, snd_max: int, repeated: bool = False, now: float = 0.0
    ) -> None:
        """Retransmission timer expired (RFC 5681 eq. 4, loss window of one segment).

        ``repeated``: the same segment already timed out once; ssthresh is then
        held constant (RFC 5681 3.1, after eq. 4)."""
        self.ctl.on_rto(flight, now, repeated)
        self.in_recovery = False
        self.dup_acks = 0
        self.recover = snd_max

    def on_idle(self) -> None:
        """Restart after an idle period longer than the RTO (RFC 5681 4.1)."""
        self.ctl.on_idle()
