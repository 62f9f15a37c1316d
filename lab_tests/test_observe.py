"""Seeing the lab, as a user would: Prometheus scrapes everything, its per-shard
queries answer for every shard, its graph page draws them in a real browser,
and a scenario leaves charts drawn from that same run."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest

from seashard_lab import ARTIFACTS, ROOT
from seashard_lab.browser import dump_dom, legend_labels, screenshot
from seashard_lab.plan import CLIENTS, SERVERS
from seashard_lab.prometheus import QUERIES, Prometheus, graph_url
from seashard_lab.swarm_deployment import SwarmDeployment

PNG = b"\x89PNG\r\n\x1a\n"


def expected_targets(lab) -> set[tuple[str, str]]:
    """The jobs of images/lab/prometheus/prometheus.yml (-swarm.yml): both admin
    endpoints, and each client's two load generators (:9200 posix, :9201 native),
    by the service label Prometheus gives them on this deployment."""
    label = lab.deployment.prometheus_label
    return {(label(s), "9100") for s in SERVERS} | {
        (label(c), port) for c in CLIENTS for port in ("9200", "9201")
    }


def _eventually(check, timeout: float, what: str):
    """``check()`` until it returns something true; its last answer in the failure."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - Prometheus still starting, say so at the end
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    pytest.fail(f"{what} not within {timeout:g} s; last: {last!r}")


@pytest.fixture(scope="module")
def prom(lab) -> Prometheus:
    p = Prometheus(lab.prometheus_url())
    _eventually(p.ready, 60, "Prometheus ready")
    return p


def _shards(lab, server: str) -> set[str]:
    """The shards the server's own admin endpoint reports."""
    return {str(s) for s in lab.metrics(server).shard_info()}


def test_prometheus_scrapes_every_target(lab, prom):
    expected = expected_targets(lab)

    def all_up():
        targets = prom.targets()
        seen = {(t.service, t.url.rsplit(":", 1)[1].split("/")[0]): t for t in targets}
        return (
            seen if set(seen) == expected and all(t.health == "up" for t in seen.values()) else None
        )

    seen = _eventually(all_up, 60, "every target up in /api/v1/targets")
    assert {t.job for t in seen.values()} == {"seashard-server", "seashard-load"}


def test_per_shard_query_has_a_series_for_each_shard_of_each_server(lab, prom):
    expected = {(server, shard) for server in SERVERS for shard in _shards(lab, server)}
    assert len(expected) >= 4, expected  # two servers, -c 2 each

    for name in ("live", "conn-rate", "share"):
        expr = QUERIES[name][0]

        def series(expr=expr):
            got = {(lb.get("service"), lb.get("shard")) for lb, _ in prom.query(expr)}
            return got if got == expected else None

        _eventually(series, 30, f"{name} ({expr}) for every shard of every server")
    # the shares of one server add up to one
    shares: dict[str, float] = {}
    for lb, value in prom.query(QUERIES["share"][0]):
        shares[lb["service"]] = shares.get(lb["service"], 0.0) + value
    assert shares.keys() == set(SERVERS) and all(abs(v - 1) < 1e-6 for v in shares.values()), shares


def test_clients_p99_per_target_is_recorded(lab, prom):
    echo = {f"{lab.service_ip(s)}:1234" for s in SERVERS}

    def p99s():
        # NaN: no echo round trip in the last 10 s (e.g. a load generator that is
        # reconnecting after a server restart): not a p99 yet
        got = {
            lb["target"]: v
            for lb, v in prom.query(QUERIES["p99"][0])
            if lb["kind"] == "echo" and not math.isnan(v)
        }
        return got if echo <= set(got) else None

    got = _eventually(p99s, 40, "an echo p99 for both servers")
    # a round trip in the lab: more than a microsecond, less than the 60 s top bucket
    assert all(1e-6 < got[t] < 60 for t in echo), got


