"""`seashard_lab.plots`: known data in, the same numbers read back from the artists."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest

from seashard_lab import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _data() -> plots.RunData:
    return plots.RunData(
        title="test run",
        duration=10.0,
        impairment=(4.0, 8.0),
        live={
            "posix-server": {0: [(0, 1), (1, 3), (2, 2)], 1: [(0, 0), (1, 1), (2, 2)]},
            "native-server": {0: [(0, 5)], 1: [(0, 4)]},
        },
        accepted_rate={"posix-server": {0: [(0, 2.0)], 1: [(0, 1.0)]}},
        shard_counts={"posix-server": {0: 30.0, 1: 10.0}, "native-server": {0: 5.0, 1: 15.0}},
        client_counts={"posix": {"client-1": 60.0, "client-2": 40.0}, "native": {"client-1": 0}},
        latency={
            "echo": {
                "posix:1234": {
                    "before": [(0.001, 90.0), (0.01, 100.0), (math.inf, 100.0)],
                    "during": [(0.001, 10.0), (0.3, 50.0), (math.inf, 50.0)],
                }
            }
        },
    )


def test_connections_plots_each_shards_series_per_server():
    fig = plots.plot_connections(_data())
    axes = {ax.get_title(): ax for ax in fig.axes}
    posix_live = axes["posix-server: live connections"]
    lines = {ln.get_label(): ln for ln in posix_live.get_lines()}
    assert list(lines["shard 0"].get_ydata()) == [1, 3, 2]
    assert list(lines["shard 1"].get_xdata()) == [0, 1, 2]
    assert list(lines["shard 1"].get_ydata()) == [0, 1, 2]
    assert list(
        {ln.get_label(): ln for ln in axes["native-server: live connections"].get_lines()}[
            "shard 0"
        ].get_ydata()
    ) == [5]
    rate = axes["posix-server: accepted connections/s"]
    assert [list(ln.get_ydata()) for ln in rate.get_lines()] == [[2.0], [1.0]]
    assert rate.get_xlabel() == "time since the run started (s)"
    assert posix_live.get_ylabel() == "live connections"
    assert [t.get_text() for t in posix_live.get_legend().get_texts()] == [
        "shard 0",
        "shard 1",
        "impairment",
    ]
    assert "connections per shard over time" in fig.texts[0].get_text()  # suptitle
    plt.close(fig)


def test_shares_are_percentages_of_each_servers_total():
    fig = plots.plot_shares(_data())
    left, right = fig.axes
    heights = {
        c.get_label(): [round(p.get_height(), 6) for p in c.patches] for c in left.containers
    }
    # servers sorted: native-server, posix-server
    assert [t.get_text() for t in left.get_xticklabels()] == ["native-server", "posix-server"]
    assert heights == {"shard 0": [25.0, 75.0], "shard 1": [75.0, 25.0]}
    assert left.get_ylabel() == "share (%)"
    assert "in all: native-server 20, posix-server 40" in left.get_title()
    clients = {c.get_label(): [p.get_height() for p in c.patches] for c in right.containers}
    assert clients == {"client-1": [60.0], "client-2": [40.0]}  # native: nothing, no group
    assert [t.get_text() for t in right.get_xticklabels()] == ["posix"]
    plt.close(fig)


def test_latency_cdf_before_and_during_with_p99_in_the_legend():
    fig = plots.plot_latency_cdf(_data())
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    before = next(v for k, v in lines.items() if "before" in k)
    during = next(v for k, v in lines.items() if "during" in k)
    assert list(before.get_xdata()) == [1.0, 10.0]  # ms; +Inf left out
    assert list(before.get_ydata()) == [0.9, 1.0]
    assert list(during.get_ydata()) == [0.2, 1.0]
    # p99 of "during": rank 49.5 of 50, 39.5 of the 40 between 1 ms and 300 ms
    p99 = (0.001 + 0.299 * 39.5 / 40) * 1e3
    label = next(k for k in lines if "during" in k)
    assert label == f"posix:1234, during (p99 {p99:.3g} ms, n=50)"
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel().startswith("latency (ms")
    assert "before and during the impairment" in fig.texts[0].get_text()
    plt.close(fig)


def test_bench_chart_bars_are_ratios_to_the_baseline():
    loopback = {
        "uvloop (baseline)": {"echo": 1000.0, "echo_cpu": 10.0},
        "seashard -c 2": {"echo": 1500.0, "echo_cpu": 12.5},
    }
    native = {"posix -c 1": {"mb_s": 100.0}, "native -c 1": {"mb_s": 25.0}}
    fig = plots.bench_chart(
        [("loopback", loopback, "uvloop (baseline)"), ("native", native, "posix -c 1")], "bench"
    )
    top, bottom = fig.axes
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in top.containers}
    assert bars == {"uvloop (baseline)": [1.0, 1.0], "seashard -c 2": [1.5, 1.25]}
    assert [t.get_text() for t in top.get_xticklabels()] == ["echo req/s", "cpu µs per echo"]
    assert top.get_ylabel() == "ratio to uvloop (baseline)" and top.get_title() == "loopback"
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in bottom.containers}
    assert bars == {"posix -c 1": [1.0], "native -c 1": [0.25]}
    assert [t.get_text() for t in top.get_legend().get_texts()] == list(loopback)
    plt.close(fig)


def test_draw_run_writes_valid_pngs(tmp_path):
    written = plots.draw_run(_data(), tmp_path)
    assert sorted(p.name for p in written) == ["connections.png", "latency-cdf.png", "shares.png"]
    for p in written:
        assert p.read_bytes()[:8] == PNG
    assert not (tmp_path / plots.MISSING).exists()


class _DownPrometheus:
    def query_range(self, *a, **k):
        raise OSError("connection refused")

    query = query_range


def test_prometheus_down_leaves_a_reason_not_a_traceback(tmp_path):
    (tmp_path / "summary.txt").write_text("the run's own summary\n")
    written, why = plots.write_run_plots(
        tmp_path, _DownPrometheus(), plots.RunWindow(0.0, 10.0, {}, "t")
    )
    assert written == [] and "connection refused" in why
    assert "connection refused" in (tmp_path / plots.MISSING).read_text()
    assert (tmp_path / "summary.txt").read_text() == "the run's own summary\n"


def test_a_chart_that_fails_is_named_the_others_are_drawn(tmp_path, monkeypatch):
    def broken(_data):
        raise ValueError("no axes today")

    monkeypatch.setattr(plots, "plot_shares", broken)
    written = plots.draw_run(_data(), tmp_path)
    assert sorted(p.name for p in written) == ["connections.png", "latency-cdf.png"]
    assert "shares.png: ValueError: no axes today" in (tmp_path / plots.MISSING).read_text()


class _FakePrometheus:
    """Answers like Prometheus' API for a 10 s run starting at t=1000."""

    def query_range(self, expr, start, end, step=1.0):
        assert (start, end) == (1000.0, 1010.0)
        if expr == "seashard_connections_live":
            return [({"service": "posix-server", "shard": "1"}, [(1000.0, 2.0), (1001.0, 3.0)])]
        return [({"service": "posix-server", "shard": "1"}, [(1000.0, math.nan), (1001.0, 1.5)])]

    def query(self, expr, at=None):
        # counters: their value at the run's start and at its end
        if expr == "seashard_connections_total":
            assert at in (1000.0, 1010.0)
            return [
                ({"service": "posix-server", "shard": "0"}, 3.0 if at == 1000.0 else 10.0),
                # reset during the run (a restart): counted from zero
                ({"service": "posix-server", "shard": "1"}, 50.0 if at == 1000.0 else 4.0),
            ]
        if "requests_total" in expr:
            assert at in (1000.0, 1010.0) and "increase" not in expr
            start = at == 1000.0
            return [
                ({"service": "client-1", "target": "10.0.0.10:1234"}, 30.0 if start else 100.0),
                ({"service": "client-1", "target": "10.0.0.10:1235"}, 1.0 if start else 6.0),
            ]
        assert "latency_seconds_bucket" in expr
        # before: the 30 s up to the impairment (reaching back before the run); during: 6 s
        window = "[30s]" if at == 1004.0 else "[6s]"
        assert window in expr and '{service="client-2"}' in expr
        return [
            (
                {"target": "10.0.0.10:1234", "kind": "echo", "le": "0.001"},
                1.0 if at == 1004 else 2.0,
            ),
            ({"target": "10.0.0.10:1234", "kind": "echo", "le": "+Inf"}, 4.0),
        ]


