import pytest
from scapy.layers.l2 import Ether

from seashard.wire import MalformedError
from seashard.wire.ethernet import (
    BROADCAST_MAC,
    ETH_P_IPV4,
    EthernetFrame,
    is_multicast_mac,
    local_mac,
    mac_to_bytes,
    mac_to_str,
)


def test_build_dissected_by_scapy() -> None:
    frame = EthernetFrame("02:00:00:00:00:01", "AA-BB-CC-DD-EE-FF", ETH_P_IPV4, b"payload")
    s = Ether(frame.build())
    assert (s.dst, s.src, s.type) == ("02:00:00:00:00:01", "aa:bb:cc:dd:ee:ff", 0x0800)
    assert bytes(s.payload) == b"payload"


def test_parse_scapy_frame() -> None:
    raw = bytes(Ether(dst=BROADCAST_MAC, src="02:53:0a:00:00:02", type=0x0806) / (b"x" * 3))
    frame = EthernetFrame.parse(raw)
    assert frame == EthernetFrame(BROADCAST_MAC, "02:53:0a:00:00:02", 0x0806, b"xxx")
    assert frame.build() == raw


@pytest.mark.parametrize("n", range(14))
def test_truncated(n: int) -> None:
    with pytest.raises(MalformedError) as exc:
        EthernetFrame.parse(bytes(n))
    assert exc.value.reason == "truncated"


def test_mac_helpers() -> None:
    assert mac_to_bytes("02:00:00:00:00:0A") == b"\x02\x00\x00\x00\x00\x0a"
    assert mac_to_bytes(b"\x01" * 6) == b"\x01" * 6
    assert mac_to_str(b"\xaa\xbb\xcc\xdd\xee\xff") == "aa:bb:cc:dd:ee:ff"
    assert is_multicast_mac(BROADCAST_MAC) and is_multicast_mac("01:00:5e:00:00:01")
    assert not is_multicast_mac("02:00:00:00:00:01")
    mac = local_mac(bytes([10, 0, 0, 2]))
    assert mac == "02:53:0a:00:00:02"
    assert mac_to_bytes(mac)[0] & 0x03 == 0x02  # locally administered, unicast
    for bad in ("02:00:00:00:00", "zz:00:00:00:00:00", b"\x00" * 5):
        with pytest.raises(ValueError):
            mac_to_bytes(bad)
