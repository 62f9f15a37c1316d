"""Against Linux: the kernel spreads TCP flows over TAP queues / fanout sockets and
keeps each flow on one of them. Runs in a test-made namespace; root only."""

import asyncio
from collections.abc import Iterator

import pytest
from native_helpers import require_root_net, run_flows, sh, unique

from seashard.net.native.devices import PacketDevice, TapDevice

SERVER_IP, CLIENT_IP = "10.213.0.2", "10.213.0.1"


@pytest.fixture
def tap_in_netns(netns: str) -> Iterator[tuple[list[TapDevice], str]]:
    """A 2-queue TAP opened here, then moved into ``netns`` as the kernel side's link."""
    require_root_net()
    name = unique("sst")
    queues = [TapDevice(name, 0, 2)]
    try:
        queues.append(TapDevice(name, 1, 2))
        assert queues[0].created and not queues[1].created
        sh("ip", "link", "set", name, "netns", netns)
        sh("ip", "-n", netns, "addr", "add", f"{CLIENT_IP}/24", "dev", name)
        sh("ip", "-n", netns, "link", "set", name, "up")
        yield queues, name
    finally:
        for q in queues:
            q.close()  # the last close removes the (non-persistent) device


@pytest.fixture
def fanout_pair(veth: tuple[str, str], netns: str) -> Iterator[list[PacketDevice]]:
    ours, theirs = veth
    sh("ip", "-n", netns, "addr", "add", f"{CLIENT_IP}/24", "dev", theirs)
    sh("ip", "-n", netns, "link", "set", theirs, "up")
    # The plain path (no PACKET_VNET_HDR): checksums_completed counts its work below.
    socks = [PacketDevice(ours, 0, 2, offload=False)]
    try:
        socks.append(PacketDevice(ours, 1, 2, offload=False))
        yield socks
    finally:
        for s in socks:
            s.close()


def check_spread(ports: list[int], seen: dict[int, list[int]]) -> None:
    assert len(ports) == 16 and set(ports) <= set(seen)
    for port in ports:
        assert len(set(seen[port])) == 1, f"flow from port {port} on queues {seen[port]}"
        assert len(seen[port]) >= 3  # SYN, ACK(+data), FIN at least
    used = {seen[port][0] for port in ports}
    assert used == {0, 1}, "16 flows all landed on one queue"


def test_tap_queues_split_flows(tap_in_netns: tuple[list[TapDevice], str], netns: str) -> None:
    queues, _ = tap_in_netns
    ports, seen = asyncio.run(run_flows(queues, netns, SERVER_IP, CLIENT_IP))
    check_spread(ports, seen)


def test_tap_flow_follows_the_queue_that_wrote_it(
    tap_in_netns: tuple[list[TapDevice], str], netns: str
) -> None:
    """tun's automq remembers the queue a flow was last written on and steers the flow's
    later frames there: answering every segment on the other queue moves the flow.

    Seen here: SYN and the handshake's ACK on the hashed queue (the kernel sends that
    ACK while our SYN-ACK write is still in progress, before tun records the queue),
    data and FIN on the queue we wrote on.
    """
    queues, _ = tap_in_netns
    ports, seen = asyncio.run(run_flows(queues, netns, SERVER_IP, CLIENT_IP, cross_reply=True))
    moved_at_once = moved_in_the_end = 0
    for port in ports:
        syn_queue, later = seen[port][0], seen[port][2:]  # after SYN and the handshake's ACK
        assert later, f"port {port}: {seen[port]}"
        moved_in_the_end += later[-1] == 1 - syn_queue
        moved_at_once += all(q == 1 - syn_queue for q in later)
    # A client quicker than our write() (another CPU) may still send data, even its last
    # segment, to the old queue (seen in CI: one flow of 16 never moved); most flows move.
    assert moved_in_the_end >= len(ports) * 3 // 4, seen
    assert moved_at_once >= len(ports) * 3 // 4, seen


def test_packet_fanout_splits_flows(fanout_pair: list[PacketDevice], netns: str) -> None:
    ports, seen = asyncio.run(run_flows(fanout_pair, netns, SERVER_IP, CLIENT_IP))
    check_spread(ports, seen)
    # The kernel's TCP over veth leaves checksums to offload (CHECKSUM_PARTIAL): every
    # segment needed completing before our checksum check could pass.
    assert sum(s.checksums_completed for s in fanout_pair) >= 16 * 3


def test_packet_fanout_ignores_replies_queue(fanout_pair: list[PacketDevice], netns: str) -> None:
    """Unlike TAP, fanout steers by the flow hash only: where we write changes nothing."""
    ports, seen = asyncio.run(run_flows(fanout_pair, netns, SERVER_IP, CLIENT_IP, cross_reply=True))
    check_spread(ports, seen)
