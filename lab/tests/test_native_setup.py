"""images/lab/bin/lab-native-setup with NATIVE_ADDRESS=uplink (the swarm and
Kubernetes native server), run in a network namespace of its own with a veth
"eth0" as docker or a CNI would give it: the native stack must get the
uplink's own address and MAC, the kernel must keep neither, and a second run
in the same namespace (a restarted container of a pod) must say the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "images" / "lab" / "bin" / "lab-native-setup"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def namespace():
    tag = uuid.uuid4().hex[:8]
    ns, peer_ns = f"ss-nat-{tag}", f"ss-natp-{tag}"
    sh("ip", "netns", "add", ns)
    sh("ip", "netns", "add", peer_ns)
    try:
        # the task's end is called eth0, as in a container
        sh("ip", "link", "add", f"e{tag}", "type", "veth", "peer", "name", f"p{tag}")
        sh("ip", "link", "set", f"e{tag}", "netns", ns)
        sh("ip", "link", "set", f"p{tag}", "netns", peer_ns)
        sh("ip", "-n", ns, "link", "set", f"e{tag}", "name", "eth0")
        sh("ip", "-n", ns, "addr", "add", "10.231.250.7/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "del", peer_ns, check=False)


def setup_in(ns: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", ns, str(SETUP)],
        env=dict(os.environ, NATIVE_DEVICE="packet", NATIVE_ADDRESS="uplink"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def mac(ns: str, dev: str) -> str:
    return sh("ip", "netns", "exec", ns, "cat", f"/sys/class/net/{dev}/address").stdout.strip()


def test_the_native_stack_takes_the_uplinks_address_and_mac_and_keeps_them(namespace):
    task_mac = mac(namespace, "eth0")
    first = setup_in(namespace)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == [
        "--packet-device",
        "vnat0",
        "--host-ipv4-addr",
        "10.231.250.7",
        "--netmask-ipv4-addr",
        "255.255.255.0",
        "--hw-addr",
        task_mac,
    ]
    # the kernel keeps no address on the lab (it would answer ARP and RST the stack's flows)
    addrs = sh("ip", "-n", namespace, "-4", "-o", "addr", "show", "scope", "global").stdout
    assert addrs.strip() == "", addrs
    # frames for the task's MAC reach vnat0 through br0, not the kernel
    assert mac(namespace, "vnat0") == task_mac
    assert mac(namespace, "eth0") != task_mac and mac(namespace, "br0") != task_mac
    links = sh("ip", "-n", namespace, "-o", "link", "show", "master", "br0").stdout
    assert {"eth0", "vbr0"} <= {
        line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
    }

    again = setup_in(namespace)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "taken over by an earlier run" in again.stderr


def test_uplink_mode_needs_the_packet_device(namespace):
    res = subprocess.run(
        ["ip", "netns", "exec", namespace, str(SETUP)],
        env=dict(os.environ, NATIVE_DEVICE="tap", NATIVE_ADDRESS="uplink"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1 and res.stdout == ""
    assert (
        res.stderr.strip() == "lab-native-setup: NATIVE_ADDRESS=uplink needs NATIVE_DEVICE=packet"
    )
