"""The native stack against Linux: `seashard serve --network-stack native` in one test-made
network namespace, on a multiqueue TAP (bridged) or a veth via AF_PACKET, and kernel-socket
clients in another namespace. Everything is created per test and removed on teardown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seashard.tools.netlab import SERVER_IP, sh
from seashard.tools.netlab import topology as netlab_topology
from tests import serverproc

CANNED = "Seastar is the future!\n"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, TAP devices)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@dataclass
class NetLab:
    srv: str  # namespace the native server runs in
    cli: str  # namespace of the kernel-socket clients
    device: list[str]  # the `seashard serve` device options
    state_dir: Path
    relay: subprocess.Popen[str] | None = None  # the lossy link, if any

    def client(self, *args: str, timeout: float = 120) -> dict:
        out = subprocess.run(
            ["ip", "netns", "exec", self.cli, sys.executable, "-m", "tests.netclient", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=serverproc.env(),
            cwd=serverproc.SERVER_DIR,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def admin(self, server: serverproc.Server, path: str) -> str:
        code = (
            "import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{server.admin_port}"
            f"{path}', timeout=10).read().decode())"
        )
        out = sh("ip", "netns", "exec", self.srv, sys.executable, "-c", code)
        return out.stdout

    def metrics(self, server: serverproc.Server) -> dict[str, dict[str, float]]:
        """{metric name (with labels but shard): {shard: value}}."""
        result: dict[str, dict[str, float]] = {}
        for line in self.admin(server, "/metrics").splitlines():
            if line.startswith("#") or "{" not in line:
                continue
            name, rest = line.split("{", 1)
            labels, value = rest.rsplit("} ", 1)
            parts = dict(p.split("=", 1) for p in labels.split('",') if "=" in p)
            shard = parts.pop("shard").strip('"')
            key = name + "".join(
                f"[{v.strip(chr(34))}]" for v in parts.values() if name != "seashard_shard_info"
            )
            result.setdefault(key, {})[shard] = float(value)
        return result

    def serve(self, start: Callable[..., serverproc.Server], *args: str, **kw) -> serverproc.Server:
        """The tutorial's ports: the native stack is alone on its address."""
        server = start(
            "--network-stack",
            "native",
            *self.device,
            "--host-ipv4-addr",
            SERVER_IP,
            "--netmask-ipv4-addr",
            "255.255.255.0",
            "--state-dir",
            str(self.state_dir),
            "--echo-port",
            "1234",
            "--canned-port",
            "1235",
            "--accept-logger-port",
            "1236",
            *args,
            prefix=("ip", "netns", "exec", self.srv),
            **kw,
        )
        server.ports = {"echo": 1234, "canned": 1235, "accept-logger": 1236}
        return server


def _make_lab(kind: str, tmp_path: Path) -> Iterator[NetLab]:
    with netlab_topology(kind, env=serverproc.env()) as topo:
        yield NetLab(topo.srv, topo.cli, topo.device, tmp_path / "state", topo.relay)


@pytest.fixture(params=["tap", "packet"])
def netlab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NetLab]:
    yield from _make_lab(request.param, tmp_path)


@pytest.fixture
def taplab(tmp_path: Path) -> Iterator[NetLab]:
    yield from _make_lab("tap", tmp_path)


def _owners(lab: NetLab, server: serverproc.Server) -> dict[str, list[int]]:
    table = json.loads(lab.admin(server, "/connections"))
    owners: dict[str, list[int]] = {}
    for row in table:
        owners.setdefault(row["remote"], []).append(row["shard"])
    return owners


