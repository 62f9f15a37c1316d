"""`scripts/lab scenario`: the list, a bad file refused before the lab changes,
and one scenario file replayed end to end on the test lab -- its readable
lines, its artifacts folder (pcap of the lab network, logs, admin snapshots,
summary.txt) and the lab restored afterwards."""

from __future__ import annotations

import io
import os
import subprocess

from seashard_lab import ROOT, SCENARIO_DIR
from seashard_lab.plan import CLIENTS, SERVERS
from seashard_lab.swarm_deployment import SwarmDeployment

LAB_SCRIPT = ROOT / "scripts" / "lab"


def scenario(lab, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SEASHARD_LAB_PROJECT=lab.project)
    swarm = ["--swarm"] if isinstance(lab.deployment, SwarmDeployment) else []
    return subprocess.run(
        [str(LAB_SCRIPT), "scenario", *swarm, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_scenario_list_names_every_scenario_file(lab):
    listed = scenario(lab, "list")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    # (lab/tests/test_scenario_files.py checks that the built-in ones are all there)
    assert names == sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
    assert all(len(line.split(None, 1)) == 2 for line in listed.stdout.splitlines()), listed.stdout
    unknown = scenario(lab, "no-such-scenario")
    assert unknown.returncode == 2 and "unknown scenario" in unknown.stderr


def test_a_bad_scenario_file_changes_nothing_in_the_lab(lab, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[[step]]\ndo = "restart"\nsmp = 1\n\n[[step]]\ndo = "lod"\n')
    before = lab.current_args("posix-server")
    run = scenario(lab, str(path))
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"{path}:6: unknown step 'lod' (one of: restart, start, stop, pause-clients, "
        "resume-clients, load, finish, impair, capture, wait, expect, note)"
    )
    assert run.stdout == ""
    assert lab.current_args("posix-server") == before
    assert not list(tmp_path.glob("scenario-*"))


def test_shard0_only_scenario_reports_leaves_artifacts_and_restores_the_lab(lab, tmp_path):
    from scapy.all import TCP, rdpcap

    run = scenario(lab, "shard0-only-listener", "--artifacts", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith("posix -c 2 --shard0-only: 20 steer connections") for line in lines)
    assert any(
        line.startswith("native -c 1 --shard0-only: 20 steer connections from client-1: served 20")
        for line in lines
    )
    assert any("lab restored to its normal state" in line for line in lines)
    assert not any("UNEXPECTED" in line for line in lines)

    (folder,) = tmp_path.glob("scenario-shard0-only-listener-*")
    for name in ("summary.txt", "lab-network.pcap", "posix-server.log", "native-server.log"):
        assert (folder / name).stat().st_size > 0, name
    for when in ("admin-before", "admin-after"):
        for server in SERVERS:
            assert "seashard_shard_info" in (folder / when / f"{server}-metrics.txt").read_text()
    summary = (folder / "summary.txt").read_text()
    assert "replay:    scripts/lab scenario shard0-only-listener" in summary
    assert "no listener on port 1234 on this shard" in (folder / "posix-server.log").read_text()
    packets = rdpcap(io.BytesIO((folder / "lab-network.pcap").read_bytes()))
    ports = {p[TCP].dport for p in packets if p.haslayer(TCP)}
    assert 1234 in ports

    for server in SERVERS:
        assert lab.current_args(server) == lab.default_args(server)
        assert lab.program_running(server)
    for client in CLIENTS:
        assert lab.program_running(client)
