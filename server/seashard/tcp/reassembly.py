"""Out-of-order receive queue.

Holds data that arrived beyond ``RCV.NXT`` (inside the receive window) until the
gap before it fills.  Positions are *stream offsets* (plain, unbounded integers:
bytes since the first data byte), so nothing here wraps; the connection converts
sequence numbers to offsets.  Stored blocks never overlap: a new segment only
fills the holes between what is already held (overlaps and duplicates are
trimmed away), and blocks are not merged (no copying on insert).

What a peer can make a connection hold here is bounded twice: the connection
only passes data inside its receive window, and every block is charged its
*true size* (payload plus ``BLOCK_OVERHEAD``, like Linux's skb truesize, so a
flood of one-byte segments costs what it really costs) against the
connection's ``limit`` and the shard's shared ``ReassemblyBudget``.  A segment
that does not fit is refused whole (``insert`` returns -1); Linux prunes its
out-of-order queue from the highest sequence number under memory pressure,
and refusing the newcomer (usually the highest) comes to nearly the same.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

__all__ = ["BLOCK_OVERHEAD", "Reassembler", "ReassemblyBudget"]

# What one held block costs beyond its payload: a bytes object's header and two
# list slots, rounded up.
BLOCK_OVERHEAD: Final = 64


class ReassemblyBudget:
    """The out-of-order bytes (true size) every connection of one shard may hold together."""

    __slots__ = ("limit", "used", "peak", "refused", "refused_conn")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("reassembly budget must not be negative")
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most ever held at once
        self.refused = 0  # segments refused because the budget was spent
        self.refused_conn = 0  # segments refused by their connection's own limit


class Reassembler:
    __slots__ = ("_starts", "_blocks", "held", "truesize", "fin_offset", "limit", "budget")

    def __init__(self, limit: int | None = None, budget: ReassemblyBudget | None = None) -> None:
        # Empty tuples while nothing is held (no list storage); lists from the first insert.
        self._starts: list[int] | tuple[()] = ()
        self._blocks: list[bytes] | tuple[()] = ()
        self.held = 0  # bytes held
        self.truesize = 0  # what they cost: bytes + BLOCK_OVERHEAD per block
        self.fin_offset: int | None = None  # stream offset of an out-of-order FIN
        self.limit = limit  # the most this connection may hold (true size); None: no limit
        self.budget = budget  # the shard's, shared; None: no budget

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts) or self.fin_offset is not None

    def ranges(self) -> list[tuple[int, int]]:
        """Held data as ``[start, end)`` offsets, adjacent blocks coalesced (for SACK/debugging)."""
        out: list[tuple[int, int]] = []
        for s, b in zip(self._starts, self._blocks, strict=True):
            e = s + len(b)
            if out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out

    def insert(self, offset: int, data: bytes) -> int:
        """Store ``data`` at stream ``offset``; returns how many new bytes were kept,
        or -1 when keeping them would exceed the connection's limit or the budget
        (nothing is stored then)."""
        end = offset + len(data)
        if end <= offset:
            return 0
        if not self._starts:
            self._starts, self._blocks = [], []
        starts = self._starts
        blocks = self._blocks
        assert isinstance(starts, list) and isinstance(blocks, list)
        base = offset  # stream offset of data[0]
        i = bisect_right(starts, offset) - 1
        if i >= 0:
            e = starts[i] + len(blocks[i])
            if e >= end:
                return 0  # entirely duplicate
            if e > offset:
                offset = e
        i += 1
        # First find the holes the segment fills (index to insert at, start, end)...
        pieces: list[tuple[int, int, int]] = []
        while offset < end:
            if i < len(starts) and starts[i] < end:
                s = starts[i]
                if s > offset:
                    pieces.append((i, offset, s))
                offset = s + len(blocks[i])
                i += 1
            else:
                pieces.append((i, offset, end))
                break
        kept = sum(e - s for _, s, e in pieces)
        cost = kept + BLOCK_OVERHEAD * len(pieces)
        budget = self.budget
        if self.limit is not None and self.truesize + cost > self.limit:
            if budget is not None:
                budget.refused_conn += 1
            return -1
        if budget is not None and budget.used + cost > budget.limit:
            budget.refused += 1
            return -1
        # ...then store them (back to front, so the indexes stay right).
        for at, s, e in reversed(pieces):
            starts.insert(at, s)
            blocks.insert(at, data if (s == base and e == end) else data[s - base : e - base])
        self.held += kept
        self._charge(cost)
        return kept

    def _charge(self, cost: int) -> None:
        self.truesize += cost
        budget = self.budget
        if budget is not None:
            budget.used += cost
            if budget.used > budget.peak:
                budget.peak = budget.used

    def pop_ready(self, expected: int) -> list[bytes]:
        """Remove and return the blocks that continue the stream at ``expected``
        (blocks entirely before it are dropped, one straddling it is trimmed)."""
        starts = self._starts
        if not starts or starts[0] > expected:
            return []
        blocks = self._blocks
        out: list[bytes] = []
        n = 0
        while n < len(starts) and starts[n] <= expected:
            s = starts[n]
            b = blocks[n]
            self.held -= len(b)
            self._charge(-(len(b) + BLOCK_OVERHEAD))
            e = s + len(b)
            if e > expected:
                out.append(b[expected - s :] if s < expected else b)
                expected = e
            n += 1
        if n == len(starts):
            self._starts, self._blocks = (), ()
        else:
            assert isinstance(starts, list) and isinstance(blocks, list)
            del starts[:n]
            del blocks[:n]
        return out

    def clear(self) -> None:
        self._starts, self._blocks = (), ()
        self.held = 0
        self._charge(-self.truesize)
        self.fin_offset = None
