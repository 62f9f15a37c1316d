"""SACK (RFC 2018, RFC 2883): the receiver's blocks and the sender's scoreboard.

Receiver (``ReceiverSack``): the blocks to report, most recent first, as
Linux keeps them (``tcp_sack_new_ofo_skb``): a new out-of-order segment's block
(merged with every block it touches) moves to the front; at most
``MAX_BLOCKS`` are remembered; a D-SACK (RFC 2883) for a duplicate goes first
in the next ACK only.  Positions are stream offsets (no wrap).

Sender (``Scoreboard``): the SACKed ranges above SND.UNA, in sequence
numbers (compared relative to SND.UNA, so nothing wraps), and what RFC 6675
derives from them: ``IsLost`` as a boundary (every unSACKed byte below
``lost_boundary`` is lost), the holes, and the bytes SACKed.
``SackRecovery`` is the state of one RFC 6675 recovery episode with PRR
(RFC 6937) deciding how much may be sent per ACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .seq import seq_add, seq_diff

__all__ = ["DUPTHRESH", "MAX_BLOCKS", "ReceiverSack", "SackRecovery", "Scoreboard"]

MAX_BLOCKS: Final = 4  # blocks remembered (Linux TCP_NUM_SACKS); the option holds 4, 3 with TS
DUPTHRESH: Final = 3  # RFC 6675 DupThresh


class ReceiverSack:
    __slots__ = ("blocks", "dsack")

    def __init__(self) -> None:
        # [start, end) offsets, most recent first; an empty tuple while there are none
        self.blocks: list[tuple[int, int]] | tuple[()] = ()
        self.dsack: tuple[int, int] | None = None

    def add(self, start: int, end: int) -> None:
        """An out-of-order segment [start, end) was queued."""
        keep: list[tuple[int, int]] = []
        for s, e in self.blocks:
            if s <= end and e >= start:  # touches or overlaps: merge into the new one
                start = min(start, s)
                end = max(end, e)
            else:
                keep.append((s, e))
        self.blocks = [(start, end), *keep][:MAX_BLOCKS]

    def advance(self, rcv_off: int) -> None:
        """Data up to ``rcv_off`` is in order now: drop the blocks it covers."""
        if self.blocks:
            self.blocks = [(s, e) for s, e in self.blocks if e > rcv_off] or ()

    def clear(self) -> None:
        self.blocks = ()
        self.dsack = None

    def take(self, limit: int) -> list[tuple[int, int]]:
        """The blocks for the next ACK (D-SACK first, once)."""
        out = list(self.blocks[:limit])
        if self.dsack is not None:
            out = [self.dsack, *[b for b in self.blocks if b != self.dsack]][:limit]
            self.dsack = None
        return out


class Scoreboard:
    __slots__ = ("ranges", "sacked")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # [start, end) seqs, ascending from SND.UNA
        self.sacked = 0  # bytes in ranges
        # (The connection makes its scoreboard at the first SACK block and drops it once
        # nothing above SND.UNA is SACKed: an idle connection holds none.)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def clear(self) -> None:
        self.ranges = []
        self.sacked = 0

    def update(
        self, blocks: tuple[tuple[int, int], ...], una: int, snd_max: int
    ) -> tuple[int, bool]:
        """Take an ACK's SACK blocks.  Returns (bytes newly SACKed, saw a D-SACK).
        Blocks outside (SND.UNA, SND.MAX] are ignored (RFC 2883: a first block
        below the cumulative ACK, or inside the second block, is a D-SACK)."""
        dsack = False
        if blocks:
            l0, r0 = blocks[0]
            if seq_diff(r0, una) <= 0:
                dsack = True
            elif len(blocks) > 1:
                l1, r1 = blocks[1]
                if seq_diff(l0, l1) >= 0 and seq_diff(r1, r0) >= 0:
                    dsack = True
        top = seq_diff(snd_max, una)
        before = self.sacked
        for i, (left, right) in enumerate(blocks):
            if dsack and i == 0:
                continue
            s = seq_diff(left, una)
            e = seq_diff(right, una)
            if s < 0:
                s = 0
            if e > top:
                e = top
            if e <= s:
                continue
            self._insert(seq_add(una, s), seq_add(una, e), una)
        return self.sacked - before, dsack

    def _insert(self, s: int, e: int, una: int) -> None:
        rs = [(seq_diff(a, una), seq_diff(b, una)) for a, b in self.ranges]
        ns, ne = seq_diff(s, una), seq_diff(e, una)
        out: list[tuple[int, int]] = []
        for a, b in rs:
            if b < ns or a > ne:
                out.append((a, b))
            else:
                ns, ne = min(ns, a), max(ne, b)
        out.append((ns, ne))
        out.sort()
        self.ranges = [[seq_add(una, a), seq_add(una, b)] for a, b in out]
        self.sacked = sum(b - a for a, b in out)

    def advance(self, una: int) -> None:
        """SND.UNA moved to ``una``: forget what it covers."""
        keep: list[list[int]] = []
        total = 0
        for a, b in self.ranges:
            if seq_diff(b, una) <= 0:
                continue
            if seq_diff(a, una) < 0:
                a = una
            keep.append([a, b])
            total += seq_diff(b, a)
        self.ranges = keep
        self.sacked = total

    def high(self, una: int) -> int:
        """One past the highest SACKed byte (SND.UNA when nothing is SACKed)."""
        return self.ranges[-1][1] if self.ranges else una

    def sacked_at(self, seq: int, una: int) -> int | None:
        """The end of the SACKed range holding ``seq``, or None."""
        x = seq_diff(seq, una)
        for a, b in self.ranges:
            if seq_diff(a, una) <= x < seq_diff(b, una):
                return b
        return None

    def next_start(self, seq: int, una: int) -> int | None:
        """The start of the first SACKed range above ``seq``, or None."""
        x = seq_diff(seq, una)
        for a, _b in self.ranges:
            if seq_diff(a, una) > x:
                return a
        return None

    def lost_boundary(self, una: int, mss: int) -> int:
        """RFC 6675 IsLost: a byte is lost when more than (DupThresh - 1) * MSS
        bytes above it are SACKed.  Returns the seq below which every unSACKed
        byte is lost (SND.UNA: none is)."""
        need = (DUPTHRESH - 1) * mss
        above = 0
        for a, b in reversed(self.ranges):
            above += seq_diff(b, a)
            if above > need:
                return a  # every unSACKed byte below this range has ``above`` over it
        return una

    def holes(self, una: int, upto: int) -> list[tuple[int, int]]:
        """The unSACKed ranges in [una, upto), ascending."""
        out: list[tuple[int, int]] = []
        pos = una
        lim = seq_diff(upto, una)
        for a, b in self.ranges:
            if seq_diff(a, una) >= lim:
                break
            if seq_diff(a, pos) > 0:
                out.append((pos, a))
            pos = b
        if seq_diff(upto, pos) > 0:
            out.append((pos, upto))
        return out

    def unsacked(self, una: int, lo: int, hi: int) -> int:
        """UnSACKed bytes in [lo, hi)."""
        return sum(
            max(0, seq_diff(min_seq(b, hi, una), max_seq(a, lo, una)))
            for a, b in self.holes(una, hi)
        )


def min_seq(a: int, b: int, una: int) -> int:
    return a if seq_diff(a, una) <= seq_diff(b, una) else b


def max_seq(a: int, b: int, una: int) -> int:
    return a if seq_diff(a, una) >= seq_diff(b, una) else b


@dataclass(slots=True)
class SackRecovery:
    """One RFC 6675 recovery episode, with PRR's counters (RFC 6937)."""

    recover: int  # RFC 6675 RecoveryPoint: SND.MAX when it began
    high_rxt: int  # RFC 6675 HighRxt: one past the highest byte retransmitted
    recover_fs: int  # PRR RecoverFS: Linux's prior_cwnd, bytes
    ssthresh: int
    prr_delivered: int = 0
    prr_out: int = 0
    quota: int = 0  # bytes PRR lets us send now

    def prr(self, delivered: int, pipe: int, mss: int) -> None:
        """RFC 6937 on an ACK that delivered ``delivered`` bytes, with the
        reduction bound PRR-SSRB (Linux's), counted in whole segments as Linux."""
        self.prr_delivered += delivered
        if pipe > self.ssthresh:
            want = -(-self.prr_delivered * self.ssthresh // self.recover_fs)  # ceil
            want = -(-want // mss) * mss  # Linux counts packets: round up to a segment
            sndcnt = want - self.prr_out
        else:
            limit = max(self.prr_delivered - self.prr_out, delivered) + mss
            sndcnt = min(self.ssthresh - pipe, limit)
        if sndcnt < 0:
            sndcnt = 0
        if self.prr_out == 0 and sndcnt < mss:
            sndcnt = mss  # the fast retransmission itself always goes (Linux fast_rexmit)
        self.quota = sndcnt
