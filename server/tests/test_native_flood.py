"""The native stack under attack, against Linux: `seashard serve --network-stack native -c 2`
on a multiqueue TAP in a test-made namespace, kernel clients in another, and a flood of
spoofed segments written onto the client's veth (seashard.tools.flood, AF_PACKET) while the
clients echo. Root and /dev/net/tun, like every Linux-peer suite; everything is removed on
teardown.

Each flood: 50,000 segments at 5,000/s (the issue's SYN flood). Throughout, 20 established
connections keep echoing byte-exact and a new connection opens every 0.25 s; right after
the flood a new connection is accepted at once (no SYN retransmission: under 1 s); and
each shard's RSS grows by less than RSS_GROWTH_MB.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seashard.tools.netlab import CLIENT_IP, SERVER_IP
from seashard.wire.ethernet import local_mac
from tests import serverproc
from tests.test_native_server import NetLab, _make_lab, _missing

pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

FLOOD_COUNT = 50_000
FLOOD_RATE = 5_000.0
# Each shard may hold 1024 half-open connections per listener, and cookies keep nothing:
# what a flood can add is bounded, well below this (measured: a few MiB).
RSS_GROWTH_MB = 64
PROBE_CONNECTIONS = 20


@pytest.fixture
def taplab(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield from _make_lab("tap", tmp_path)


def _client_iface(lab: NetLab) -> str:
    links = json.loads(subprocess.check_output(["ip", "-j", "-n", lab.cli, "link", "show"]))
    return next(link["ifname"] for link in links if link["ifname"] != "lo")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _in_cli(lab: NetLab, *args: str) -> list[str]:
    return ["ip", "netns", "exec", lab.cli, sys.executable, "-m", "seashard.tools.flood", *args]


def _popen(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=serverproc.env(),
        cwd=serverproc.SERVER_DIR,
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


def _connect_time(lab: NetLab) -> float:
    """One fresh connection from the client namespace, one echo: the connect time (s)."""
    code = (
        "import socket,time,sys\n"
        "t=time.monotonic()\n"
        f"s=socket.create_connection(('{SERVER_IP}',1234),timeout=10)\n"
        "d=time.monotonic()-t\n"
        "s.sendall(b'after the flood'); assert s.recv(100)==b'after the flood'\n"
        "print(d)\n"
    )
    out = subprocess.run(
        ["ip", "netns", "exec", lab.cli, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def _victim_flows(lab: NetLab, server: serverproc.Server) -> str:
    """SPORT:RCV_NXT:SND_UNA of the probe's established connections, for the data flood."""
    rows = json.loads(lab.admin(server, "/connections"))
    flows = [
        f"{r['remote'].rsplit(':', 1)[1]}:{r['rcv_nxt']}:{r['snd_una']}"
        for r in rows
        if r["state"] == "ESTABLISHED"
        and r["remote"].startswith(CLIENT_IP + ":")
        and r["local"].endswith(":1234")
    ]
    assert len(flows) >= PROBE_CONNECTIONS, rows
    return ",".join(flows)


@pytest.mark.parametrize("kind", ["syn", "ack", "data"])
def test_flood_keeps_serving_during_and_after(taplab: NetLab, serve, kind: str) -> None:  # type: ignore[no-untyped-def]
    server = taplab.serve(serve, "-c", "2", "--gw-ipv4-addr", CLIENT_IP)
    rss_before = {pid: _rss_kib(pid) for pid in server.pids}
    seconds = FLOOD_COUNT / FLOOD_RATE
    probe = _popen(
        _in_cli(
            taplab,
            "probe",
            SERVER_IP,
            "1234",
            "--connections",
            str(PROBE_CONNECTIONS),
            "--duration",
            str(seconds + 4),
        )
    )
    try:
        time.sleep(2.0)  # the probe's connections are up and echoing
        extra = ["--src-ip", CLIENT_IP, "--flows", _victim_flows(taplab, server)]
        mac = local_mac(socket.inet_aton(SERVER_IP))
        flood = _popen(
            _in_cli(
                taplab,
                "send",
                _client_iface(taplab),
                SERVER_IP,
                mac,
                "1234",
                "--kind",
                kind,
                "--count",
                str(FLOOD_COUNT),
                "--rate",
                str(FLOOD_RATE),
                "--max-seconds",
                str(seconds * 3),
                *(extra if kind == "data" else []),
            )
        )
        sent = _result(flood, timeout=seconds * 3 + 30)
        # Right after the flood: a new connection at once, not after a SYN retry (1 s).
        assert _connect_time(taplab) < 1.0
        report = _result(probe, timeout=seconds + 60)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.communicate()
    assert sent["sent"] == FLOOD_COUNT, sent
    # During the flood: every echo exact, no connection lost, every newcomer served.
    assert report["errors"] == [] and report["mismatched"] == 0, report
    assert report["echoes"] > 1000 and report["new_failed"] == 0, report
    assert report["new_ok"] >= 4 * seconds, report
    growth = {pid: (_rss_kib(pid) - rss_before[pid]) // 1024 for pid in server.pids}
    assert all(mb < RSS_GROWTH_MB for mb in growth.values()), growth
    m = taplab.metrics(server)
    print(f"\n{kind} flood {sent}: probe {report}; RSS growth MiB {growth}")  # for -s runs
    queue = m["seashard_tcp_syn_queue_live[1234]"]
    assert all(v <= 1024 for v in queue.values()), queue
    if kind == "syn":
        # The SYN queues filled, and cookies took over: every SYN that reached the stack
        # was answered, none dropped for want of room.
        syns = sum(m["seashard_tcp_syn_received_total"].values())
        cookies = sum(m["seashard_tcp_syncookies_sent_total"].values())
        assert syns >= FLOOD_COUNT * 0.8, syns
        assert all(v == 1024 for v in queue.values()), queue
        assert cookies >= syns - 2 * 1024 - report["new_ok"], (cookies, syns)
        drops = {k: v for k, v in m.items() if k.startswith("seashard_tcp_limit_drops_total")}
        assert all(sum(v.values()) == 0 for v in drops.values()), drops
    elif kind == "ack":
        assert sum(m["seashard_tcp_rst_sent_total"].values()) >= FLOOD_COUNT * 0.8
    else:
        # Every flood segment found its connection (and was refused by its window).
        assert sum(m.get("seashard_tcp_segments_no_connection_total", {}).values()) < 100