def test_echo_300_connections_exact_and_each_flow_on_one_shard(netlab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    server = netlab.serve(serve, "-c", "2")
    result = netlab.client("echo", SERVER_IP, "1234", "300", "30", "20000", "7")
    assert result == {"exact": 300, "mismatched": 0, "errors": []}
    m = netlab.metrics(server)
    per_shard = m["seashard_connections_total"]
    assert sum(per_shard.values()) == 300 and all(v > 0 for v in per_shard.values()), per_shard
    # Every segment of every flow reached the shard that owned it: nothing had to be
    # forwarded, and no segment arrived for a connection its shard did not know.
    assert sum(m.get("seashard_frames_forwarded_total", {}).values()) == 0
    assert sum(m.get("seashard_tcp_segments_no_connection_total", {}).values()) == 0
    assert sum(m.get("seashard_tcp_rst_sent_total", {}).values()) == 0
    # Each shard read its frames in batches: every counted wakeup delivered some.
    batches, frames = m["seashard_device_batches_total"], m["seashard_frames_received_total"]
    assert all(0 < batches[s] <= frames[s] for s in frames), (batches, frames)
    # The client's ARP request reached one shard; what it learned was shared, so no
    # shard had to ask for the client's MAC itself.
    assert all(v >= 1 for v in m["seashard_arp_cache_entries"].values()), m
    assert sum(m.get("seashard_arp_requests_sent_total", {}).values()) == 0


def test_live_connections_each_owned_by_one_shard(taplab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    server = taplab.serve(serve, "-c", "2", services=("echo",))
    code = (
        "import socket,sys,time\n"
        f"s=[socket.create_connection(('{SERVER_IP}',1234),timeout=10) for _ in range(60)]\n"
        "for i,c in enumerate(s):\n c.sendall(b'x%d'%i); assert c.recv(10)==b'x%d'%i\n"
        "print('ready',flush=True); sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", taplab.cli, sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        owners = _owners(taplab, server)
        assert len(owners) == 60
        assert all(len(shards) == 1 for shards in owners.values())
        assert {s[0] for s in owners.values()} == {0, 1}
    finally:
        proc.communicate("done\n", timeout=30)


def test_ping_and_closed_port(netlab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    server = netlab.serve(serve, "-c", "2")
    ping = sh(
        "ip",
        "netns",
        "exec",
        netlab.cli,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        SERVER_IP,
        check=False,
    )
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    assert netlab.client("refused", SERVER_IP, "9999") == {"refused": True}
    assert netlab.client("canned", SERVER_IP, "1235", "5") == {"replies": [CANNED]}
    assert sum(netlab.metrics(server)["seashard_tcp_rst_sent_total"].values()) >= 1


@pytest.fixture
def lossylab(tmp_path: Path) -> Iterator[NetLab]:
    yield from _make_lab("tap-lossy", tmp_path)


def test_echo_exact_under_loss_and_reordering(lossylab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    server = lossylab.serve(serve, "-c", "2", services=("echo",))
    result = lossylab.client("echo", SERVER_IP, "1234", "40", "20", "60000", "11", timeout=300)
    assert result == {"exact": 40, "mismatched": 0, "errors": []}
    assert sum(lossylab.metrics(server)["seashard_tcp_retransmits_total"].values()) > 0
    assert lossylab.relay is not None
    lossylab.relay.terminate()
    _, err = lossylab.relay.communicate(timeout=10)
    assert "dropped" in err and "reordered" in err, err


def test_time_wait_restart_rule(taplab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    first = taplab.serve(serve, "-c", "2", services=("canned",))
    assert taplab.client("canned", SERVER_IP, "1235", "10") == {"replies": [CANNED]}
    tw = taplab.metrics(first)["seashard_connections_time_wait"]
    assert sum(tw.values()) == 10, tw
    assert first.stop() == 0

    failed = taplab.serve(serve, "-c", "2", services=("canned",), ready=False)
    assert failed.proc.wait(30) == 1
    assert failed.wait_for_output("bind: Address already in use")

    second = taplab.serve(serve, "-c", "2", "--reuse-address", services=("canned",))
    assert taplab.client("canned", SERVER_IP, "1235", "3") == {"replies": [CANNED]}
    table = json.loads(taplab.admin(second, "/connections"))
    assert sum(1 for row in table if row.get("previous_run")) == 10


def test_shard0_only_listener_resets_and_logs(taplab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    server = taplab.serve(serve, "-c", "2", "--shard0-only", services=("canned",))
    refused = sum(taplab.client("refused", SERVER_IP, "1235")["refused"] for _ in range(16))
    assert 0 < refused < 16
    assert server.wait_for_output("shard 1: no listener on port 1235 on this shard: reset")


def test_software_rss_with_one_queue_for_two_shards(taplab: NetLab, serve) -> None:  # type: ignore[no-untyped-def]
    server = taplab.serve(serve, "-c", "2", "--device-queues", "1", services=("echo",))
    result = taplab.client("echo", SERVER_IP, "1234", "60", "20", "5000", "3")
    assert result == {"exact": 60, "mismatched": 0, "errors": []}
    m = taplab.metrics(server)
    assert all(v > 0 for v in m["seashard_connections_total"].values())
    assert m["seashard_frames_forwarded_total"]["0"] > 0
    assert m["seashard_frames_proxied_total"]["1"] > 0
