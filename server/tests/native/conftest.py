"""Fixtures for the native-stack tests.

Linux-facing fixtures create their own network namespace and veth devices and
remove them on teardown, pass or fail; they skip unless run as root with
/dev/net/tun and iproute2.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from native_helpers import GW_IP, OUR_IP, OUR_MAC, Stack, require_root_net, sh, unique

from seashard.net.native.devices import MemoryDevice
from seashard.net.native.ipv4 import Interface, InterfaceConfig


@pytest.fixture
def stack() -> Stack:
    dev = MemoryDevice()
    st = Stack(dev, None)  # type: ignore[arg-type]
    st.iface = Interface(
        InterfaceConfig(OUR_IP, "255.255.255.0", gateway=GW_IP, mac=OUR_MAC),
        dev.send,
        tcp_handler=lambda ip, seg, now: st.tcp.append((ip, seg, now)),
    )
    return st


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with lo up, deleted on teardown."""
    require_root_net()
    name = unique("sshtest")
    created = sh("ip", "netns", "add", name, check=False)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def veth(netns: str) -> Iterator[tuple[str, str]]:
    """A veth pair: (ours, in the root namespace, up, no address; theirs, in ``netns``)."""
    ours, theirs = unique("ssv"), unique("ssp")
    sh("ip", "link", "add", ours, "type", "veth", "peer", "name", theirs)
    try:
        sh("ip", "link", "set", theirs, "netns", netns)
        # No IPv6 on our end: keeps router solicitations out of the way.
        sh("sysctl", "-qw", f"net.ipv6.conf.{ours}.disable_ipv6=1", check=False)
        sh("ip", "link", "set", ours, "up")
        yield ours, theirs
    finally:
        sh("ip", "link", "del", ours, check=False)  # also removes the peer
