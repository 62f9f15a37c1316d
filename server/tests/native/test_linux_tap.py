"""TAP device lifecycle against Linux: create, attach, persist, clear errors. Root only."""

import os
from collections.abc import Iterator

import pytest
from native_helpers import require_root_net, sh, unique

from seashard.net.native.devices import DeviceError, TapDevice


@pytest.fixture
def tap_name() -> Iterator[str]:
    require_root_net()
    name = unique("sst")
    try:
        yield name
    finally:
        sh("ip", "link", "del", name, check=False)


def flags(name: str) -> str:
    return sh("ip", "-br", "link", "show", name).stdout


def test_created_up_and_gone_with_the_last_queue(tap_name: str) -> None:
    first = TapDevice(tap_name, 0, 2)
    second = TapDevice(tap_name, 1, 2)
    assert first.created and not second.created
    assert "UP" in flags(tap_name).split()[-1]
    # Non-blocking: once the kernel's own IPv6 chatter on a fresh UP link (MLD, router
    # solicitations) is read, recv() returns None at once instead of waiting.
    for _ in range(16):
        frame = first.recv()
        if frame is None:
            break
        assert bytes(frame[12:14]) == b"\x86\xdd", f"unexpected frame {bytes(frame[:14]).hex()}"
    else:
        raise AssertionError("recv() kept returning frames on an idle TAP")
    first.close()
    assert os.path.exists(f"/sys/class/net/{tap_name}")
    second.close()
    assert not os.path.exists(f"/sys/class/net/{tap_name}")


def test_persistent_device_survives_and_is_attached_again(tap_name: str) -> None:
    TapDevice(tap_name, persist=True).close()
    assert os.path.exists(f"/sys/class/net/{tap_name}")
    again = TapDevice(tap_name)
    assert not again.created
    again.close()


def test_attaches_to_a_precreated_multiqueue_tap(tap_name: str) -> None:
    sh("ip", "tuntap", "add", "dev", tap_name, "mode", "tap", "multi_queue")
    queues = [TapDevice(tap_name, i, 2) for i in range(2)]
    assert not any(q.created for q in queues)
    for q in queues:
        q.close()


def test_single_queue_tap_gives_a_clear_error(tap_name: str) -> None:
    sh("ip", "tuntap", "add", "dev", tap_name, "mode", "tap")
    with pytest.raises(DeviceError) as exc:
        TapDevice(tap_name)
    assert str(exc.value) == (
        f"tap device {tap_name}: Invalid argument (does it exist as a TUN, or without multi_queue?)"
    )
    TapDevice(tap_name, multi_queue=False).close()