def _collect(prom, **options):
    """A 10 s run from t=1000, client-2's link impaired from t=1004."""
    run = plots.RunWindow(
        1000.0,
        1010.0,
        {"10.0.0.10": "posix"},
        "t",
        impairment=(1004.0, 1010.0),
        impaired="client-2",
        **options,
    )
    return plots.collect(prom, run)


def test_collect_maps_prometheus_answers_to_run_data():
    data = _collect(_FakePrometheus())
    assert data.impairment == (4.0, 10.0)
    assert data.live == {"posix-server": {1: [(0.0, 2.0), (1.0, 3.0)]}}
    assert data.accepted_rate == {"posix-server": {1: [(1.0, 1.5)]}}  # NaN dropped
    assert data.shard_counts == {"posix-server": {0: 7.0, 1: 4.0}}
    assert data.client_counts == {"posix": {"client-1": 75.0}}  # its ports summed
    assert data.latency["echo"]["posix:1234"] == {
        "before": [(0.001, 1.0), (math.inf, 4.0)],
        "during": [(0.001, 2.0), (math.inf, 4.0)],
    }


@pytest.mark.parametrize("buckets", [[], [(math.inf, 0.0)]])
def test_cdf_of_nothing_is_empty(buckets):
    assert plots.cdf_points(buckets) == ([], [])


