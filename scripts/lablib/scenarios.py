"""`scripts/lab scenario NAME`: replay a situation the lab suites cover on the live lab.

    python3 scripts/lablib/scenarios.py list
    python3 scripts/lablib/scenarios.py NAME [--project P] [--artifacts DIR]

Each scenario prints a few readable lines (per-shard counts, errors, timings)
and leaves ``artifacts/scenario-NAME-YYYYmmdd-HHMMSS/`` with:
  lab-network.pcap       every frame on the lab's bridge during the scenario
  <service>.log          each container's log during the scenario
  <server>.run.log       the server program's current run (after the restore)
  admin-before/, admin-after/   /metrics, /connections, /shards of both servers
  summary.txt            what was printed, the details as JSON, and how to replay
Afterwards the lab is back in its normal state: default server arguments,
client links unimpaired, the clients' load generators running.

The steps (`timewait_step`, `steer_step`, `storm_step`, `hold_step`,
`lossy_echo_step`) return plain data; the lab test suites call the same steps
and assert on what they return.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from labops import (  # noqa: E402
    ADDRESS_IN_USE,
    CLIENTS,
    PORTS,
    SERVERS,
    STACK_OF,
    CaptureHelper,
    LabError,
    LabOps,
    delta,
    native_owners,
    posix_owners,
    shard_of_pid,
)

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- steps


def time_wait_remotes(ops: LabOps, server: str, port: int) -> set[str]:
    """Remote "ip:port" of the server's TIME_WAIT connections on ``port``: the
    kernel's (`ss`) for posix, the native stack's own table (admin) for native."""
    if server == "posix-server":
        out = ops.exec(server, ["ss", "-tanH", "state", "time-wait", f"( sport = :{port} )"]).stdout
        remotes = set()
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 4:
                remotes.add(words[-1])
        return remotes
    return {
        row["remote"]
        for row in ops.connections(server)
        if row["state"] == "TIME_WAIT" and row["local"].endswith(f":{port}")
    }


@dataclass
class TimewaitResult:
    server: str
    canned: dict[str, Any]
    ours: set[str]
    time_wait: set[str]
    refused: Any  # labops.Result of the restart without --reuse-address
    refused_seconds: float
    admin_down_after_refusal: bool
    accepted: Any  # labops.Result of the restart with it
    accepted_seconds: float
    served_after: dict[str, Any]
    first_served_seconds: float
    previous_run_rows: set[str] = field(default_factory=set)

    @property
    def refused_line(self) -> str:
        lines = self.refused.stderr.splitlines()
        return lines[0] if lines else ""


def timewait_step(
    ops: LabOps, server: str, client: str = "client-1", count: int = 10
) -> TimewaitResult:
    """Canned connections (the server closes first), then a restart without and
    one with --reuse-address.  Leaves the server running with --reuse-address."""
    ip = ops.service_ip(server)
    canned = ops.traffic(
        client, "canned", "--host", ip, "--count", str(count), "--concurrency", "5"
    )
    ours = {f"{canned['local_ip']}:{r['port']}" for r in canned["results"]}
    time_wait = time_wait_remotes(ops, server, PORTS["canned"])
    t0 = time.monotonic()
    refused = ops.restart(server, ops.serve_args(server, reuse_address=False))
    refused_seconds = time.monotonic() - t0
    try:
        ops.admin_get(server, "/metrics", timeout=1)
        admin_down = False
    except LabError:
        admin_down = True
    t0 = time.monotonic()
    accepted = ops.restart(server, ops.serve_args(server, reuse_address=True))
    accepted_seconds = time.monotonic() - t0
    t1 = time.monotonic()
    served = ops.traffic(client, "canned", "--host", ip, "--count", "3")
    first_served = time.monotonic() - t1
    previous = set()
    if server == "native-server":
        previous = {
            row["remote"]
            for row in ops.connections(server)
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
    ops: LabOps,
    server: str,
    smp: int | None = None,
    client: str = "client-1",
    count: int = 20,
) -> SteerResult:
    """Restart the server with --shard0-only (and -c smp), then ``count`` echo
    connections one after another.  The caller restores the server."""
    args = ops.serve_args(server, shard0_only=True, smp=smp)
    restart = ops.restart(server, args)
    if not restart.ok:
        raise LabError(f"restart of {server} with {args} failed:\n{restart.describe()}")
    before = ops.metrics(server)
    summary = ops.traffic(
        client, "steer", "--host", ops.service_ip(server), "--count", str(count), "--timeout", "3"
    )
    after = ops.metrics(server)
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
        ops.ip(client),
        ops.run_log(server),
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
    ops: LabOps, server: str, per_client: int = 150, concurrency: int = 10
) -> StormResult:
    """Both clients at once: ``per_client`` canned connections each; the
    per-shard rise of connections_total on the server."""
    ip = ops.service_ip(server)
    args = ["canned", "--host", ip, "--count", str(per_client), "--concurrency", str(concurrency)]
    before = ops.metrics(server).per_shard("seashard_connections_total")
    t0 = time.monotonic()
    runs = {c: ops.traffic_background(c, *args) for c in CLIENTS}
    results = {c: runs[c].finish(timeout=120) for c in CLIENTS}
    seconds = time.monotonic() - t0
    after = ops.metrics(server).per_shard("seashard_connections_total")
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
    ops: LabOps,
    server: str,
    per_client: int = 40,
    seconds: float = 8.0,
    samples: int = 3,
    gap: float = 1.0,
) -> HoldResult:
    """Long-lived echo connections from both clients; the owner of each one,
    sampled ``samples`` times while they live (posix: `ss -tnp` pids mapped to
    shards; native: the admin connection table)."""
    ip = ops.service_ip(server)
    port = PORTS["echo"]
    pid_shard = shard_of_pid(ops, server)
    before = ops.metrics(server)
    args = ["hold", "--host", ip, "--count", str(per_client), "--seconds", f"{seconds:g}"]
    runs = {c: ops.traffic_background(c, *args, "--seed", str(n)) for n, c in enumerate(CLIENTS)}
    ours: dict[str, str] = {}
    try:
        for c, run in runs.items():
            event = run.wait_event("established", timeout=30)
            ours.update({f"{ops.ip(c)}:{p}": c for p in event["ports"]})
        taken: list[dict[str, list[int]]] = []
        pid_samples: list[dict[str, list[int]]] = []
        rows_taken: list[list[dict[str, Any]]] = []
        for i in range(samples):
            if i:
                time.sleep(gap)
            rows = ops.connections(server)
            rows_taken.append(rows)
            if server == "posix-server":
                pids = posix_owners(ops, port)
                pid_samples.append(pids)
                taken.append(
                    {r: sorted({pid_shard.get(p, -1) for p in ps}) for r, ps in pids.items()}
                )
            else:
                taken.append(native_owners(ops, port, rows))
        results = {c: run.finish(timeout=seconds + 60) for c, run in runs.items()}
    finally:
        for run in runs.values():
            if run.proc.poll() is None:
                run.kill()
    after = ops.metrics(server)
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


def tcp_retrans_segs(ops: LabOps, service: str) -> int:
    """RetransSegs of the kernel TCP in a container's network namespace."""
    snmp = ops.exec(service, ["cat", "/proc/net/snmp"]).stdout.splitlines()
    tcp = [line.split() for line in snmp if line.startswith("Tcp:")]
    if len(tcp) < 2:
        return 0
    return int(dict(zip(tcp[0], tcp[1], strict=False)).get("RetransSegs", 0))


