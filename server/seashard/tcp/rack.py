"""RACK (RFC 8985 6): time-based loss detection for SACK connections.

Every original transmission is remembered with its send time
(``RackSegment``).  When an ACK delivers (cumulatively or by SACK) a segment,
``RACK.xmit_ts``/``end_seq``/``rtt`` follow the most recently *sent* of the
delivered ones.  A segment sent before that one and still undelivered is lost
once ``RACK.rtt + reo_wnd`` has passed since it was sent; one not yet that old
arms the reorder timer (``detect`` returns when).

Linux's choices: the reordering window is min_RTT/4, at most SRTT
(tcp_rack_reo_wnd), and 0 while no reordering was seen and the connection is
in recovery or has DupThresh segments SACKed.  A retransmission updates its
segment's send time and marks it retransmitted, so a retransmission sent
before RACK.xmit_ts and not delivered within RACK.rtt + reo_wnd is lost
again (``RackSegment.lost``, Linux tcp_rack_detect_loss) and the recovery
code resends it before anything above HighRxt, without waiting for the RTO.
Its delivery updates RACK only if it came later than min_RTT after the
retransmission (RFC 8985 6.2 step 2).

What is lost is kept as a boundary, ``lost_to``, as ``Scoreboard.lost_boundary``:
original transmissions go out in sequence order, so the lost ones below the
newest delivered one form a prefix of the undelivered data.  Retransmissions
do not (they follow recovery's order), hence their own flag.
"""

from __future__ import annotations

from collections import deque

from .sack import Scoreboard
from .seq import seq_add, seq_diff, seq_gt

__all__ = ["Rack"]


