"""`seashard load` against a real server: it counts what it verified and flags what it could not."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request

from tests.serverproc import env, free_ports, run_cli, seashard_cmd


def _load(server, *args: str):  # type: ignore[no-untyped-def]
    return run_cli(
        "load",
        "--host",
        "127.0.0.1",
        "--echo-port",
        str(server.ports["echo"]),
        "--canned-port",
        str(server.ports["canned"]),
        "--accept-logger-port",
        str(server.ports["accept-logger"]),
        "--json",
        *args,
        timeout=60,
    )


def test_mixed_load_on_two_shards_verifies_everything(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2")
    result = _load(
        server,
        "-c",
        "2",
        "--mode",
        "mixed",
        "--connections",
        "12",
        "--duration",
        "2",
        "--size",
        "3000",
        "--requests-per-connection",
        "20",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for kind in ("echo", "canned", "connect"):
        assert summary[kind]["requests"] > 10, summary
        assert summary[kind]["errors"] == 0, summary
    assert summary["echo"]["bytes"] == 3000 * summary["echo"]["requests"]
    # The accept logger logged every connect the load generator counted; at most the 4
    # connect workers' last, unfinished attempts (cut off at the deadline) come on top.
    counted = summary["connect"]["requests"]
    deadline = time.monotonic() + 10
    while len(server.stdout_lines) < counted and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = [line for line in server.stdout_lines if line.startswith("Accepted connection from")]
    assert counted <= len(logged) <= counted + 4, (counted, len(logged))


def test_wrong_replies_are_counted_and_fail_the_run(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "1", services=("canned",))
    result = run_cli(
        "load",
        "--host",
        "127.0.0.1",
        "--echo-port",
        str(server.ports["canned"]),
        "--json",
        "--mode",
        "echo",
        "--connections",
        "2",
        "--duration",
        "1",
        timeout=60,
    )
    assert result.returncode == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["echo"]["errors"] > 0 and summary["echo"]["requests"] == 0


_SAMPLE = re.compile(r"^([a-z_]+)\{([^}]*)\} (\S+)$")


def _parse(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset], float]]:
    """(family -> type, (name, labels) -> value) of Prometheus text."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m, line
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            samples[(m.group(1), labels)] = float(m.group(3))
    return types, samples


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def test_metrics_endpoint_agrees_with_the_summary(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2")
    (mport,) = free_ports(1)
    cmd = seashard_cmd(
        "load", "--host", "127.0.0.1",
        "--echo-port", str(server.ports["echo"]),
        "--canned-port", str(server.ports["canned"]),
        "--accept-logger-port", str(server.ports["accept-logger"]),
        "-c", "2", "--mode", "mixed", "--connections", "9", "--duration", "3",
        "--requests-per-connection", "50", "--report-interval", "1", "--json",
        "--metrics-port", str(mport), "--metrics-address", "127.0.0.1",
        "--metrics-linger", "30",
    )  # fmt: skip
    load = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    try:
        assert load.stdout is not None
        lines = []
        during = None
        while not lines or not lines[-1].startswith("{"):
            line = load.stdout.readline()
            assert line, f"load ended early: {load.stderr.read() if load.stderr else ''}"
            lines.append(line)
            if during is None and "t=1s" in line:  # while it runs, it serves live numbers
                during = _parse(_scrape(mport))[1]
        summary = json.loads(lines[-1])
        final_text = _scrape(mport)  # lingering: the final numbers
        types, samples = _parse(final_text)
    finally:
        load.send_signal(signal.SIGINT)  # ends the linger
        rc = load.wait(30)
    assert rc == 0
    assert during is not None and any(
        v > 0 for (name, _), v in during.items() if name == "seashard_load_requests_total"
    )
    periodic = [line for line in lines if " t=" in line]
    assert periodic and "p50/p90/p99/max" in periodic[0]

    assert types == {
        "seashard_load_requests_total": "counter",
        "seashard_load_errors_total": "counter",
        "seashard_load_bytes_total": "counter",
        "seashard_load_latency_seconds": "histogram",
        "seashard_load_connections_live": "gauge",
    }
    series = {(s["target"], s["kind"]): s for s in summary["series"]}
    echo_t = f"127.0.0.1:{server.ports['echo']}"
    canned_t = f"127.0.0.1:{server.ports['canned']}"
    logger_t = f"127.0.0.1:{server.ports['accept-logger']}"
    assert {(echo_t, "echo"), (canned_t, "canned"), (logger_t, "connect")} <= set(series)
    for (target, kind), s in series.items():
        lab = {("target", target), ("kind", kind)}

        def value(name: str, **more: str) -> float:
            return samples[(name, frozenset(lab | set(more.items())))]  # noqa: B023

        assert s["requests"] > 0, s
        assert value("seashard_load_requests_total") == s["requests"]
        assert value("seashard_load_latency_seconds_count") == s["requests"] == s["latency_count"]
        assert value("seashard_load_latency_seconds_bucket", le="+Inf") == s["requests"]
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (name, labels), v in samples.items()
            if name == "seashard_load_latency_seconds_bucket"
            and lab <= labels
            and dict(labels)["le"] != "+Inf"
        )
        assert len(buckets) >= 25 and all(
            a[1] <= b[1] for a, b in zip(buckets, buckets[1:], strict=False)
        )
        assert value("seashard_load_bytes_total", direction="sent") == s["bytes_sent"]
        assert value("seashard_load_bytes_total", direction="received") == s["bytes_received"]
        assert value("seashard_load_connections_live") == 0  # all closed at the end
        assert s["errors"] == {}
        p = s["latency_ms"]
        assert 0 < p["p50"] <= p["p90"] <= p["p99"] <= p["max"], p
    assert summary["echo"]["requests"] == series[(echo_t, "echo")]["requests"]
    assert summary["echo"]["latency_ms"] == series[(echo_t, "echo")]["latency_ms"]
    assert summary["canned"]["bytes"] == series[(canned_t, "canned")]["requests"] * 23
    assert summary["connect"]["requests"] == series[(logger_t, "connect")]["requests"]
    assert not any(name == "seashard_load_errors_total" for name, _ in samples)
    _check_with_prometheus_client(final_text, summary)