def lossy_echo_step(
    ops: LabOps, server: str, client: str, sizes: str = "1,1460,65536,262144"
) -> LossyEchoResult:
    """Echo through an impaired link (the caller turns the impairment on)."""
    ip = ops.service_ip(server)
    before_client = tcp_retrans_segs(ops, client)
    before = ops.metrics(server).total("seashard_tcp_retransmits_total")
    by_size = ops.traffic(
        client, "echo", "--host", ip, "--sizes", sizes, "--timeout", "60", timeout=300
    )
    concurrent = ops.traffic(
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
    after = ops.metrics(server).total("seashard_tcp_retransmits_total")
    server_retx = after - before if server == "native-server" else None
    return LossyEchoResult(
        server, by_size, concurrent, tcp_retrans_segs(ops, client) - before_client, server_retx
    )


# ---------------------------------------------------------------- the harness


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.details: dict[str, Any] = {}
        self.problems: list[str] = []

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)
            self.line(f"  UNEXPECTED: {problem}")


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def shard_counts(per_shard: dict[int, float]) -> str:
    total = sum(per_shard.values())
    return ", ".join(f"shard {s} {v:.0f} ({pct(v, total)})" for s, v in sorted(per_shard.items()))


def scenario_timewait_restart(ops: LabOps, rep: Report) -> None:
    """canned connections (server closes first: TIME_WAIT on the server), then a
    restart without --reuse-address (fails: bind: Address already in use) and
    one with it (serves at once); posix and native."""
    for server in SERVERS:
        stack = STACK_OF[server]
        r = timewait_step(ops, server, count=20)
        ok = sum(1 for x in r.canned["results"] if x.get("ok"))
        rep.line(
            f"{stack}: {ok}/{len(r.canned['results'])} canned responses exact, server closed "
            f"first; TIME_WAIT on the server's :{PORTS['canned']}: {len(r.time_wait)} "
            f"({len(r.ours & r.time_wait)} of ours)"
        )
        rep.line(
            f"{stack}: restart without --reuse-address: exit {r.refused.rc} after "
            f"{r.refused_seconds:.1f} s: {r.refused_line!r}"
        )
        rep.line(
            f"{stack}: restart with --reuse-address: exit {r.accepted.rc}, ready after "
            f"{r.accepted_seconds:.1f} s; canned served again "
            f"{'yes' if r.served_after['ok'] else 'NO'} ({r.first_served_seconds:.2f} s)"
            + (
                f"; previous run's TIME_WAIT rows kept: {len(r.previous_run_rows & r.ours)}"
                if server == "native-server"
                else ""
            )
        )
        rep.details[stack] = {
            "canned_errors": r.canned["errors"],
            "time_wait_total": len(r.time_wait),
            "ours_in_time_wait": sorted(r.ours & r.time_wait),
            "ours": sorted(r.ours),
            "refused": r.refused.stderr,
            "accepted": r.accepted.stdout,
        }
        rep.expect(bool(r.ours & r.time_wait), f"{stack}: none of our connections in TIME_WAIT")
        rep.expect(
            r.refused.rc != 0 and r.refused_line.startswith(ADDRESS_IN_USE),
            f"{stack}: restart without --reuse-address did not fail with '{ADDRESS_IN_USE}'",
        )
        rep.expect(r.accepted.ok and r.served_after["ok"], f"{stack}: restart with it failed")
        ops.restore(server)


