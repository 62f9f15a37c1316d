"""`scripts/lab top --once` against the admin endpoints' own numbers.

The clients' load generators are stopped (so the servers' counters hold still)
and a known number of idle echo connections is held open on each server; what
top prints per shard must be what each admin endpoint says, and the stopped
load generators must show as down, without a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from seashard_lab import ROOT
from seashard_lab.plan import SERVERS
from seashard_lab.prometheus import Prometheus
from seashard_lab.swarm_deployment import SwarmDeployment
from seashard_lab.topview import compact

HELD = {"posix-server": ("client-1", 5), "native-server": ("client-2", 7)}


def _admin(lab) -> dict[str, dict[int, dict[str, str]]]:
    """What each admin endpoint says, per shard, in top's own formatting."""
    out: dict[str, dict[int, dict[str, str]]] = {}
    for server in SERVERS:
        m = lab.metrics(server)
        live = m.per_shard("seashard_connections_live")
        drops = m.per_shard("seashard_frames_dropped_total")
        fwd = m.per_shard("seashard_frames_forwarded_total")
        out[server] = {
            shard: {
                "pid": info["pid"],
                "cpus": info["cpus"],
                "live": compact(live.get(shard, 0)),
                **(
                    {"drops": compact(drops.get(shard, 0)), "fwd": compact(fwd.get(shard, 0))}
                    if info.get("stack") == "native"
                    else {}
                ),
            }
            for shard, info in m.shard_info().items()
        }
    return out


def _parse(text: str) -> dict[str, dict[int, dict[str, str]]]:
    """top's server tables: the title line, a header, one row per shard."""
    tables: dict[str, dict[int, dict[str, str]]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in SERVERS and i + 2 < len(lines):
            # header cells are two or more spaces apart ("in B/s" is one)
            header = re.split(r"\s{2,}", lines[i + 1].strip())
            rows: dict[int, dict[str, str]] = {}
            for row in lines[i + 2 :]:
                if set(row.strip()) == {"─"}:  # a rule under the header, if drawn
                    continue
                cells = row.split()
                if not cells or not cells[0].isdigit():
                    break
                rows[int(cells[0])] = dict(zip(header, cells, strict=True))
            tables[line.strip()] = rows
    return tables


@pytest.fixture
def held(quiet_clients):
    lab = quiet_clients
    holds = []
    for server, (client, count) in HELD.items():
        bg = lab.traffic_background(
            client,
            "hold",
            "--host",
            lab.service_ip(server),
            "--count",
            str(count),
            "--seconds",
            "60",
            "--interval",
            "100",  # one round trip at the start, then idle: counters hold still
        )
        event = bg.wait_event("established")
        assert len(event["ports"]) == count, event
        holds.append(bg)
    time.sleep(2)  # the first round trips done
    yield lab
    for bg in holds:
        bg.kill()


def test_top_once_shows_what_the_admin_endpoints_say(held):
    lab = held
    env = dict(
        os.environ,
        SEASHARD_LAB_PROJECT=lab.project,
        LAB_SUBNET=str(lab.subnet),
        LAB_BRIDGE=lab.plan.bridge,
        COLUMNS="80",
    )
    swarm = ["--swarm"] if isinstance(lab.deployment, SwarmDeployment) else []
    for _attempt in range(3):  # the counters of a quiet lab hold still; retry a moving one
        before = _admin(lab)
        done = subprocess.run(
            [str(ROOT / "scripts" / "lab"), "top", *swarm, "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        after = _admin(lab)
        if before == after:
            break
    else:
        pytest.fail(f"the admin numbers kept moving: {before} -> {after}")
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in out + done.stderr
    assert max(len(x) for x in out.splitlines()) <= 80, out

    shown = _parse(out)
    assert set(shown) == set(SERVERS), out
    for server in SERVERS:
        assert set(shown[server]) == set(after[server]), (server, out)
        for shard, admin in after[server].items():
            row = shown[server][shard]
            for column, value in admin.items():
                assert row[column] == value, (server, shard, column, row, admin)
            # the shard's own CPU time (seashard_cpu_seconds_total) became a percentage
            assert re.fullmatch(r"\d+", row["cpu%"]), row
            # nothing new in the quiet second between top's two scrapes
            assert (row["conn/s"], row["in B/s"], row["out B/s"]) == ("0", "0", "0"), row
        held_here = sum(int(r["live"]) for r in shown[server].values())
        assert held_here == HELD[server][1], (server, out)

    # the stopped load generators: down, and said why, each of their two endpoints
    for client in ("client-1", "client-2"):
        downs = [x for x in out.splitlines() if x.startswith(f"{client}: DOWN")]
        assert len(downs) == 2 and all("refused" in x.lower() for x in downs), out

    # and Prometheus says the same of them
    prom = Prometheus(lab.prometheus_url())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = {(t.service, t.url): t for t in prom.targets() if t.job == "seashard-load"}
        if len(health) == 4 and all(t.health == "down" for t in health.values()):
            break
        time.sleep(1)
    assert len(health) == 4 and all(t.health == "down" and t.last_error for t in health.values()), (
        health
    )