class RackSegment:
    __slots__ = ("delivered", "end", "lost", "rexmit", "start", "step", "ts")

    def __init__(self, start: int, end: int, ts: float, step: int = 0) -> None:
        self.start = start
        self.end = end
        self.ts = ts
        # > 0: a TSO frame, the wire segments of ``step`` bytes it is cut into held as
        # one entry until something tells them apart (see Rack.sent)
        self.step = step
        self.rexmit = False
        self.delivered = False
        self.lost = False  # a retransmission RACK found lost (originals: ``lost_to``)

    def pieces(self) -> list[RackSegment]:
        """The wire segments of a TSO frame (step bytes each, the last one the rest)."""
        start, end, step, ts = self.start, self.end, self.step, self.ts
        n = seq_diff(end, start)
        last = seq_add(start, (n - 1) // step * step)
        out = []
        s = start
        while s != last:
            nxt = seq_add(s, step)
            out.append(RackSegment(s, nxt, ts))
            s = nxt
        out.append(RackSegment(last, end, ts))
        return out


class Rack:
    __slots__ = ("end_seq", "fack", "lost_to", "min_rtt", "reord_seen", "rtt", "segs", "xmit_ts")

    def __init__(self) -> None:
        # ascending seq, above SND.UNA; an empty tuple while nothing is out (an empty deque
        # keeps a 64-slot block: an idle connection should not)
        self.segs: deque[RackSegment] | tuple[()] = ()
        self.xmit_ts: float | None = None  # RACK.xmit_ts
        self.end_seq = 0  # RACK.end_seq
        self.rtt = 0.0  # RACK.rtt
        self.min_rtt: float | None = None
        self.fack: int | None = None  # the highest end delivered (for reordering)
        self.reord_seen = False
        self.lost_to: int | None = None

    def clear(self) -> None:
        self.segs = ()
        self.lost_to = None

    def sent(self, start: int, end: int, now: float, step: int = 0) -> None:
        """An original transmission of [start, end); ``step`` > 0: a TSO frame that
        leaves as wire segments of ``step`` bytes (no FIN in it).

        RACK judges wire segments, but a TSO frame's are sent at once and, until an
        ACK ends inside the frame, a SACK arrives or part of it is sent again, are
        delivered at once, lost at once and judged alike: one entry stands for them
        (as one skb does in Linux), and is cut into them (``pieces``) when that
        stops being true.  Bulk transfer pays once per frame, not per MSS."""
        segs = self.segs
        if not segs:
            segs = self.segs = deque()
        segs.append(RackSegment(start, end, now, step))

    def _split(self, segs: deque[RackSegment]) -> None:
        """Cut every TSO entry into its wire segments."""
        if any(s.step for s in segs):
            whole: deque[RackSegment] = deque()
            for s in segs:
                if s.step:
                    whole.extend(s.pieces())
                else:
                    whole.append(s)
            segs.clear()
            segs.extend(whole)

    def retransmitted(self, start: int, end: int, now: float, una: int) -> None:
        lo = seq_diff(start, una)
        hi = seq_diff(end, una)
        segs = self.segs
        if not segs:
            return
        assert isinstance(segs, deque)
        self._split(segs)
        for s in segs:
            if seq_diff(s.start, una) >= hi:
                break
            if seq_diff(s.end, una) > lo:
                s.ts = now
                s.rexmit = True
                s.lost = False

    def on_ack(self, una: int, board: Scoreboard | None, now: float) -> None:
        """RFC 8985 6.2 steps 1-2: update RACK from what this ACK delivered."""
        segs = self.segs
        if not segs:
            if self.lost_to is not None and seq_diff(self.lost_to, una) <= 0:
                self.lost_to = None
            return
        assert isinstance(segs, deque)
        if board:
            self._split(segs)  # SACKed ranges tell a frame's wire segments apart
            for s in segs:
                if seq_diff(s.start, una) >= 0 and not s.delivered:
                    end = board.sacked_at(s.start, una)
                    if end is not None and seq_diff(end, s.end) >= 0:
                        self._delivered(s, now)
        while segs:
            s = segs[0]
            if seq_diff(s.end, una) <= 0:
                segs.popleft()
                if not s.delivered:
                    self._delivered(s, now)
            elif s.step and seq_diff(una, s.start) > 0:
                segs.popleft()  # the ACK ends inside a TSO frame: its wire segments
                segs.extendleft(reversed(s.pieces()))
            else:
                break
        if not segs:
            self.segs = ()  # everything delivered: let the deque's block go
            # ... and the flight's RACK state: every later segment is sent after
            # xmit_ts and ends above fack, so the first delivery of the next flight
            # sets them as the old values would have.  Idle, a connection keeps
            # min_rtt and reord_seen only (4 fewer objects each).
            self.xmit_ts = None
            self.end_seq = 0
            self.rtt = 0.0
            self.fack = None
        if self.lost_to is not None and seq_diff(self.lost_to, una) <= 0:
            self.lost_to = None

    def _delivered(self, s: RackSegment, now: float) -> None:
        s.delivered = True
        rtt = now - s.ts
        if s.rexmit and self.min_rtt is not None and rtt < self.min_rtt:
            return  # probably the original's ACK: ambiguous, not a sample
        if not s.rexmit:
            if self.fack is not None and seq_gt(self.fack, s.end):
                self.reord_seen = True  # delivered below what was delivered before
            elif self.fack is None or seq_gt(s.end, self.fack):
                self.fack = s.end
            if self.min_rtt is None or rtt < self.min_rtt:
                self.min_rtt = rtt
        xts = self.xmit_ts
        if xts is None or s.ts > xts or (s.ts == xts and seq_gt(s.end, self.end_seq)):
            self.xmit_ts = s.ts
            self.end_seq = s.end
            self.rtt = rtt

    def reo_wnd(
        self,
        min_rtt: float | None,
        srtt: float | None,
        in_recovery: bool,
        sacked_segs: int,
        dupthresh: int,
    ) -> float:
        """Linux tcp_rack_reo_wnd (``min_rtt``: the connection's, handshake included)."""
        if not self.reord_seen and (in_recovery or sacked_segs >= dupthresh):
            return 0.0
        if min_rtt is None:
            return 0.0
        w = min_rtt / 4
        return min(w, srtt) if srtt is not None else w

    def detect(self, una: int, now: float, reo_wnd: float) -> float | None:
        """RFC 8985 6.2 step 5: mark lost (``lost_to``); returns the reorder
        timeout (seconds from now) for the segments not yet old enough, or None."""
        xts = self.xmit_ts
        if xts is None:
            return None
        timeout: float | None = None
        for s in self.segs:
            if s.delivered or s.lost:
                continue
            if not (xts > s.ts or (xts == s.ts and seq_gt(self.end_seq, s.end))):
                if s.rexmit:
                    continue  # resent late: says nothing of the segments above
                # An original sent after RACK's segment: so is everything above it
                # (a retransmission is always later than its original).
                break
            remaining = s.ts + self.rtt + reo_wnd - now
            if remaining <= 0:
                if s.rexmit:
                    s.lost = True  # its retransmission is lost too: resend again
                elif self.lost_to is None or seq_gt(s.end, self.lost_to):
                    self.lost_to = s.end
            elif timeout is None or remaining > timeout:
                timeout = remaining
        if self.lost_to is not None and seq_diff(self.lost_to, una) <= 0:
            self.lost_to = None
        return timeout

    def relost(self) -> RackSegment | None:
        """The first retransmitted segment found lost again and not resent since."""
        for s in self.segs:
            if s.lost and not s.delivered:
                return s
        return None

    def relost_ranges(self) -> list[tuple[int, int]]:
        return [(s.start, s.end) for s in self.segs if s.lost and not s.delivered]
