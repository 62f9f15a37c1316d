"""Against Linux: the kernel in a test-made namespace pings us and resolves us with
ARP, and we resolve it, over a veth (AF_PACKET) or a TAP. Root only."""

import asyncio
import json
import shutil
from collections.abc import Iterator

import pytest
from native_helpers import ping_command, require_root_net, sh, unique

from seashard.net.native.devices import Device, PacketDevice, TapDevice
from seashard.net.native.driver import Driver
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.wire.icmp import IcmpPacket, IcmpType

OUR_IP, KERNEL_IP = "10.214.0.2", "10.214.0.1"


@pytest.fixture(params=["packet", "tap"])
def link(request: pytest.FixtureRequest, netns: str) -> Iterator[tuple[Device, str]]:
    """Our device, and the name of the kernel side's interface inside ``netns``."""
    require_root_net()
    if request.param == "tap":
        name = unique("sst")
        tap = TapDevice(name)
        try:
            sh("ip", "link", "set", name, "netns", netns)
            sh("ip", "-n", netns, "addr", "add", f"{KERNEL_IP}/24", "dev", name)
            sh("ip", "-n", netns, "link", "set", name, "up")
            yield tap, name
        finally:
            tap.close()
        return
    ours, theirs = unique("ssv"), unique("ssp")
    sh("ip", "link", "add", ours, "type", "veth", "peer", "name", theirs)
    try:
        sh("ip", "link", "set", theirs, "netns", netns)
        sh("sysctl", "-qw", f"net.ipv6.conf.{ours}.disable_ipv6=1", check=False)
        sh("ip", "link", "set", ours, "up")
        sh("ip", "-n", netns, "addr", "add", f"{KERNEL_IP}/24", "dev", theirs)
        sh("ip", "-n", netns, "link", "set", theirs, "up")
        dev = PacketDevice(ours)
        try:
            yield dev, theirs
        finally:
            dev.close()
    finally:
        sh("ip", "link", "del", ours, check=False)


async def exec_(*cmd: str, timeout: float = 20) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


def arping_command(netns: str, ifname: str, dst: str) -> list[str] | None:
    path = shutil.which("arping")
    if path is None:
        return None
    flavour = sh(path, "--help", check=False)
    iface_flag = "-i" if "Habets" in flavour.stdout + flavour.stderr else "-I"
    return ["ip", "netns", "exec", netns, path, "-c", "1", "-w", "5", iface_flag, ifname, dst]


def kernel_neighbour(netns: str, ifname: str, ip: str) -> dict[str, object]:
    out = sh("ip", "-j", "-n", netns, "neigh", "show", ip, "dev", ifname).stdout
    entries = json.loads(out or "[]")
    return entries[0] if entries else {}


def test_kernel_pings_and_resolves_us(link: tuple[Device, str], netns: str) -> None:
    dev, kernel_if = link
    kernel_mac = json.loads(sh("ip", "-j", "-n", netns, "link", "show", kernel_if).stdout)[0][
        "address"
    ]

    async def main() -> Interface:
        iface = Interface(InterfaceConfig(OUR_IP, "255.255.255.0"), dev.send)
        driver = Driver(dev, iface)
        driver.start()
        try:
            rc, out = await exec_(*ping_command(netns, OUR_IP, 3))
            assert rc == 0, out
            assert kernel_neighbour(netns, kernel_if, OUR_IP).get("lladdr") == iface.mac

            arping = arping_command(netns, kernel_if, OUR_IP)
            if arping is not None:
                rc, out = await exec_(*arping)
                assert rc == 0, out
                assert iface.mac in out.lower(), out

            # Our side resolves the kernel: an echo request of ours to an address we
            # have not heard from yet.
            iface.arp.forget(KERNEL_IP)  # learned from the kernel's requests
            request = IcmpPacket(IcmpType.ECHO_REQUEST, 0, 7, 1, b"from seashard").build()
            iface.send_ipv4(KERNEL_IP, 1, request, driver.now())
            for _ in range(50):
                if iface.drops["icmp_unsupported_type"]:  # the kernel's echo reply
                    break
                await asyncio.sleep(0.05)
        finally:
            driver.stop()
        return iface

    iface = asyncio.run(asyncio.wait_for(main(), 60))
    assert iface.counters["icmp_echo_replies"] >= 3
    assert iface.arp.lookup(KERNEL_IP, 0.0) == kernel_mac
    assert iface.counters["arp_replies_received"] >= 1
    assert iface.drops["icmp_unsupported_type"] == 1
    c = iface.counters
    assert c["frames_received"] == c["frames_accepted"] + c["frames_dropped"]
