"""A latency histogram in HDR style: log buckets from 1 µs to 60 s, 8 per power of two.

Recording is one ``log2`` and a list increment, merging is adding lists, so every
request can be measured on every shard and the shards' histograms summed. A
quantile is the upper edge of the bucket that holds it, so it overstates the
true value by at most one bucket width (2^(1/8) - 1, about 9 %), and it never
lies outside the smallest and largest value seen, both kept exactly.

Bucket ``i`` (1 <= i <= LAST) holds values in (edge(i - 1), edge(i)] with
edge(i) = 1 µs * 2^(i / 8); bucket 0 holds everything up to 1 µs and bucket
LAST + 1 everything beyond 60 s. Upper-inclusive, as Prometheus's ``le``, so a
Prometheus histogram whose ``le`` values are some of these edges
(``PROMETHEUS_EDGES``) has exact cumulative counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

LOWEST = 1e-6  # seconds
HIGHEST = 60.0
SUB_BUCKETS = 8  # per power of two
LAST = math.ceil(math.log2(HIGHEST / LOWEST) * SUB_BUCKETS)  # the bucket whose edge is >= 60 s
BUCKETS = LAST + 2  # with the underflow (0) and overflow (LAST + 1) buckets


_EDGES = [LOWEST * 2.0 ** (i / SUB_BUCKETS) for i in range(LAST + 1)] + [math.inf]
_LOG2_LOWEST = math.log2(LOWEST)


def edge(i: int) -> float:
    """The upper edge of bucket ``i`` in seconds (inf for the overflow bucket)."""
    return _EDGES[min(i, LAST + 1)]


def bucket_of(value: float) -> int:
    if value <= LOWEST:
        return 0
    i = min(max(1, math.ceil((math.log2(value) - _LOG2_LOWEST) * SUB_BUCKETS)), LAST + 1)
    if i > 1 and value <= _EDGES[i - 1]:  # log2 rounding just above an edge
        i -= 1
    elif value > _EDGES[i]:  # and just below one
        i += 1
    return i


def _prometheus_edges(low: float, high: float, step: int) -> list[int]:
    """Bucket indices about 2^(step/8) apart from ``low`` to ``high`` seconds."""
    first = bucket_of(low)
    return list(range(first, bucket_of(high) + 1, step))


# About 1.54x apart (every 5th edge) from ~50 µs to 10 s: 29 buckets plus +Inf.
PROMETHEUS_BUCKETS = _prometheus_edges(50e-6, 10.0, 5)
PROMETHEUS_EDGES = [edge(i) for i in PROMETHEUS_BUCKETS]


class LogHistogram:
    """Counts of values (seconds) in log buckets, with exact count, sum, min and max."""

    __slots__ = ("counts", "count", "sum", "min", "max")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, value: float) -> None:
        value = max(0.0, value)
        self.counts[bucket_of(value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merge(self, other: LogHistogram) -> LogHistogram:
        """Add ``other`` into this one (and return it)."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    @classmethod
    def merged(cls, histograms: Iterable[LogHistogram]) -> LogHistogram:
        total = cls()
        for h in histograms:
            total.merge(h)
        return total

    def since(self, earlier: LogHistogram) -> LogHistogram:
        """The values recorded after ``earlier`` (a copy of this one, taken before).

        Its min and max are the edges of its lowest and highest non-empty buckets,
        kept within this histogram's exact min and max.
        """
        d = LogHistogram()
        d.counts = [a - b for a, b in zip(self.counts, earlier.counts, strict=True)]
        d.count = self.count - earlier.count
        d.sum = self.sum - earlier.sum
        filled = [i for i, n in enumerate(d.counts) if n]
        if filled:
            low = edge(filled[0] - 1) if filled[0] > 0 else 0.0
            d.min = max(self.min, low)
            d.max = min(self.max, edge(filled[-1]))
        return d

    def copy(self) -> LogHistogram:
        return LogHistogram().merge(self)

    def quantile(self, q: float) -> float | None:
        """The value at or below which a fraction ``q`` of the values lie (None if empty)."""
        if not self.count:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is not within 0..1")
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(max(edge(i), self.min), self.max)
        return self.max  # not reached: the counts add up to count

    def percentiles(self) -> dict[str, float | None]:
        """p50, p90, p99 and max, in seconds."""
        return {
            "p50": self.quantile(0.50),
            "p90": self.quantile(0.90),
            "p99": self.quantile(0.99),
            "max": self.max if self.count else None,
        }

    def cumulative(self, buckets: list[int] = PROMETHEUS_BUCKETS) -> Iterator[tuple[float, int]]:
        """(le, count of values <= le) for each of ``buckets``, then (inf, count)."""
        seen = 0
        at = 0
        for i in buckets:
            while at <= i:
                seen += self.counts[at]
                at += 1
            yield edge(i), seen
        yield math.inf, self.count

    def __repr__(self) -> str:
        p = self.percentiles()
        return f"LogHistogram(count={self.count}, {p})"
