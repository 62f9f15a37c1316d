"""The servers' Prometheus text, parsed with prometheus_client."""

from __future__ import annotations

from seashard_lab.metrics import Metrics, delta, shares

TEXT = """\
# HELP seashard_connections_total Connections accepted.
# TYPE seashard_connections_total counter
seashard_connections_total{shard="0"} 12
seashard_connections_total{shard="1"} 8
# HELP seashard_frames_dropped_total Frames dropped.
# TYPE seashard_frames_dropped_total counter
seashard_frames_dropped_total{shard="0",reason="tcp_bad_checksum"} 2
seashard_frames_dropped_total{shard="1",reason="multicast"} 5
seashard_frames_dropped_total{shard="1",reason="tcp_bad_checksum"} 1
# HELP seashard_shard_info Shard.
# TYPE seashard_shard_info gauge
seashard_shard_info{shard="0",pid="87",cpus="0"} 1
seashard_shard_info{shard="1",pid="88",cpus="1"} 1
"""


def test_per_shard_total_and_labels():
    m = Metrics.parse(TEXT)
    assert m.per_shard("seashard_connections_total") == {0: 12.0, 1: 8.0}
    assert m.total("seashard_connections_total") == 20
    assert m.per_shard("seashard_frames_dropped_total", reason="tcp_bad_checksum") == {0: 2, 1: 1}
    assert m.by_label("seashard_frames_dropped_total", "reason") == {
        "tcp_bad_checksum": 3,
        "multicast": 5,
    }
    assert m.shard_info()[1]["pid"] == "88"
    assert m.per_shard("no_such_metric") == {}


def test_delta_and_shares():
    assert delta({0: 5.0, 1: 3.0}, {0: 2.0, 2: 1.0}) == {0: 3.0, 1: 3.0, 2: -1.0}
    assert shares({0: 3, 1: 1}) == {0: 0.75, 1: 0.25}
    assert shares({}) == {}