def scenario_shard0_only_listener(ops: LabOps, rep: Report) -> None:
    """the service listens on shard 0 only: connections steered to shard 1 are
    closed (posix) or reset (native) and logged; with -c 1 all are served.
    The clients' background load is paused meanwhile (with long-lived
    connections on shard 0, the posix balancer would steer every new one to
    the listener-less shard 1)."""
    ops.clients_quiet()
    rep.line("clients' background load paused")
    for server in SERVERS:
        stack = STACK_OF[server]
        for smp in (None, 1):
            t0 = time.monotonic()
            r = steer_step(ops, server, smp=smp, count=20)
            seconds = time.monotonic() - t0
            outcomes = r.outcomes()
            unserved = [x for x in r.results if x["outcome"] != "served"]
            logged = sum(1 for x in unserved if r.logged(x["port"]))
            label = "-c 2 --shard0-only" if smp is None else "-c 1 --shard0-only"
            per_shard = r.metrics_delta.get("seashard_connections_total", {})
            rep.line(
                f"{stack} {label}: {len(r.results)} connections: "
                + ", ".join(f"{k} {v}" for k, v in outcomes.items())
                + f"; not served and logged by the server: {logged}/{len(unserved)}; "
                f"connections_total rise per shard: {shard_counts(per_shard)}; {seconds:.1f} s"
            )
            rep.details[f"{stack} {label}"] = {
                "outcomes": outcomes,
                "results": r.results,
                "log_lines": [line for x in unserved for line in r.logged(x["port"])],
                "metrics_delta": {k: v for k, v in r.metrics_delta.items()},
            }
            rep.expect("hang" not in outcomes, f"{stack} {label}: connections left hanging")
            rep.expect(logged == len(unserved), f"{stack} {label}: unlogged closes/resets")
            if smp == 1:
                rep.expect(outcomes == {"served": len(r.results)}, f"{stack} -c 1: not all served")
        ops.restore(server)