def _check_with_prometheus_client(text: str, summary: dict) -> None:
    """Where the lab's parser is installed, it reads the same numbers (host side only)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return  # the hand parser above has checked every number already
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = families["seashard_load_latency_seconds"]
    assert latency.type == "histogram"
    counts = {
        (s.labels["target"], s.labels["kind"]): s.value
        for s in latency.samples
        if s.name.endswith("_count")
    }
    assert counts == {(s["target"], s["kind"]): s["requests"] for s in summary["series"]}
    assert families["seashard_load_connections_live"].type == "gauge"


def test_metrics_port_held_by_another_program_fails_at_once() -> None:
    import socket

    (port,) = free_ports(1)
    holder = socket.socket()
    holder.bind(("0.0.0.0", port))
    holder.listen()
    try:
        result = run_cli("load", "--host", "127.0.0.1", "--metrics-port", str(port))
    finally:
        holder.close()
    assert result.returncode == 1
    assert result.stderr.strip() == f"metrics: bind: Address already in use (0.0.0.0:{port})"


def test_several_hosts_in_one_run_each_get_the_load(serve) -> None:  # type: ignore[no-untyped-def]
    first = serve("-c", "1")
    ports = [
        "--echo-port", str(first.ports["echo"]),
        "--canned-port", str(first.ports["canned"]),
        "--accept-logger-port", str(first.ports["accept-logger"]),
    ]  # fmt: skip
    second = serve("-c", "1", "--address", "127.0.0.2", *ports)  # same ports, other address
    result = run_cli(
        "load", "--host", "127.0.0.1", "--host", "127.0.0.2", *ports, "--mode", "mixed",
        "--connections", "3", "--duration", "1.5", "--json", timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["host"] == "127.0.0.1,127.0.0.2"
    for host in ("127.0.0.1", "127.0.0.2"):
        for kind in ("echo", "canned", "connect"):
            assert summary["by_host"][host][kind]["requests"] > 0, (host, kind)
            assert summary["by_host"][host][kind]["errors"] == 0
    targets = {s["target"] for s in summary["series"]}
    assert {f"127.0.0.2:{first.ports['echo']}", f"127.0.0.1:{first.ports['echo']}"} <= targets
    assert "echo" not in summary  # per host only, when there are several
    # each server saw its own share of the connections
    for server in (first, second):
        with urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}/metrics") as r:
            text = r.read().decode()
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("seashard_connections_total{")
        )
        assert total > 0


def test_echo_payloads_differ_per_request_and_follow_the_seed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import random

    from seashard.apps import loadgen

    def run(seed: int) -> list[bytes]:
        monkeypatch.setattr(loadgen, "_pools", {})  # a fresh shard's pool
        rng = random.Random(seed)
        return [loadgen.echo_payload(4096, rng) for _ in range(200)]

    first = run(7)
    assert all(len(p) == 4096 for p in first)
    assert len(set(first)) == len(first)  # no two requests expect the same reply
    assert run(7) == first  # --seed reproduces the run's payloads
    assert run(8) != first
    # a reply shifted by a byte (a lost or duplicated byte) is never the expected one
    pool = loadgen._pools[4096]
    assert all(pool[i : i + 4096] != pool[i + 1 : i + 4097] for i in range(0, 1000, 7))
