"""Counters shared by all shard processes, for exact connection balancing.

Each cell has exactly one writer, so no locks are needed: the listening shard
writes ``assigned[slot][shard]`` when it hands a connection over, and the
owning shard writes ``closed[slot][shard]`` when that connection is gone.
Live connections = assigned - closed, read by the listening shard at the
moment it picks a shard: no lagging, batched decrements (Seastar #290, #3514).
Aligned 8-byte stores are not torn on the platforms we run on.
"""

from __future__ import annotations

import mmap

MAX_SLOTS = 64  # listening ports per server


class SharedCounters:
    def __init__(self, shards: int, slots: int = MAX_SLOTS) -> None:
        self.shards = shards
        self.slots = slots
        # MAP_SHARED|MAP_ANONYMOUS, created before fork: every shard sees the same pages.
        self._map = mmap.mmap(-1, slots * shards * 2 * 8)
        self._cells = memoryview(self._map).cast("q")

    def _index(self, slot: int, shard: int, closed: bool) -> int:
        return (slot * self.shards + shard) * 2 + int(closed)

    def assigned(self, slot: int, shard: int) -> int:
        return self._cells[self._index(slot, shard, False)]

    def closed(self, slot: int, shard: int) -> int:
        return self._cells[self._index(slot, shard, True)]

    def add_assigned(self, slot: int, shard: int) -> None:
        """Only the listening shard calls this."""
        i = (slot * self.shards + shard) * 2  # _index, inlined: this runs per connection
        self._cells[i] = self._cells[i] + 1

    def add_closed(self, slot: int, shard: int) -> None:
        """Only ``shard`` itself calls this, for its own connections."""
        i = (slot * self.shards + shard) * 2 + 1
        self._cells[i] = self._cells[i] + 1

    def live(self, slot: int, shard: int) -> int:
        return self.assigned(slot, shard) - self.closed(slot, shard)

    def live_all(self, slot: int) -> list[int]:
        """``live(slot, s)`` for every shard s, in one go (the balancer's per-connection read)."""
        cells = self._cells[slot * self.shards * 2 : (slot + 1) * self.shards * 2].tolist()
        return [a - c for a, c in zip(cells[0::2], cells[1::2], strict=True)]
