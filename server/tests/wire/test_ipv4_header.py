import pytest
from scapy.layers.inet import IP, IPOption_NOP, IPOption_RR

from seashard.wire import IPv4Packet, MalformedError


def test_build_dissected_by_scapy() -> None:
    pkt = IPv4Packet(
        "10.0.0.1", "192.168.1.2", 6, b"abcdef", ttl=17, ident=0xBEEF, tos=0x10, dont_fragment=True
    )
    raw = pkt.build()
    s = IP(raw)
    fields = (s.version, s.ihl, s.len, s.id, s.ttl, s.proto, s.tos)
    assert fields == (4, 5, 26, 0xBEEF, 17, 6, 0x10)
    assert (s.src, s.dst, str(s.flags), s.frag) == ("10.0.0.1", "192.168.1.2", "DF", 0)
    assert bytes(s.payload) == b"abcdef"
    assert pkt.total_length == 26 and pkt.header_length == 20


def test_checksum_matches_scapy() -> None:
    for i in range(50):
        pkt = IPv4Packet(f"172.16.0.{i}", "8.8.8.8", 1, bytes(i), ttl=i + 1, ident=i * 977)
        ours = IP(pkt.build()).chksum
        scapy_pkt = IP(src=pkt.src, dst=pkt.dst, proto=1, ttl=i + 1, id=i * 977, flags="DF")
        theirs = IP(bytes(scapy_pkt / bytes(i))).chksum
        assert ours == theirs


def test_options_fragment_fields_roundtrip() -> None:
    raw = bytes(
        IP(
            src="1.1.1.1",
            dst="2.2.2.2",
            flags="MF",
            frag=185,
            options=[IPOption_NOP(), IPOption_RR()],
        )
        / b"data"
    )
    pkt = IPv4Packet.parse(raw)
    assert pkt.header_length == IP(raw).ihl * 4 > 20
    assert pkt.more_fragments and not pkt.dont_fragment and pkt.frag_offset == 185
    assert pkt.is_fragment
    assert pkt.payload == b"data"
    assert pkt.build() == raw


def test_odd_options_are_padded() -> None:
    raw = IPv4Packet("1.1.1.1", "2.2.2.2", 17, b"x", options=b"\x01").build()
    s = IP(raw)
    assert s.ihl == 6 and s.len == 25 and bytes(s.payload) == b"x"
    assert IPv4Packet.parse(raw).options == b"\x01\x00\x00\x00"


def test_payload_sliced_by_total_length() -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / b"abc")
    assert IPv4Packet.parse(raw + b"\x00" * 20).payload == b"abc"  # Ethernet padding


@pytest.mark.parametrize("cut", range(1, 40))
def test_truncated_at_every_length(cut: int) -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2", options=[IPOption_RR()]) / b"0123456789")
    with pytest.raises(MalformedError) as exc:
        IPv4Packet.parse(raw[: len(raw) - cut])
    assert exc.value.reason == "truncated"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"version": 6}, "bad_version"),
        ({"ihl": 4}, "bad_header_length"),
        ({"ihl": 0}, "bad_header_length"),
        ({"ihl": 15}, "truncated"),
        ({"len": 19}, "bad_length"),
        ({"len": 0}, "bad_length"),
        ({"len": 65535}, "truncated"),
        ({"chksum": 0x1234}, "bad_checksum"),
    ],
)
def test_malformed(fields: dict[str, int], reason: str) -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2", **fields) / b"payload")
    with pytest.raises(MalformedError) as exc:
        IPv4Packet.parse(raw)
    assert exc.value.reason == reason


def test_checksum_check_can_be_skipped() -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2", chksum=1))
    assert IPv4Packet.parse(raw, verify_checksum=False).checksum == 1


def test_build_rejects_oversize() -> None:
    with pytest.raises(ValueError):
        IPv4Packet("1.1.1.1", "2.2.2.2", 6, bytes(65516)).build()
    with pytest.raises(ValueError):
        IPv4Packet("1.1.1.1", "2.2.2.2", 6, options=bytes(44)).build()
