import pytest
from scapy.layers.inet import ICMP

from seashard.wire import IcmpPacket, IcmpType, MalformedError


def test_echo_request_roundtrip_with_scapy() -> None:
    raw = bytes(ICMP(type=8, id=0x1234, seq=7) / b"ping data")
    pkt = IcmpPacket.parse(raw)
    assert (pkt.type, pkt.code, pkt.ident, pkt.seq, pkt.payload) == (8, 0, 0x1234, 7, b"ping data")
    reply = pkt.echo_reply().build()
    s = ICMP(reply)
    assert (s.type, s.code, s.id, s.seq, bytes(s.payload)) == (0, 0, 0x1234, 7, b"ping data")
    assert s.chksum == ICMP(bytes(ICMP(type=0, id=0x1234, seq=7) / b"ping data")).chksum


def test_odd_payload_checksum() -> None:
    raw = IcmpPacket(IcmpType.ECHO_REQUEST, 0, 1, 2, b"abc").build()
    assert raw == bytes(ICMP(type=8, id=1, seq=2) / b"abc")


@pytest.mark.parametrize("n", range(8))
def test_truncated(n: int) -> None:
    with pytest.raises(MalformedError) as exc:
        IcmpPacket.parse(bytes(ICMP())[:n])
    assert exc.value.reason == "truncated"


def test_cut_payload_fails_checksum() -> None:
    raw = bytes(ICMP(type=8) / b"0123456789")
    for n in range(8, len(raw)):
        with pytest.raises(MalformedError) as exc:
            IcmpPacket.parse(raw[:n])
        assert exc.value.reason == "bad_checksum"


def test_bad_checksum() -> None:
    with pytest.raises(MalformedError) as exc:
        IcmpPacket.parse(bytes(ICMP(chksum=0xBAD)))
    assert exc.value.reason == "bad_checksum"