class _Lab:
    """A lab whose Prometheus is a closed port on loopback."""

    def __init__(self, port: int) -> None:
        self.port = port

    def service_ip(self, server: str) -> str:
        return {"posix-server": "10.0.0.10", "native-server": "10.0.0.21"}[server]

    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prometheus_label(self, service: str) -> str:
        return service

    def impairment_window(self, end, since=0.0):
        return None


def test_a_scenario_without_prometheus_says_why_its_plots_are_missing(tmp_path, monkeypatch):
    import socket

    from seashard_lab.scenario import run

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(plots.time, "sleep", lambda _s: None)
    line = run._plots(_Lab(port), tmp_path, "demo", 0.0)
    assert line.startswith("plots:     none (plots-missing.txt: no data for the plots")
    assert "Connection refused" in line or "refused" in line.lower()
    assert "refused" in (tmp_path / plots.MISSING).read_text().lower()
    assert not list(tmp_path.glob("*.png"))


class _SwarmPrometheus(_FakePrometheus):
    """The same answers with a swarm's client labels (client@ADDRESS)."""

    def query(self, expr, at=None):
        if "latency_seconds_bucket" in expr:
            assert '{service="client@10.0.1.7"}' in expr
            expr = expr.replace("client@10.0.1.7", "client-2")
        answers = super().query(expr, at)
        return [
            ({**lb, "service": "client@10.0.1.6"} if lb.get("service") == "client-1" else lb, v)
            for lb, v in answers
        ]


def test_collect_names_swarm_replicas_as_the_lab_does():
    data = _collect(
        _SwarmPrometheus(),
        clients={"client@10.0.1.6": "client-1", "client@10.0.1.7": "client-2"},
    )
    assert data.impaired == "client-2"
    assert data.client_counts == {"posix": {"client-1": 75.0}}
    assert data.latency["echo"]["posix:1234"]["during"] == [(0.001, 2.0), (math.inf, 4.0)]
