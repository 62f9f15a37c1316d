"""Suite 3 -- connection-to-core affinity, both stacks.

Connections from both client containers spread over both shards (each gets a
fair share, >= 30 %); every shard is a process pinned to a CPU of its own; on
the posix server every established socket is held by exactly one shard process
(`ss -tnp` in the server container); on the native server every connection
is in exactly one shard's table and no frame of it was handled by another
shard (no segment forwarded between shards, none that found no connection);
and no connection changes shard during its life (sampled while it lives).

The clients' own background load is paused for this module, so that every
connection the servers count is one of the test's."""

from __future__ import annotations

import re

import pytest

from seashard_lab.metrics import delta, shares
from seashard_lab.plan import CLIENTS, SERVERS
from seashard_lab.steps import hold_step, storm_step

FAIR = 0.30


@pytest.fixture(params=SERVERS, ids=["posix", "native"])
def server(request, quiet_clients) -> str:
    return request.param


def test_each_shard_is_a_process_pinned_to_its_own_cpu(quiet_clients, server):
    lab = quiet_clients
    shards = lab.pids_and_cpus(server)
    assert sorted(shards) == [0, 1]
    host = lab.hosts[server]
    cpus = []
    for shard, info in shards.items():
        assert len(info["cpus"]) == 1, f"shard {shard} may run on {info['cpus']}"
        # the kernel's view (/proc/PID/status) agrees with what the server reports
        assert info["allowed"] == str(info["cpus"][0]), info
        cpus.append(info["cpus"][0])
        proc = host.process.get(pid=info["pid"])
        assert "seashard" in proc.args, proc.args
    assert len(set(cpus)) == 2, f"shards share a CPU: {shards}"
    status = host.file(f"/proc/{shards[1]['pid']}/status").content_string
    assert re.search(r"^Cpus_allowed_list:\s*" + str(shards[1]["cpus"][0]) + "$", status, re.M)


def test_long_lived_connections_spread_and_never_change_shard(quiet_clients, server):
    lab = quiet_clients
    result = hold_step(lab, server, per_client=40, seconds=8, samples=3, gap=1.0)
    assert not result.errors, result.errors[:10]
    assert all(s["ok"] for s in result.per_client.values())
    assert len(result.ours) == 80

    for n, sample in enumerate(result.samples):
        missing = sorted(set(result.ours) - set(sample))
        assert not missing, f"sample {n}: connections not seen on {server}: {missing[:10]}"
        several = {r: o for r, o in sample.items() if r in result.ours and len(o) != 1}
        assert not several, f"sample {n}: not exactly one owner: {several}"
    changes = result.owner_changes()
    assert not changes, f"connections that changed shard: {changes}"

    per_shard = result.per_shard()
    assert sorted(per_shard) == [0, 1], per_shard
    assert min(shares(per_shard).values()) >= FAIR, per_shard
    by_client = result.per_shard_client()
    for shard in (0, 1):
        assert set(by_client[shard]) == set(CLIENTS), f"shard {shard}: {by_client[shard]}"

    if server == "posix-server":
        shards = lab.pids_and_cpus(server)
        pid_shard = {info["pid"]: s for s, info in shards.items()}
        for n, pids in enumerate(result.pid_owners):
            for remote in result.ours:
                assert len(pids[remote]) == 1, f"sample {n}: {remote} held by {pids[remote]}"
                assert pids[remote][0] in pid_shard, f"{remote}: pid {pids[remote]} is no shard"
        # ... and each of those processes is pinned to a CPU of its own
        holders = {p for pids in result.pid_owners for r in result.ours for p in pids[r]}
        allowed = {p: shards[pid_shard[p]]["allowed"] for p in holders}
        assert len(holders) == 2 and len(set(allowed.values())) == 2, allowed
        assert all(a is not None and a.isdigit() for a in allowed.values()), allowed
        # the admin table names the same shard as `ss`
        rows = {r["remote"]: r["shard"] for r in result.rows[-1] if r["local"].endswith(":1234")}
        for remote in result.ours:
            assert rows.get(remote) == result.samples[-1][remote][0], remote
    else:
        for name in (
            "seashard_frames_forwarded_total",
            "seashard_tcp_segments_no_connection_total",
            "seashard_tcp_rst_sent_total",
        ):
            moved = delta(
                result.metrics_after.per_shard(name), result.metrics_before.per_shard(name)
            )
            assert not any(moved.values()), f"{name} rose: {moved}"
        # each connection's segments kept arriving at its owner while it lived
        first = {r["remote"]: r for r in result.rows[0]}
        last = {r["remote"]: r for r in result.rows[-1]}
        for remote in result.ours:
            assert last[remote]["shard"] == first[remote]["shard"]
            assert last[remote]["segments_in"] > first[remote]["segments_in"] >= 2, (
                first[remote],
                last[remote],
            )


def test_a_connection_storm_spreads_over_both_shards(quiet_clients, server):
    lab = quiet_clients
    result = storm_step(lab, server, per_client=150, concurrency=10)
    assert not result.errors, result.errors[:10]
    assert result.connections == 300
    assert sum(result.per_shard.values()) == 300, result.per_shard
    assert min(shares(result.per_shard).values()) >= FAIR, result.per_shard