def scenario_connection_storm(ops: LabOps, rep: Report) -> None:
    """both clients at once: a storm of short connections and a set of
    long-lived ones per server; per-shard counts, owner changes (none expected).
    The clients' background load is paused meanwhile."""
    ops.clients_quiet()
    rep.line("clients' background load paused for exact counts")
    for server in SERVERS:
        stack = STACK_OF[server]
        storm = storm_step(ops, server, per_client=200, concurrency=20)
        rep.line(
            f"{stack}: storm of {storm.connections} canned connections from 2 clients in "
            f"{storm.seconds:.1f} s: {shard_counts(storm.per_shard)}; errors {len(storm.errors)}"
        )
        hold = hold_step(ops, server, per_client=30, seconds=6, samples=3, gap=1.0)
        changes = hold.owner_changes()
        rep.line(
            f"{stack}: {len(hold.ours)} long-lived echo connections: "
            f"{shard_counts(hold.per_shard())}; by client per shard {hold.per_shard_client()}; "
            f"owner changes over 3 samples: {len(changes)}; errors {len(hold.errors)}"
        )
        if server == "native-server":
            fwd = delta(
                hold.metrics_after.per_shard("seashard_frames_forwarded_total"),
                hold.metrics_before.per_shard("seashard_frames_forwarded_total"),
            )
            nocon = delta(
                hold.metrics_after.per_shard("seashard_tcp_segments_no_connection_total"),
                hold.metrics_before.per_shard("seashard_tcp_segments_no_connection_total"),
            )
            rep.line(
                f"{stack}: frames forwarded between shards {fwd}; no-connection segments {nocon}"
            )
        rep.details[stack] = {
            "storm_per_shard": storm.per_shard,
            "storm_errors": storm.errors[:20],
            "hold_per_shard": hold.per_shard(),
            "owner_changes": changes,
            "hold_errors": hold.errors[:20],
        }
        rep.expect(not storm.errors and not hold.errors, f"{stack}: client errors")
        rep.expect(not changes, f"{stack}: connections changed shard")
        rep.expect(
            all(v >= 0.3 * storm.connections for v in storm.per_shard.values())
            and len(storm.per_shard) >= 2,
            f"{stack}: unfair storm split {storm.per_shard}",
        )


def scenario_lossy_link_echo(ops: LabOps, rep: Report) -> None:
    """5 % loss and 25 % reordering on client-2's link (tc netem where the
    kernel has it, else the userspace relay, both directions); echo must stay
    byte-exact on both stacks."""
    client = "client-2"
    results = {}
    with ops.impaired(client, loss=0.05, reorder=0.25, seed=42, duration=240) as link:
        rep.line(f"{client}: {link['on']}")
        for server in SERVERS:
            stack = STACK_OF[server]
            t0 = time.monotonic()
            r = lossy_echo_step(ops, server, client)
            results[stack] = r
            per_size = ", ".join(
                f"{x['size']}B {x['seconds']:.2f}s{'' if x.get('ok') else ' FAILED'}"
                for x in r.sizes["results"]
            )
            rep.line(
                f"{stack}: echo {per_size}; 8 concurrent x 32 KiB "
                f"{'ok' if r.concurrent['ok'] else 'FAILED'} ({r.concurrent['seconds']:.2f} s); "
                f"retransmitted segments: client {r.retransmits_client}"
                + (
                    f", server {r.retransmits_server:.0f}"
                    if r.retransmits_server is not None
                    else ""
                )
                + f"; {time.monotonic() - t0:.1f} s"
            )
            rep.expect(not r.errors, f"{stack}: {r.errors[:5]}")
    counts = {k: v for k, v in link.items() if k != "on"}
    rep.line(
        f"{client}: link restored; impairment: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    rep.details = {
        "impairment": counts,
        **{s: {"sizes": r.sizes["results"], "errors": r.errors} for s, r in results.items()},
    }


SCENARIOS: dict[str, Callable[[LabOps, Report], None]] = {
    "timewait-restart": scenario_timewait_restart,
    "shard0-only-listener": scenario_shard0_only_listener,
    "connection-storm": scenario_connection_storm,
    "lossy-link-echo": scenario_lossy_link_echo,
}


def restore_lab(ops: LabOps) -> list[str]:
    """Back to normal: client links unimpaired, default server arguments, load running."""
    problems = []
    for client in CLIENTS:
        try:
            if (
                ops.exec(client, ["lab-impair", "status"]).rc == 0
                or ops.exec(client, ["test", "-f", "/run/lab/impair.state"]).ok
            ):
                ops.impair_off(client)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{client}: {exc}")
    for server in SERVERS:
        try:
            ops.restore(server)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{server}: {exc}")
    try:
        ops.clients_resume()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"clients: {exc}")
    return problems


