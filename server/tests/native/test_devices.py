"""Device tests that need no privileges: memory devices, checksum completion, errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from seashard.net.native.devices import (
    Device,
    DeviceError,
    MemoryDevice,
    PacketDevice,
    TapDevice,
    complete_checksum,
    memory_pair,
)
from seashard.wire.checksum import pseudo_header_sum

SERVER_DIR = str(Path(__file__).resolve().parents[2])


def test_memory_device() -> None:
    dev = MemoryDevice()
    assert isinstance(dev, Device)
    assert dev.fileno() is None and dev.recv() is None
    dev.inject(b"one")
    dev.inject(bytearray(b"two"))
    assert (dev.recv(), dev.recv(), dev.recv()) == (b"one", b"two", None)
    assert dev.send(b"out")
    assert dev.take_sent() == [b"out"] and dev.take_sent() == []
    dev.close()
    assert dev.closed


def test_memory_pair_is_a_cable() -> None:
    a, b = memory_pair()
    a.send(b"ping")
    b.send(b"pong")
    assert (b.recv(), a.recv()) == (b"ping", b"pong")


def partial(pkt: Ether, l4: type) -> bytes:
    """The frame as a CHECKSUM_PARTIAL skb shows it: only the pseudo-header sum filled in."""
    raw = bytearray(bytes(pkt))
    ip = pkt[IP]
    l4_len = ip.len - ip.ihl * 4
    offset = 14 + ip.ihl * 4 + (16 if l4 is TCP else 6)
    raw[offset : offset + 2] = pseudo_header_sum(ip.src, ip.dst, ip.proto, l4_len).to_bytes(
        2, "big"
    )
    return bytes(raw)


@pytest.mark.parametrize("l4", [TCP(sport=1, dport=2, flags="S"), UDP(sport=5, dport=6)])
def test_complete_checksum(l4: TCP | UDP) -> None:
    pkt = Ether() / IP(src="10.9.8.7", dst="10.1.2.3") / l4 / b"payload!"
    good = bytes(pkt)
    frame = partial(Ether(good), type(l4))
    assert frame != good
    assert complete_checksum(frame) == good
    assert complete_checksum(good) == good


def test_complete_checksum_leaves_other_frames_alone() -> None:
    for frame in (
        b"",
        bytes(Ether() / (b"x" * 40)),
        bytes(Ether(type=0x0800)) + b"\x45" + bytes(25),
    ):
        assert complete_checksum(frame) == frame


def test_tap_name_is_checked() -> None:
    with pytest.raises(ValueError):
        TapDevice("a-name-longer-than-15")


def test_packet_device_on_missing_interface() -> None:
    with pytest.raises(DeviceError) as exc:
        PacketDevice("nosuchdev0")
    assert str(exc.value).startswith("packet device nosuchdev0: ")
    assert "\n" not in str(exc.value)


UNPRIVILEGED_TAP = """
import sys
from seashard.net.native.devices import TapDevice, DeviceError
try:
    TapDevice("ssnoperm0")
except DeviceError as exc:
    print(exc)
    sys.exit(3)
"""


def test_tap_without_permission_gives_one_line_error() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the check without CAP_NET_ADMIN")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    result = subprocess.run(
        ["setpriv", "--bounding-set=-net_admin", sys.executable, "-c", UNPRIVILEGED_TAP],
        env={**os.environ, "PYTHONPATH": SERVER_DIR},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == (
        "tap device ssnoperm0: Operation not permitted (need CAP_NET_ADMIN and /dev/net/tun)"
    )
    assert not os.path.exists("/sys/class/net/ssnoperm0")
