"""virtio-net offload negotiation against Linux: what a TAP and an AF_PACKET socket accept,
and the plain path when the kernel refuses (simulated). Root only."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from native_helpers import require_root_net, sh, unique

from seashard.net.native import devices
from seashard.net.native.devices import (
    ALL_OFFLOADS,
    CSUM,
    NO_OFFLOADS,
    TSO4,
    PacketDevice,
    TapDevice,
)


@pytest.fixture
def tap_name() -> Iterator[str]:
    require_root_net()
    name = unique("sso")
    try:
        yield name
    finally:
        sh("ip", "link", "del", name, check=False)


@pytest.fixture
def veth_end() -> Iterator[str]:
    require_root_net()
    ours, theirs = unique("ssv"), unique("ssp")
    sh("ip", "link", "add", ours, "type", "veth", "peer", "name", theirs)
    try:
        sh("ip", "link", "set", ours, "up")
        yield ours
    finally:
        sh("ip", "link", "del", ours, check=False)


def kernel_feature(name: str, feature: str) -> str:
    """``on``/``off`` from ``ethtool -k`` (e.g. tcp-segmentation-offload)."""
    for line in sh("ethtool", "-k", name).stdout.splitlines():
        if line.strip().startswith(f"{feature}:"):
            return line.split(":")[1].split()[0]
    raise AssertionError(f"{feature} not in ethtool -k {name}")


def refuse(monkeypatch: pytest.MonkeyPatch, request: int, when: int | None = None) -> None:
    """Make the kernel refuse one TUNSET* ioctl (``when``: only with that value)."""
    real = devices._tun_ioctl

    def fake(fd: int, req: int, value: int) -> None:
        if req == request and (when is None or value == when):
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, req, value)

    monkeypatch.setattr(devices, "_tun_ioctl", fake)


def test_tap_queues_negotiate_csum_tso4_gro(tap_name: str) -> None:
    queues = [TapDevice(tap_name, i, 2) for i in range(2)]
    try:
        assert [q.offloads for q in queues] == [ALL_OFFLOADS, ALL_OFFLOADS]
        # The TAP now tells the kernel it takes TSO frames and partial checksums.
        assert kernel_feature(tap_name, "tcp-segmentation-offload") == "on"
        assert kernel_feature(tap_name, "tx-checksumming") == "on"
    finally:
        for q in queues:
            q.close()


def test_tap_without_offload_is_plain_even_after_an_offloading_user(tap_name: str) -> None:
    TapDevice(tap_name, persist=True).close()  # a persistent TAP left with offloads on
    assert kernel_feature(tap_name, "tcp-segmentation-offload") == "on"
    plain = TapDevice(tap_name, offload=False)
    try:
        assert plain.offloads == NO_OFFLOADS and not plain._vnet
        # TSO would hand us 64 KB frames without a header to say so: switched off.
        assert kernel_feature(tap_name, "tcp-segmentation-offload") == "off"
    finally:
        plain.close()


def test_tap_falls_back_to_plain_when_the_header_size_is_refused(
    tap_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, devices.TUNSETVNETHDRSZ)
    tap = TapDevice(tap_name)
    try:
        assert tap.offloads == NO_OFFLOADS and not tap._vnet
        assert tap.send(b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28))  # plain write
    finally:
        tap.close()


def test_tap_keeps_its_transmit_offloads_when_tunsetoffload_is_refused(
    tap_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, devices.TUNSETOFFLOAD, when=devices.TUN_F_CSUM | devices.TUN_F_TSO4)
    tap = TapDevice(tap_name)
    try:
        # The header still goes both ways: we may send TSO frames, the kernel sends plain.
        assert tap.offloads == frozenset((CSUM, TSO4)) and tap._vnet
        assert kernel_feature(tap_name, "tcp-segmentation-offload") == "off"
    finally:
        tap.close()


def test_packet_socket_negotiates_vnet_header(veth_end: str) -> None:
    dev = PacketDevice(veth_end)
    plain = PacketDevice(veth_end, fanout_group=7, offload=False)
    try:
        assert dev.offloads == ALL_OFFLOADS and dev._vnet
        assert plain.offloads == NO_OFFLOADS and not plain._vnet
    finally:
        dev.close()
        plain.close()


def test_packet_socket_falls_back_when_vnet_header_is_refused(
    veth_end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(sock: object, option: int, value: int) -> None:
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    monkeypatch.setattr(devices, "_packet_setsockopt", fake)
    dev = PacketDevice(veth_end)
    try:
        assert dev.offloads == NO_OFFLOADS and not dev._vnet
    finally:
        dev.close()