def test_recording_rules_pass_their_promtool_tests(lab):
    res = lab.exec(
        "prometheus",
        ["promtool", "test", "rules", "/etc/seashard/prometheus/rules_test.yml"],
    )
    assert res.ok and "SUCCESS" in res.stdout, res.describe()
    for config in ("prometheus.yml", "prometheus-swarm.yml", "prometheus-k8s.yml"):
        res = lab.exec(
            "prometheus", ["promtool", "check", "config", f"/etc/seashard/prometheus/{config}"]
        )
        assert res.ok, res.describe()


def test_the_graph_page_draws_every_shard_in_a_real_browser(lab, prom):
    expr = QUERIES["live"][0]  # the query `scripts/lab up` shows
    expected = {(server, shard) for server in SERVERS for shard in _shards(lab, server)}
    _eventually(lambda: len(prom.query(expr)) == len(expected), 30, f"{expr} answers")
    url = graph_url(lab.prometheus_url(), expr, range_input="1m")
    folder = ARTIFACTS / "prometheus-graph"
    shot = screenshot(url, folder / "live-connections-per-shard.png")
    assert shot.read_bytes()[:8] == PNG
    dom = dump_dom(url)
    (folder / "live-connections-per-shard.html").write_text(dom)
    labels = legend_labels(dom)
    drawn = {
        (m["service"], m["shard"])
        for m in (dict(re.findall(r'(\w+)="([^"]*)"', label)) for label in labels)
    }
    assert drawn == expected, f"legend of {url}: {labels}"
    # the lines themselves, one per series
    assert len(re.findall(r'<path class="path"', dom)) == len(expected)


def test_a_scenario_leaves_charts_of_its_own_run(lab, tmp_path):
    import subprocess
    import sys

    env = {
        "SEASHARD_LAB_PROJECT": lab.project,
        "LAB_SUBNET": str(lab.subnet),
        "LAB_BRIDGE": lab.plan.bridge,
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    swarm = ["--swarm"] if isinstance(lab.deployment, SwarmDeployment) else []
    started = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seashard_lab",
            "scenario",
            *swarm,
            "lossy-link-echo",
            "--artifacts",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = tmp_path.glob("scenario-lossy-link-echo-*")
    for name in ("connections.png", "shares.png", "latency-cdf.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == PNG, name
        assert (folder / name).stat().st_mtime >= started  # drawn by this run
    assert not (folder / "plots-missing.txt").exists()
    summary = (folder / "summary.txt").read_text()
    assert "plots:     connections.png, shares.png, latency-cdf.png" in summary
    assert (folder / "lab-network.pcap").exists()
    _keep(folder)
    _same_run(lab, folder, summary)


def _same_run(lab, folder: Path, summary: str) -> None:
    """The numbers behind the charts (plots-data.json) are this run's: every shard of
    both servers, sampled to the end of the run; the impaired client's latency before
    and during its impairment; at least the connections the scenario itself made."""
    data = json.loads((folder / "plots-data.json").read_text())
    assert data["impaired"] == "client-2"
    on, off = data["impairment"]
    assert 0 <= on < off <= data["duration"] + 1
    for server in SERVERS:
        series = data["live"][server]
        assert set(series) == _shards(lab, server), (server, series.keys())
        for shard, points in series.items():
            assert points and points[-1][0] >= data["duration"] - 3, (server, shard, points[-3:])
    for target in (f"{s}:1234" for s in ("posix", "native")):
        phases = data["latency"]["echo"][target]
        for phase in ("before", "during"):
            assert max(c for _, c in phases[phase]) > 0, (target, phase, phases)
    details = json.loads(summary.split("\ndetails:\n", 1)[1])
    made: dict[str, float] = {}
    for load in details["loads"]:
        made[load["server"]] = made.get(load["server"], 0) + sum(load["per_shard"].values())
    for server, count in made.items():
        seen = sum(data["shard_counts"][server].values())
        assert seen >= 0.9 * count, (server, seen, count)


def _keep(folder: Path) -> None:
    """A copy of the scenario's charts where CI keeps artifacts."""
    out = ARTIFACTS / "observe-scenario"
    out.mkdir(parents=True, exist_ok=True)
    for png in folder.glob("*.png"):
        (out / png.name).write_bytes(png.read_bytes())
    (out / "summary.txt").write_text((folder / "summary.txt").read_text())
