"""Out-of-order receive queue.

Holds data that arrived beyond ``RCV.NXT`` (inside the receive window) until the
gap before it fills.  Positions are *stream offsets* (plain, unbounded integers:
bytes since the first data byte), so nothing here wraps; the connection converts
sequence numbers to offsets.  Stored blocks never overlap: a new segment only
fills the holes between what is already held (overlaps and duplicates are
trimmed away), and blocks are not merged (no copying on insert).
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = ["Reassembler"]


class Reassembler:
    __slots__ = ("_starts", "_blocks", "held", "fin_offset")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._blocks: list[bytes] = []
        self.held = 0  # bytes held
        self.fin_offset: int | None = None  # stream offset of an out-of-order FIN

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
        """Store ``data`` at stream ``offset``; returns how many new bytes were kept."""
        end = offset + len(data)
        if end <= offset:
            return 0
        starts = self._starts
        blocks = self._blocks
        base = offset  # stream offset of data[0]
        i = bisect_right(starts, offset) - 1
        if i >= 0:
            e = starts[i] + len(blocks[i])
            if e >= end:
                return 0  # entirely duplicate
            if e > offset:
                offset = e
        i += 1
        kept = 0
        while offset < end:
            if i < len(starts) and starts[i] < end:
                s = starts[i]
                if s > offset:
                    starts.insert(i, offset)
                    blocks.insert(i, data[offset - base : s - base])
                    kept += s - offset
                    i += 1
                offset = s + len(blocks[i])
                i += 1
            else:
                starts.insert(i, offset)
                blocks.insert(i, data[offset - base :] if offset > base else data)
                kept += end - offset
                break
        self.held += kept
        return kept

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
            e = s + len(b)
            if e > expected:
                out.append(b[expected - s :] if s < expected else b)
                expected = e
            n += 1
        del starts[:n]
        del blocks[:n]
        return out

    def clear(self) -> None:
        self._starts.clear()
        self._blocks.clear()
        self.held = 0
        self.fin_offset = None
