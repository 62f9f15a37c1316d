"""NewReno congestion control: RFC 5681 (slow start, congestion avoidance, fast
retransmit / fast recovery) with RFC 6582's partial-ACK handling.

The connection tells this object about new ACKs, duplicate ACKs and timeouts;
the object answers with the congestion window and whether a segment must be
retransmitted now.  Sequence numbers are compared modulo 2**32.
"""

from __future__ import annotations

from .seq import seq_ge

__all__ = ["NewReno", "initial_window"]


def initial_window(mss: int) -> int:
    """RFC 6928's initial window: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class NewReno:
    __slots__ = (
        "mss",
        "cwnd",
        "ssthresh",
        "in_recovery",
        "recover",
        "dup_acks",
        "iw",
        "_ca_acked",
        "_partial_seen",
    )

    def __init__(self, mss: int, recover: int = 0, iw: int | None = None) -> None:
        self.mss = mss
        self.iw = iw if iw is not None else initial_window(mss)
        self.cwnd = self.iw
        self.ssthresh = 1 << 30  # "arbitrarily high" (RFC 5681 3.1)
        self.in_recovery = False
        # One past the highest sequence number sent when recovery (or an RTO) began.
        self.recover = recover
        self.dup_acks = 0
        self._ca_acked = 0
        self._partial_seen = False

    def set_mss(self, mss: int, iw: int | None = None) -> None:
        """The effective MSS became known (handshake): recompute the initial window."""
        self.mss = mss
        self.iw = iw if iw is not None else initial_window(mss)
        self.cwnd = self.iw

    def on_new_ack(self, acked: int, ack: int, flight_after: int) -> tuple[bool, bool]:
        """``acked`` new bytes were acknowledged up to ``ack``; ``flight_after`` is
        what is still outstanding.  Returns ``(retransmit, restart_timer)``:
        ``retransmit`` means a partial ACK in fast recovery asks for the first
        unacknowledged segment to be sent again now (RFC 6582 3.2 step 5);
        ``restart_timer`` is false only for the second and later partial ACKs
        (the "Impatient" variant keeps the timer running then).
        """
        self.dup_acks = 0
        mss = self.mss
        if self.in_recovery:
            if seq_ge(ack, self.recover):
                # Full acknowledgment: leave fast recovery, deflate (option 1).
                self.cwnd = min(self.ssthresh, max(flight_after, mss) + mss)
                self.in_recovery = False
                self._ca_acked = 0
                return False, True
            # Partial acknowledgment.
            self.cwnd -= acked
            if acked >= mss:
                self.cwnd += mss
            if self.cwnd < mss:
                self.cwnd = mss
            first = not self._partial_seen
            self._partial_seen = True
            return True, first
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, mss)  # slow start (RFC 5681 eq. 2)
        else:
            # Congestion avoidance with byte counting: one MSS per cwnd of data acked.
            self._ca_acked += acked
            if self._ca_acked >= self.cwnd:
                self._ca_acked -= self.cwnd
                self.cwnd += mss
        return False, True

    def on_dup_ack(self, ack: int, flight: int, snd_max: int) -> bool:
        """A duplicate ACK arrived.  Returns True when this is the third one and
        fast retransmit must send the first unacknowledged segment now."""
        self.dup_acks += 1
        if self.in_recovery:
            self.cwnd += self.mss  # inflate for the segment that left the network
            return False
        if self.dup_acks == 3 and seq_ge(ack, self.recover):
            self.ssthresh = max(flight // 2, 2 * self.mss)
            self.cwnd = self.ssthresh + 3 * self.mss
            self.recover = snd_max
            self.in_recovery = True
            self._partial_seen = False
            return True
        return False

    def on_timeout(self, flight: int, snd_max: int, repeated: bool = False) -> None:
        """Retransmission timer expired (RFC 5681 eq. 4, loss window of one segment).

        ``repeated``: the same segment already timed out once; ssthresh is then
        held constant (RFC 5681 3.1, after eq. 4)."""
        if not repeated:
            self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.in_recovery = False
        self.dup_acks = 0
        self._ca_acked = 0
        self.recover = snd_max

    def on_idle(self) -> None:
        """Restart after an idle period longer than the RTO (RFC 5681 4.1)."""
        self.cwnd = min(self.cwnd, self.iw)
