"""Two test-made network namespaces for running the native stack against Linux.

``srv`` holds the device the native stack attaches to; ``cli`` holds a kernel
veth with CLIENT_IP, the Linux peer. Kinds:

- ``tap``: a multiqueue TAP ``tap0`` bridged (``br0``) with the veth to the client;
  ``br0`` also gets KERNEL_SERVER_IP, so a posix server in ``srv`` is reachable
  over the same path (for benchmarks).
- ``packet``: the native stack takes the veth end itself through AF_PACKET.
- ``tap-lossy``: as ``tap``, with seashard.tools.impair relaying frames between
  the bridge and the veth (5 % loss, 25 % reordering) — netem is not in every
  kernel.

The kernel's own offloads are off on every veth (whole, checksummed frames)
unless ``offloads``: then the client's TCP sends and takes TSO/GSO frames of up
to 64 KB, so the native stack's device offloads (GRO in, TSO out) really come
into play. The relay of ``tap-lossy`` reads and writes plain frames, so its
veths keep theirs off; there GRO on the bridge side of the relay (``vr0``)
merges what it relays.

Root only. Everything is removed on exit, pass or fail.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SERVER_IP = "192.168.77.2"
CLIENT_IP = "192.168.77.1"
KERNEL_SERVER_IP = "192.168.77.3"
NETMASK = "255.255.255.0"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check)


def no_offloads(ns: str, dev: str) -> None:
    """Whole, checksummed frames for a userspace stack: no TSO/GSO/GRO, no tx csum offload."""
    sh(
        "ip",
        "netns",
        "exec",
        ns,
        "ethtool",
        "-K",
        dev,
        "tx",
        "off",
        "tso",
        "off",
        "gso",
        "off",
        "gro",
        "off",
        check=False,
    )


@dataclass
class Topology:
    kind: str
    srv: str
    cli: str
    device: list[str]  # `seashard serve` options naming the device
    relay: subprocess.Popen[str] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def exec_in(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


@contextmanager
def topology(
    kind: str = "tap",
    env: dict[str, str] | None = None,
    loss: float = 0.05,
    reorder: float = 0.25,
    *,
    offloads: bool = False,
) -> Iterator[Topology]:
    if kind not in ("tap", "packet", "tap-lossy"):
        raise ValueError(f"unknown topology {kind!r}")
    tag = uuid.uuid4().hex[:6]
    srv, cli = f"ss-srv-{tag}", f"ss-cli-{tag}"
    vsrv, vcli = f"vs{tag}", f"vc{tag}"
    topo = Topology(kind, srv, cli, [], env=dict(env or {}))
    try:
        for ns in (srv, cli):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", vsrv, "type", "veth", "peer", "name", vcli)
        sh("ip", "link", "set", vsrv, "netns", srv)
        sh("ip", "link", "set", vcli, "netns", cli)
        sh("ip", "-n", cli, "addr", "add", f"{CLIENT_IP}/24", "dev", vcli)
        sh("ip", "-n", cli, "link", "set", vcli, "up")
        if not offloads or kind == "tap-lossy":
            no_offloads(srv, vsrv)
            no_offloads(cli, vcli)
        if kind == "packet":
            sh("ip", "-n", srv, "link", "set", vsrv, "up")
            topo.device = ["--packet-device", vsrv]
        else:
            sh("ip", "-n", srv, "link", "add", "br0", "type", "bridge")
            # Docker loads br_netfilter, which sends every bridged frame through
            # iptables (per namespace, on by default). This namespace has no rules, and
            # of the servers' own CPU the hooks cost only the native stack's sends, which
            # enter the bridge from a port (the posix server's leave from br0 itself):
            # about 7 % of a native shard's perf samples in bulk echo.
            sh(
                *topo.exec_in(srv),
                "sysctl",
                "-q",
                "-e",
                "-w",
                "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0",
                check=False,
            )
            sh("ip", "-n", srv, "tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
            bridged = vsrv
            if kind == "tap-lossy":
                sh("ip", "-n", srv, "link", "add", "vr0", "type", "veth", "peer", "name", "vr1")
                for dev in ("vr0", "vr1"):
                    no_offloads(srv, dev)
                    sh("ip", "-n", srv, "link", "set", dev, "up")
                if offloads:  # GRO (veth NAPI) merges what the relay sends towards the TAP
                    sh(*topo.exec_in(srv), "ethtool", "-K", "vr0", "gro", "on", check=False)
                bridged = "vr0"
            for dev in ("tap0", bridged):
                sh("ip", "-n", srv, "link", "set", dev, "master", "br0")
            for dev in ("br0", "tap0", bridged, vsrv):
                sh("ip", "-n", srv, "link", "set", dev, "up")
            sh("ip", "-n", srv, "addr", "add", f"{KERNEL_SERVER_IP}/24", "dev", "br0")
            if kind == "tap-lossy":
                topo.relay = subprocess.Popen(
                    [
                        *topo.exec_in(srv),
                        sys.executable,
                        "-m",
                        "seashard.tools.impair",
                        "vr1",
                        vsrv,
                        "--loss",
                        str(loss),
                        "--reorder",
                        str(reorder),
                        "--seed",
                        "5",
                        "--duration",
                        "900",
                    ],
                    env=topo.env or None,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            topo.device = ["--tap-device", "tap0"]
        yield topo
    finally:
        if topo.relay is not None and topo.relay.poll() is None:
            topo.relay.terminate()
            try:
                topo.relay.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                topo.relay.kill()
        for ns in (srv, cli):
            sh("ip", "netns", "del", ns, check=False)
