"""Helpers shared by the native-stack tests (a uniquely named module, not conftest)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from seashard.net.native.devices import Device, MemoryDevice
from seashard.net.native.driver import Driver
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.wire.ipv4 import IPv4Packet
from seashard.wire.tcp import TcpFlags, TcpPacket

OUR_IP, OUR_MAC = "10.0.0.2", "02:00:00:00:00:02"
PEER_IP, PEER_MAC = "10.0.0.7", "02:00:00:00:00:07"
GW_IP, GW_MAC = "10.0.0.1", "02:00:00:00:00:01"


@dataclass
class Stack:
    """An Interface on a MemoryDevice, recording what reaches its TCP handler."""

    dev: MemoryDevice
    iface: Interface
    tcp: list[tuple[IPv4Packet, bytes, float]] = field(default_factory=list)

    def rx(self, frame: object, now: float = 0.0) -> list[bytes]:
        """Receive a frame (scapy packet or bytes); return the frames sent in response."""
        self.iface.receive(bytes(frame), now)  # type: ignore[call-overload]
        return self.dev.take_sent()


# -- Linux ---------------------------------------------------------------------------

_names = itertools.count()


def _has_net_admin() -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 12))  # CAP_NET_ADMIN
    return False


def require_root_net() -> None:
    if os.geteuid() != 0 or not _has_net_admin():
        pytest.skip("needs root with CAP_NET_ADMIN to create namespaces and devices")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (the ip command)")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=20)


def unique(prefix: str) -> str:
    """A name unique to this process and call, short enough for an interface (<= 15)."""
    return f"{prefix}{os.getpid() % 100000}x{next(_names)}"


# A ping for machines without iputils: N echo requests over a raw socket.
PY_PING = r"""
import os, socket, struct, sys, time
dst, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
def csum(b):
    n = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    n = (n & 0xFFFF) + (n >> 16); n = (n & 0xFFFF) + (n >> 16)
    return ~n & 0xFFFF
ok = 0
for seq in range(count):
    body = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, seq) + b"seashard-ping!!!"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (dst, 0))
    deadline = time.time() + 2
    while time.time() < deadline:
        try:
            data = s.recv(2048)
        except socket.timeout:
            break
        icmp = data[(data[0] & 15) * 4:]
        if icmp[0] == 0 and struct.unpack("!H", icmp[6:8])[0] == seq:
            ok += 1
            break
    time.sleep(0.1)
print(f"{ok}/{count} replies")
sys.exit(0 if ok == count else 1)
"""


def ping_command(netns: str, dst: str, count: int) -> list[str]:
    """``ping -c COUNT DST`` inside ``netns`` (a Python stand-in without iputils)."""
    exec_in = ["ip", "netns", "exec", netns]
    if shutil.which("ping"):
        return [*exec_in, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", dst]
    return [*exec_in, sys.executable, "-c", PY_PING, dst, str(count)]


# -- flows through real kernel queues ----------------------------------------------------

# The pause after connect(): the kernel ACKs our SYN-ACK inside our write() of it, before
# tun records which queue wrote the flow; data sent at once from the other CPU can still
# beat that record (in CI, 6 flows of 16 sent data and FIN to the old queue). What the
# queue tests look at is where the flow goes once the record is there.
FLOW_CLIENT = r"""
import socket, sys, time
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ports = []
for _ in range(n):
    s = socket.create_connection((dst, port), timeout=5)
    ports.append(s.getsockname()[1])
    time.sleep(0.02)
    s.sendall(b"hello")
    s.close()
print(" ".join(map(str, ports)))
"""


def tcp_responder(
    ifaces: list[Interface], queue: int, seen: dict[int, list[int]], cross: bool
) -> Callable[[IPv4Packet, bytes, float], None]:
    """A TCP handler that records which queue saw each client port, answers SYN with
    SYN-ACK and acknowledges data and FIN, so the kernel client runs to completion.

    Answers leave on the queue they came in on; with ``cross``, on the queue after the
    one the flow's SYN came in on (the same one for every answer of the flow).
    """

    def handler(ip: IPv4Packet, segment: bytes, now: float) -> None:
        seg = TcpPacket.parse(segment, ip.src, ip.dst, verify=not ifaces[queue].rx_csum_valid)
        queues = seen.setdefault(seg.src_port, [])
        queues.append(queue)
        if seg.flags & TcpFlags.RST:
            return
        if seg.flags & TcpFlags.SYN:
            out = TcpPacket(seg.dst_port, seg.src_port, 1000, seg.seq + 1, _SYNACK, 65535, mss=1400)
        else:
            fin = 1 if seg.flags & TcpFlags.FIN else 0
            ack = (seg.seq + len(seg.payload) + fin) & 0xFFFFFFFF
            if not seg.payload and not fin:
                return
            out = TcpPacket(seg.dst_port, seg.src_port, 1001, ack, TcpFlags.ACK, 65535)
        via = ifaces[(queues[0] + 1) % len(ifaces)] if cross else ifaces[queue]
        via.send_ipv4(ip.src, 6, out.build(ip.dst, ip.src), now)

    return handler


_SYNACK = TcpFlags.SYN | TcpFlags.ACK


async def run_flows(
    devices: list[Device],
    netns: str,
    server_ip: str,
    client_ip: str,
    *,
    flows: int = 16,
    cross_reply: bool = False,
) -> tuple[list[int], dict[int, list[int]]]:
    """Serve ``flows`` kernel TCP connections from ``netns`` with one Interface per queue.

    Returns the client ports and, per port, the queues its segments arrived on. With
    ``cross_reply`` a flow's answers are all written on the queue after its SYN's.
    """
    loop = asyncio.get_running_loop()
    seen: dict[int, list[int]] = {}
    config = InterfaceConfig(server_ip, "255.255.255.0", mac="02:53:00:00:00:01")
    ifaces: list[Interface] = []
    for dev in devices:
        ifaces.append(Interface(config, dev.send))
    for q, iface in enumerate(ifaces):
        others = [other for other in ifaces if other is not iface]
        # What the runtime does between shards: share ARP entries.
        iface.arp.on_learn = lambda ip, mac, others=others: [
            o.arp.learn(ip, mac, loop.time()) for o in others
        ]
        iface.tcp_handler = tcp_responder(ifaces, q, seen, cross_reply)
    drivers = [Driver(dev, iface, loop) for dev, iface in zip(devices, ifaces, strict=True)]
    for d in drivers:
        d.start()
    try:
        client = [sys.executable, "-c", FLOW_CLIENT, server_ip, "7777", str(flows)]
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, *client, stdout=PIPE, stderr=PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, err.decode()
        await asyncio.sleep(0.3)  # the last FINs
    finally:
        for d in drivers:
            d.stop()
    return [int(p) for p in out.split()], seen
