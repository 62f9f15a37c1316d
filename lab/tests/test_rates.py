"""`seashard_lab.rates`: what `top` derives from two scrapes, on known numbers."""

from __future__ import annotations

import math

import pytest

from seashard.admin import prometheus_text
from seashard_lab import rates


def _server(stack: str, pid0: int = 100, **per_shard: tuple[float, float]) -> str:
    """The admin endpoint's own text for two shards with the given metric values."""
    shards = []
    for shard in (0, 1):
        metrics = {k: v[shard] for k, v in per_shard.items()}
        shards.append(
            {
                "shard": shard,
                "pid": pid0 + shard,
                "cpus": [shard],
                "stack": stack,
                "metrics": metrics,
            }
        )
    return prometheus_text(shards)


def test_posix_rates_per_shard_over_the_time_between_scrapes():
    a = rates.parse(
        _server(
            "posix",
            connections_live=(3, 1),
            connections_total=(10, 4),
            bytes_in=(1000, 0),
            bytes_out=(2000, 0),
            cpu_seconds_total=(1.0, 2.0),
        ),
        t=100.0,
    )
    b = rates.parse(
        _server(
            "posix",
            connections_live=(5, 2),
            connections_total=(30, 8),
            bytes_in=(5000, 100),
            bytes_out=(6000, 300),
            cpu_seconds_total=(1.5, 2.0),
        ),
        t=102.0,
    )
    s0, s1 = rates.shard_rows(a, b)
    assert (s0.shard, s0.pid, s0.cpus, s0.live, s0.total) == (0, 100, "0", 5, 30)
    assert s0.connections_per_s == 10.0 and s1.connections_per_s == 2.0
    assert s0.bytes_in_per_s == 2000.0 and s0.bytes_out_per_s == 2000.0
    assert s1.bytes_out_per_s == 150.0
    assert s0.cpu_percent == pytest.approx(25.0) and s1.cpu_percent == 0.0
    assert s0.frames_per_s is None and s0.drops is None  # posix has no frames


def test_first_scrape_has_counts_but_no_rates():
    (s0, _) = rates.shard_rows(
        None, rates.parse(_server("posix", connections_live=(2, 0), connections_total=(7, 0)), 1.0)
    )
    assert s0.live == 2 and s0.total == 7
    assert s0.connections_per_s is None and s0.cpu_percent is None


def test_restarted_shard_gives_no_rate_not_a_negative_one():
    a = rates.parse(_server("posix", pid0=100, connections_total=(50, 50)), 1.0)
    b = rates.parse(_server("posix", pid0=200, connections_total=(3, 60)), 2.0)
    s0, s1 = rates.shard_rows(a, b)
    assert s0.connections_per_s is None and s1.connections_per_s is None  # new pids
    c = rates.parse(_server("posix", pid0=200, connections_total=(2, 70)), 3.0)
    s0, s1 = rates.shard_rows(b, c)
    assert s0.connections_per_s is None  # went backwards
    assert s1.connections_per_s == 10.0


def test_native_frames_drops_summed_over_reasons_and_forwarded():
    a = rates.parse(
        _server(
            "native",
            frames_received=(100, 10),
            frames_dropped=({"ipv4_bad_checksum": 1}, {}),
            frames_forwarded=(4, 0),
            frames_proxied=(0, 0),
        ),
        t=10.0,
    )
    b = rates.parse(
        _server(
            "native",
            frames_received=(400, 10),
            frames_dropped=({"ipv4_bad_checksum": 3, "tcp_bad_checksum": 2}, {}),
            frames_forwarded=(9, 0),
            frames_proxied=(0, 6),
        ),
        t=11.0,
    )
    s0, s1 = rates.shard_rows(a, b)
    assert s0.frames_per_s == 300.0 and s1.frames_per_s == 0.0
    assert s0.drops == 5 and s0.drops_per_s == 4.0 and s1.drops == 0
    assert s0.forwarded == 9 and s1.proxied == 6


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.001, 99.0), (0.5, 110.0), (math.inf, 110.0)]
    # rank 108.9: 9.9 of the 11 between 1 ms and 0.5 s
    assert rates.histogram_quantile(0.99, buckets) == pytest.approx(0.4501)
    assert rates.histogram_quantile(0.5, buckets) == pytest.approx(0.001 * 55 / 99)
    assert rates.histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]) is None
    # beyond the last finite bound: that bound
    assert rates.histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1


