"""The load generator's latency histogram: known latencies in, known quantiles out."""

from __future__ import annotations

import math
import random

import pytest

from seashard import histogram
from seashard.histogram import PROMETHEUS_EDGES, LogHistogram, bucket_of, edge

WIDTH = 2 ** (1 / histogram.SUB_BUCKETS)  # one bucket's ratio: the quantiles' precision


def _filled(values: list[float]) -> LogHistogram:
    h = LogHistogram()
    for v in values:
        h.record(v)
    return h


def test_buckets_are_upper_inclusive_and_span_1us_to_60s() -> None:
    assert edge(0) == pytest.approx(1e-6)
    assert edge(histogram.LAST) >= 60.0 > edge(histogram.LAST - 1)
    for i in (1, 17, 100, histogram.LAST):
        assert bucket_of(edge(i)) == i  # an edge belongs to the bucket it closes
        assert bucket_of(edge(i) * 1.0001) == i + 1
    assert bucket_of(1e-6 * (1 + 1e-15)) == 1  # just past the first edge
    assert bucket_of(0.0) == 0
    assert bucket_of(1e-9) == 0
    assert bucket_of(3600.0) == histogram.LAST + 1
    assert edge(histogram.LAST + 1) == math.inf


def test_known_latencies_give_known_quantiles() -> None:
    # 1000 values: 1..1000 µs. The q-quantile is the value of rank ceil(q * 1000).
    values = [i * 1e-6 for i in range(1, 1001)]
    random.Random(7).shuffle(values)
    h = _filled(values)
    assert h.count == 1000
    assert h.sum == pytest.approx(sum(values))
    assert h.min == pytest.approx(1e-6) and h.max == pytest.approx(1000e-6)
    for q, exact in ((0.5, 500e-6), (0.9, 900e-6), (0.99, 990e-6)):
        got = h.quantile(q)
        assert got is not None
        # the upper edge of the bucket holding the exact value: at most one bucket above
        assert exact <= got <= exact * WIDTH, (q, got)
        assert got == pytest.approx(min(edge(bucket_of(exact)), h.max))
    p = h.percentiles()
    assert p["max"] == pytest.approx(1000e-6)
    assert p["p50"] == h.quantile(0.5)
    assert h.quantile(1.0) == pytest.approx(1000e-6)  # never beyond the largest value
    assert h.quantile(0.0) == pytest.approx(1e-6)  # never below the smallest


def test_two_clusters_put_p50_and_p99_in_the_right_one() -> None:
    # 98 fast requests (200 µs) and 2 slow ones (300 ms): p50 and p90 fast, p99 slow.
    h = _filled([200e-6] * 98 + [0.3] * 2)
    assert 200e-6 <= h.quantile(0.5) <= 200e-6 * WIDTH
    assert 200e-6 <= h.quantile(0.9) <= 200e-6 * WIDTH
    assert h.quantile(0.99) == pytest.approx(0.3)  # clamped to the exact max
    assert h.percentiles()["max"] == pytest.approx(0.3)


def test_empty_histogram_has_no_quantiles() -> None:
    h = LogHistogram()
    assert h.quantile(0.5) is None
    assert h.percentiles() == {"p50": None, "p90": None, "p99": None, "max": None}
    with pytest.raises(ValueError):
        _filled([1e-3]).quantile(1.5)


def test_merging_shards_equals_recording_everything_in_one() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-8, 1.5) for _ in range(5000)]
    shards = [_filled(values[i::3]) for i in range(3)]
    merged = LogHistogram.merged(shards)
    whole = _filled(values)
    assert merged.counts == whole.counts
    assert merged.count == whole.count == 5000
    assert merged.sum == pytest.approx(whole.sum)
    assert (merged.min, merged.max) == (whole.min, whole.max)
    for q in (0.5, 0.9, 0.99):
        assert merged.quantile(q) == whole.quantile(q)


def test_since_gives_the_interval_only() -> None:
    h = _filled([100e-6] * 50)
    before = h.copy()
    for _ in range(10):
        h.record(0.05)
    window = h.since(before)
    assert window.count == 10
    assert window.sum == pytest.approx(0.5)
    assert 0.05 <= window.quantile(0.5) <= 0.05 * WIDTH
    assert window.max == pytest.approx(0.05)  # clamped to the exact max
    assert h.since(h.copy()).count == 0


def test_prometheus_buckets_are_exact_cumulative_counts() -> None:
    # about 1.5x apart from ~50 µs to 10 s, each one of the histogram's own edges
    assert 45e-6 <= PROMETHEUS_EDGES[0] <= 60e-6
    assert 7e-0 <= PROMETHEUS_EDGES[-1] <= 10.0
    ratios = [b / a for a, b in zip(PROMETHEUS_EDGES, PROMETHEUS_EDGES[1:], strict=False)]
    assert all(1.4 < r < 1.6 for r in ratios)
    rng = random.Random(11)
    values = [rng.lognormvariate(-7, 2) for _ in range(3000)]
    h = _filled(values)
    rows = list(h.cumulative())
    assert rows[-1] == (math.inf, 3000)
    for le, n in rows[:-1]:
        assert n == sum(1 for v in values if v <= le), le


def test_every_value_lands_between_its_buckets_edges() -> None:
    rng = random.Random(5)
    values = [10 ** rng.uniform(-7, 2) for _ in range(20000)]
    values += [edge(i) for i in range(histogram.LAST + 1)]  # the edges themselves
    values += [math.nextafter(edge(i), math.inf) for i in range(histogram.LAST)]
    for v in values:
        i = bucket_of(v)
        low = edge(i - 1) if i > 0 else 0.0
        assert low < v <= edge(i) or (i == 0 and v <= edge(0)), (v, i)