def save_admin(ops: LabOps, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for server in SERVERS:
        for path, text in ops.snapshot(server).items():
            (folder / f"{server}{path.replace('/', '-')}.txt").write_text(text)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, set):
        return sorted(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return str(obj)


def run_scenario(ops: LabOps, name: str, artifacts: Path) -> int:
    fn = SCENARIOS[name]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = artifacts / f"scenario-{name}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    rep = Report()
    ops.refresh()
    started_wall = time.time()
    started = time.monotonic()
    what = (fn.__doc__ or "").split(";")[0].strip()
    print(f"scenario {name} on lab '{ops.project}' ({ops.subnet}): {' '.join(what.split())}")
    helper: CaptureHelper | None = None
    try:
        helper = ops.capture_helper()
        helper.start("scenario")
    except Exception as exc:  # noqa: BLE001
        rep.line(f"(no capture of the lab network: {exc})")
        helper = None
    save_admin(ops, folder / "admin-before")
    error = None
    try:
        fn(ops, rep)
    except Exception as exc:  # noqa: BLE001 - report, restore, and say so
        error = "".join(traceback.format_exception(exc))
        rep.line(f"ERROR: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        save_admin(ops, folder / "admin-after")
        problems = restore_lab(ops)
        elapsed = time.monotonic() - started
        if helper is not None:
            try:
                helper.stop("scenario", folder / "lab-network.pcap")
            finally:
                helper.close()
        for service in ("posix-server", "native-server", "client-1", "client-2", "probe"):
            try:
                (folder / f"{service}.log").write_text(ops.logs(service, since=started_wall - 1))
            except Exception as exc:  # noqa: BLE001
                (folder / f"{service}.log").write_text(f"could not read logs: {exc}\n")
        for server in SERVERS:
            try:
                (folder / f"{server}.run.log").write_text(ops.run_log(server))
            except Exception:  # noqa: BLE001
                pass
    restored = "lab restored to its normal state" if not problems else f"RESTORE FAILED: {problems}"
    verdict = "as expected" if not rep.problems and error is None else "UNEXPECTED results"
    rep.line(f"{name}: {verdict} in {elapsed:.1f} s; {restored}")
    rep.line(f"artifacts: {folder}")
    header = [
        f"scenario:  {name} -- {' '.join((fn.__doc__ or '').split())}",
        f"lab:       {ops.project} on {ops.subnet}",
        f"started:   {datetime.fromtimestamp(started_wall).isoformat(timespec='seconds')}",
        f"duration:  {elapsed:.1f} s",
        f"replay:    scripts/lab scenario {name}"
        + (f"   (SEASHARD_LAB_PROJECT={ops.project})" if ops.project != "seashard-lab" else ""),
        "pcap:      lab-network.pcap (tcpdump on the lab bridge; tshark -r / Wireshark)",
        "",
    ]
    body = header + rep.lines
    if rep.problems:
        body += ["", "unexpected:"] + [f"  {p}" for p in rep.problems]
    if error:
        body += ["", "error:", error]
    body += ["", "details:", json.dumps(rep.details, indent=1, default=_json_default)]
    (folder / "summary.txt").write_text("\n".join(body) + "\n")
    if error or problems:
        return 2
    return 1 if rep.problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/lab scenario", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="a scenario, or 'list'")
    p.add_argument("--project", default=os.environ.get("SEASHARD_LAB_PROJECT", "seashard-lab"))
    p.add_argument(
        "--artifacts", type=Path, default=Path(os.environ.get("LAB_ARTIFACTS", ROOT / "artifacts"))
    )
    args = p.parse_args(argv)
    if args.name in ("list", "ls"):
        width = max(map(len, SCENARIOS))
        for name, fn in SCENARIOS.items():
            print(f"{name:<{width}}  {' '.join((fn.__doc__ or '').split())}")
        return 0
    if args.name not in SCENARIOS:
        print(
            f"scripts/lab scenario: unknown scenario {args.name!r}; one of: "
            + ", ".join(SCENARIOS)
            + " (or list)",
            file=sys.stderr,
        )
        return 2
    ops = LabOps(args.project)
    try:
        ops.refresh()
    except LabError as exc:
        print(f"scripts/lab scenario: {exc}", file=sys.stderr)
        return 2
    return run_scenario(ops, args.name, args.artifacts)


if __name__ == "__main__":
    sys.exit(main())
