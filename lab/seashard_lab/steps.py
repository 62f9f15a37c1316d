"""The situations the lab suites check and the scenarios replay, as steps.

Each step drives a running `Lab` and returns plain data; the suites assert
on it, the scenario step library (scenario/library.py) reports and expects
on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from . import parse
from .lab import Lab, LabError
from .metrics import delta
from .plan import CLIENTS, PORTS


@dataclass
class TimewaitResult:
    server: str
    canned: dict[str, Any]
    ours: set[str]
    time_wait: set[str]
    refused: Any  # lablab.Result of the restart without --reuse-address
    refused_seconds: float
    admin_down_after_refusal: bool
    accepted: Any  # lablab.Result of the restart with it
    accepted_seconds: float
    served_after: dict[str, Any]
    first_served_seconds: float
    previous_run_rows: set[str] = field(default_factory=set)

    @property
    def refused_line(self) -> str:
        lines = self.refused.stderr.splitlines()
        return lines[0] if lines else ""


def timewait_step(
    lab: Lab, server: str, client: str = "client-1", count: int = 10
) -> TimewaitResult:
    """Canned connections (the server closes first), then a restart without and
    one with --reuse-address.  Leaves the server running with --reuse-address."""
    ip = lab.service_ip(server)
    canned = lab.traffic(
        client, "canned", "--host", ip, "--count", str(count), "--concurrency", "5"
    )
    ours = {f"{canned['local_ip']}:{r['port']}" for r in canned["results"]}
    time_wait = lab.time_wait_remotes(server, PORTS["canned"])
    t0 = time.monotonic()
    refused = lab.restart(server, lab.serve_args(server, reuse_address=False))
    refused_seconds = time.monotonic() - t0
    try:
        lab.admin_get(server, "/metrics", timeout=1)
        admin_down = False
    except LabError:
        admin_down = True
    t0 = time.monotonic()
    accepted = lab.restart(server, lab.serve_args(server, reuse_address=True))
    accepted_seconds = time.monotonic() - t0
    t1 = time.monotonic()
    served = lab.traffic(client, "canned", "--host", ip, "--count", "3")
    first_served = time.monotonic() - t1
    previous = set()
    if server == "native-server":
        previous = {
            row["remote"]
            for row in lab.connections(server)
            if row.get("previous_run") and row["local"].endswith(f":{PORTS['canned']}")
        }
    return TimewaitResult(
        server,
        canned,
        ours,
        time_wait,
        refused,
        refused_seconds,
        admin_down,
        accepted,
        accepted_seconds,
        served,
        first_served,
        previous,
    )


@dataclass
class SteerResult:
    server: str
    args: list[str]
    restart: Any
    results: list[dict[str, Any]]
    client_ip: str
    log: str
    metrics_delta: dict[str, dict[int, float]]

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return dict(sorted(counts.items()))

    def logged(self, port: int) -> list[str]:
        """The server's lines about a connection from our client's ``port``."""
        needle = f" connection from {self.client_ip}:{port} "
        return [line for line in self.log.splitlines() if needle in line + " "]


def steer_step(
    lab: Lab,
    server: str,
    smp: int | None = None,
    client: str = "client-1",
    count: int = 20,
) -> SteerResult:
    """Restart the server with --shard0-only (and -c smp), then ``count`` echo
    connections one after another.  The caller restores the server."""
    args = lab.serve_args(server, shard0_only=True, smp=smp)
    restart = lab.restart(server, args)
    if not restart.ok:
        raise LabError(f"restart of {server} with {args} failed:\n{restart.describe()}")
    before = lab.metrics(server)
    summary = lab.traffic(
        client, "steer", "--host", lab.service_ip(server), "--count", str(count), "--timeout", "3"
    )
    after = lab.metrics(server)
    names = [
        "seashard_connections_total",
        "seashard_connections_refused_no_listener_total",
        "seashard_tcp_syn_no_listener_total",
        "seashard_tcp_rst_sent_total",
    ]
    metrics_delta = {
        n: delta(after.per_shard(n), before.per_shard(n)) for n in names if n in after.samples
    }
    return SteerResult(
        server,
        args,
        restart,
        summary["results"],
        lab.ip(client),
        lab.run_log(server),
        metrics_delta,
    )


@dataclass
class StormResult:
    server: str
    per_client: dict[str, dict[str, Any]]
    per_shard: dict[int, float]
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [e for s in self.per_client.values() for e in s["errors"]]

    @property
    def connections(self) -> int:
        return sum(len(s["results"]) for s in self.per_client.values())


def storm_step(
    lab: Lab,
    server: str,
    per_client: int = 150,
    concurrency: int = 10,
    clients: tuple[str, ...] = CLIENTS,
) -> StormResult:
    """Both clients at once: ``per_client`` canned connections each; the
    per-shard rise of connections_total on the server."""
    ip = lab.service_ip(server)
    args = ["canned", "--host", ip, "--count", str(per_client), "--concurrency", str(concurrency)]
    before = lab.metrics(server).per_shard("seashard_connections_total")
    t0 = time.monotonic()
    runs = {c: lab.traffic_background(c, *args) for c in clients}
    results = {c: runs[c].finish(timeout=120) for c in clients}
    seconds = time.monotonic() - t0
    after = lab.metrics(server).per_shard("seashard_connections_total")
    return StormResult(server, results, delta(after, before), seconds)


@dataclass
class HoldResult:
    server: str
    ours: dict[str, str]  # remote "ip:port" -> client
    samples: list[dict[str, list[int]]]  # remote -> owning shard(s), per sample
    rows: list[list[dict[str, Any]]]  # /connections per sample
    per_client: dict[str, dict[str, Any]]
    metrics_before: Any
    metrics_after: Any
    pid_owners: list[dict[str, list[int]]] = field(default_factory=list)  # posix: ss pids

    def owner_changes(self) -> dict[str, list[list[int]]]:
        changes = {}
        for remote in self.ours:
            seen = [s.get(remote, []) for s in self.samples]
            if len({tuple(x) for x in seen}) != 1:
                changes[remote] = seen
        return changes

    def per_shard(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for remote in self.ours:
            owners = self.samples[0].get(remote, [])
            if len(owners) == 1:
                counts[owners[0]] = counts.get(owners[0], 0) + 1
        return dict(sorted(counts.items()))

    def per_shard_client(self) -> dict[int, dict[str, int]]:
        counts: dict[int, dict[str, int]] = {}
        for remote, client in self.ours.items():
            owners = self.samples[0].get(remote, [])
            if len(owners) == 1:
                by_client = counts.setdefault(owners[0], {})
                by_client[client] = by_client.get(client, 0) + 1
        return counts

    @property
    def errors(self) -> list[str]:
        return [e for s in self.per_client.values() for e in s["errors"]]


def hold_step(
    lab: Lab,
    server: str,
    per_client: int = 40,
    seconds: float = 8.0,
    samples: int = 3,
    gap: float = 1.0,
    clients: tuple[str, ...] = CLIENTS,
) -> HoldResult:
    """Long-lived echo connections from both clients; the owner of each one,
    sampled ``samples`` times while they live (posix: `ss -tnp` pids mapped to
    shards; native: the admin connection table)."""
    ip = lab.service_ip(server)
    port = PORTS["echo"]
    pid_shard = lab.shard_of_pid(server)
    before = lab.metrics(server)
    args = ["hold", "--host", ip, "--count", str(per_client), "--seconds", f"{seconds:g}"]
    runs = {c: lab.traffic_background(c, *args, "--seed", str(n)) for n, c in enumerate(clients)}
    ours: dict[str, str] = {}
    try:
        for c, run in runs.items():
            event = run.wait_event("established", timeout=30)
            ours.update({f"{lab.ip(c)}:{p}": c for p in event["ports"]})
        taken: list[dict[str, list[int]]] = []
        pid_samples: list[dict[str, list[int]]] = []
        rows_taken: list[list[dict[str, Any]]] = []
        for i in range(samples):
            if i:
                time.sleep(gap)
            rows = lab.connections(server)
            rows_taken.append(rows)
            if server == "posix-server":
                pids = lab.posix_owners(port)
                pid_samples.append(pids)
                taken.append(
                    {r: sorted({pid_shard.get(p, -1) for p in ps}) for r, ps in pids.items()}
                )
            else:
                taken.append(lab.native_owners(port, rows))
        results = {c: run.finish(timeout=seconds + 60) for c, run in runs.items()}
    finally:
        for run in runs.values():
            if run.stream.running:
                run.kill()
    after = lab.metrics(server)
    return HoldResult(server, ours, taken, rows_taken, results, before, after, pid_samples)


@dataclass
class LossyEchoResult:
    server: str
    sizes: dict[str, Any]
    concurrent: dict[str, Any]
    retransmits_client: int
    retransmits_server: float | None

    @property
    def errors(self) -> list[str]:
        return self.sizes["errors"] + self.concurrent["errors"]


def tcp_retrans_segs(lab: Lab, service: str) -> int:
    """RetransSegs of the kernel TCP in a container's network namespace."""
    return parse.tcp_retrans_segs(lab.exec(service, ["cat", "/proc/net/snmp"]).stdout)


def lossy_echo_step(
    lab: Lab, server: str, client: str, sizes: str = "1,1460,65536,262144"
) -> LossyEchoResult:
    """Echo through an impaired link (the caller turns the impairment on)."""
    ip = lab.service_ip(server)
    before_client = tcp_retrans_segs(lab, client)
    before = lab.metrics(server).total("seashard_tcp_retransmits_total")
    by_size = lab.traffic(
        client, "echo", "--host", ip, "--sizes", sizes, "--timeout", "60", timeout=300
    )
    concurrent = lab.traffic(
        client,
        "echo",
        "--host",
        ip,
        "--sizes",
        "32768",
        "--concurrency",
        "8",
        "--timeout",
        "60",
        timeout=180,
    )
    after = lab.metrics(server).total("seashard_tcp_retransmits_total")
    server_retx = after - before if server == "native-server" else None
    return LossyEchoResult(
        server, by_size, concurrent, tcp_retrans_segs(lab, client) - before_client, server_retx
    )
