import pytest
from scapy.layers.l2 import ARP

from seashard.wire import ArpOp, ArpPacket, MalformedError


def test_build_dissected_by_scapy() -> None:
    pkt = ArpPacket(ArpOp.REQUEST, "02:00:00:00:00:01", "10.0.0.1", target_ip="10.0.0.2")
    s = ARP(pkt.build())
    assert (s.hwtype, s.ptype, s.hwlen, s.plen, s.op) == (1, 0x0800, 6, 4, 1)
    assert (s.hwsrc, s.psrc, s.hwdst, s.pdst) == (
        "02:00:00:00:00:01",
        "10.0.0.1",
        "00:00:00:00:00:00",
        "10.0.0.2",
    )


def test_parse_scapy_reply_with_padding() -> None:
    raw = bytes(
        ARP(
            op=2,
            hwsrc="aa:bb:cc:dd:ee:ff",
            psrc="1.2.3.4",
            hwdst="02:00:00:00:00:01",
            pdst="5.6.7.8",
        )
    )
    pkt = ArpPacket.parse(raw + bytes(18))
    assert pkt == ArpPacket(2, "aa:bb:cc:dd:ee:ff", "1.2.3.4", "02:00:00:00:00:01", "5.6.7.8")
    assert pkt.build() == raw


@pytest.mark.parametrize("n", range(28))
def test_truncated(n: int) -> None:
    raw = bytes(ARP())
    with pytest.raises(MalformedError) as exc:
        ArpPacket.parse(raw[:n])
    assert exc.value.reason == "truncated"


@pytest.mark.parametrize("fields", [{"hwtype": 6}, {"ptype": 0x86DD}, {"hwlen": 8}, {"plen": 16}])
def test_unsupported_format(fields: dict[str, int]) -> None:
    raw = bytes(ARP(**fields))[:28].ljust(28, b"\x00")
    with pytest.raises(MalformedError) as exc:
        ArpPacket.parse(raw)
    assert exc.value.reason == "unsupported_format"