LOAD = """\
# TYPE seashard_load_requests_total counter
seashard_load_requests_total{{target="172.28.0.10:1234",kind="echo"}} {req}
# TYPE seashard_load_errors_total counter
seashard_load_errors_total{{target="172.28.0.10:1234",kind="echo",reason="reset"}} {err}
seashard_load_errors_total{{target="172.28.0.10:1234",kind="echo",reason="timeout"}} 1
# TYPE seashard_load_connections_live gauge
seashard_load_connections_live{{target="172.28.0.10:1234",kind="echo"}} 2
# TYPE seashard_load_latency_seconds histogram
seashard_load_latency_seconds_bucket{{target="172.28.0.10:1234",kind="echo",le="0.001"}} {fast}
seashard_load_latency_seconds_bucket{{target="172.28.0.10:1234",kind="echo",le="0.1"}} {slow}
seashard_load_latency_seconds_bucket{{target="172.28.0.10:1234",kind="echo",le="+Inf"}} {slow}
seashard_load_latency_seconds_sum{{target="172.28.0.10:1234",kind="echo"}} 1.0
seashard_load_latency_seconds_count{{target="172.28.0.10:1234",kind="echo"}} {slow}
"""


def test_client_rates_and_quantiles_of_the_last_interval_only():
    # before: 1000 requests, all fast; in the next 2 s: 200 more, half of them slow
    a = rates.parse(LOAD.format(req=1000, err=0, fast=1000, slow=1000), t=0.0)
    b = rates.parse(LOAD.format(req=1200, err=4, fast=1100, slow=1200), t=2.0)
    (row,) = rates.target_rows(a, b)
    assert (row.target, row.kind, row.requests, row.live) == ("172.28.0.10", "echo", 1200, 2)
    assert row.requests_per_s == 100.0
    assert row.errors == 5 and row.errors_per_s == 2.0  # summed over reasons
    assert row.p50 == pytest.approx(0.001)  # rank 100 of 200: the top of the fast bucket
    assert row.p99 == pytest.approx(0.001 + 0.099 * 98 / 100)
    # the first scrape has only everything since the start: mostly fast
    (first,) = rates.target_rows(None, b)
    assert first.requests_per_s is None
    assert first.p50 == pytest.approx(0.001 * 600 / 1100)
    assert first.p99 == pytest.approx(0.001 + 0.099 * 88 / 100)


def test_quantiles_over_an_older_base_rates_over_the_last_interval():
    base = rates.parse(LOAD.format(req=0, err=0, fast=0, slow=0), t=0.0)
    a = rates.parse(LOAD.format(req=100, err=0, fast=0, slow=100), t=9.0)  # 100 slow
    b = rates.parse(LOAD.format(req=200, err=0, fast=100, slow=200), t=10.0)  # 100 fast
    (row,) = rates.target_rows(a, b, base)
    assert row.requests_per_s == 100.0  # the last second
    assert row.p50 == pytest.approx(0.001)  # of all 200 since base: half fast
    (only_last,) = rates.target_rows(a, b)
    assert only_last.p99 == pytest.approx(0.001 * 0.99)


def test_a_target_and_kind_with_nothing_yet_is_left_out():
    text = LOAD.format(req=0, err=0, fast=0, slow=0)
    text = text.replace('reason="timeout"} 1', 'reason="timeout"} 0')
    assert 'reason="timeout"} 0' in text
    assert rates.target_rows(None, rates.parse(text, 0)) == []


def test_one_row_per_server_and_kind_over_its_ports():
    text = """\
# TYPE seashard_load_requests_total counter
seashard_load_requests_total{target="10.0.0.21:1234",kind="connect"} 3
seashard_load_requests_total{target="10.0.0.21:1235",kind="connect"} 4
# TYPE seashard_load_latency_seconds histogram
seashard_load_latency_seconds_bucket{target="10.0.0.21:1234",kind="connect",le="0.001"} 3
seashard_load_latency_seconds_bucket{target="10.0.0.21:1234",kind="connect",le="+Inf"} 3
seashard_load_latency_seconds_bucket{target="10.0.0.21:1235",kind="connect",le="0.001"} 0
seashard_load_latency_seconds_bucket{target="10.0.0.21:1235",kind="connect",le="+Inf"} 4
seashard_load_latency_seconds_count{target="10.0.0.21:1234",kind="connect"} 3
seashard_load_latency_seconds_sum{target="10.0.0.21:1234",kind="connect"} 0.001
seashard_load_latency_seconds_count{target="10.0.0.21:1235",kind="connect"} 4
seashard_load_latency_seconds_sum{target="10.0.0.21:1235",kind="connect"} 9
"""
    (row,) = rates.target_rows(None, rates.parse(text, 0.0))
    assert (row.target, row.kind, row.requests) == ("10.0.0.21", "connect", 7)
    # 3 of 7 at most 1 ms: the median falls in the +Inf bucket, i.e. above 1 ms
    assert row.p50 == 0.001
