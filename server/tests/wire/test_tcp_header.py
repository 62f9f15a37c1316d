import pytest
from scapy.layers.inet import IP, TCP

from seashard.wire import MalformedError, TcpFlags, TcpPacket
from seashard.wire.tcp import tcp_checksum

SRC, DST = "10.0.0.7", "10.0.0.2"


def scapy_segment(**fields: object) -> bytes:
    """TCP bytes with scapy's own checksum (computed inside an IP packet)."""
    payload = fields.pop("load", b"")
    return bytes(IP(bytes(IP(src=SRC, dst=DST) / TCP(**fields) / payload))[TCP])


def test_flag_values_match_scapy() -> None:
    for name in "FSRPAUEC":
        ours = TcpPacket(1, 2, flags=TcpFlags(int(TCP(flags=name).flags))).build(SRC, DST)
        assert str(TCP(ours).flags) == name
    assert TcpFlags.SYN | TcpFlags.ACK == 0x12


def test_syn_options_built_like_linux_and_dissected_by_scapy() -> None:
    seg = TcpPacket(47578, 1234, seq=0xFFFFFFFF, flags=TcpFlags.SYN, window=64240)
    seg.mss, seg.wscale, seg.sack_permitted, seg.timestamps = 1460, 7, True, (123456, 0)
    raw = seg.build(SRC, DST)
    s = TCP(raw)
    assert s.options == [
        ("MSS", 1460),
        ("SAckOK", b""),
        ("Timestamp", (123456, 0)),
        ("NOP", None),
        ("WScale", 7),
    ]
    assert (s.sport, s.dport, s.seq, s.dataofs, s.window) == (47578, 1234, 0xFFFFFFFF, 10, 64240)
    assert raw == scapy_segment(
        sport=47578, dport=1234, seq=0xFFFFFFFF, flags="S", window=64240, options=s.options
    )


def test_parse_scapy_segment_with_all_options() -> None:
    opts = [
        ("NOP", None),
        ("NOP", None),
        ("Timestamp", (1, 2)),
        ("NOP", None),
        ("NOP", None),
        ("SAck", (100, 200, 300, 400)),
        ("EOL", None),
    ]
    raw = scapy_segment(sport=80, dport=5555, seq=7, ack=9, flags="PA", options=opts, load=b"hey")
    seg = TcpPacket.parse(raw, SRC, DST)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == (80, 5555, 7, 9)
    assert seg.flags == TcpFlags.PSH | TcpFlags.ACK
    assert seg.timestamps == (1, 2) and seg.ts_val == 1 and seg.ts_ecr == 2
    assert seg.sack_blocks == ((100, 200), (300, 400))
    assert seg.mss is None and seg.wscale is None and not seg.sack_permitted
    assert seg.payload == b"hey"


def test_roundtrip_and_checksum_against_scapy() -> None:
    blocks = ((1, 2), (3, 4), (5, 6))
    flags = TcpFlags.ACK | TcpFlags.URG
    seg = TcpPacket(1, 65535, 5, 6, flags, 1000, b"odd", 3, timestamps=(9, 8), sack_blocks=blocks)
    raw = seg.build(SRC, DST)
    back = TcpPacket.parse(raw, SRC, DST)
    back.checksum = 0
    assert back == seg
    s = TCP(raw)
    del s.chksum  # let scapy compute it again
    assert bytes(IP(src=SRC, dst=DST) / s)[20:] == raw


def test_unknown_options_are_skipped_and_kept() -> None:
    raw = scapy_segment(options=[(30, b"\x01\x02\x03"), ("MSS", 536), (254, b"")])
    seg = TcpPacket.parse(raw, SRC, DST)
    assert seg.mss == 536
    assert seg.unknown_options == ((30, b"\x01\x02\x03"), (254, b""))


def test_bytes_after_eol_are_ignored() -> None:
    raw = bytearray(scapy_segment(options=[("EOL", None), ("NOP", None), ("NOP", None)]))
    raw[21:24] = b"\x02\x09\xff"  # garbage after EOL: would be a bad MSS
    raw[16:18] = b"\x00\x00"
    raw[16:18] = tcp_checksum(SRC, DST, bytes(raw)).to_bytes(2, "big")
    assert TcpPacket.parse(bytes(raw), SRC, DST).mss is None


def with_options(options: bytes) -> bytes:
    """A segment carrying raw (already padded) option bytes and a valid checksum."""
    hdr = bytearray(scapy_segment(sport=1, dport=2))
    hdr[12] = (20 + len(options)) // 4 << 4
    seg = bytearray(bytes(hdr) + options)
    seg[16:18] = b"\x00\x00"
    seg[16:18] = tcp_checksum(SRC, DST, bytes(seg)).to_bytes(2, "big")
    return bytes(seg)


@pytest.mark.parametrize(
    "options",
    [
        b"\x02\x03\x05\x00",  # MSS length 3
        b"\x02\x05\x05\xb4\x00\x00\x00\x00",  # MSS length 5
        b"\x03\x04\x07\x00",  # window scale length 4
        b"\x04\x03\x00\x00",  # SACK-permitted length 3
        b"\x08\x08" + bytes(6),  # timestamps length 8
        b"\x05\x0b" + bytes(10),  # SACK length 11
        b"\x05\x02\x00\x00",  # SACK with no blocks
        b"\x1e\x00\x00\x00",  # length 0
        b"\x1e\x01\x00\x00",  # length 1
        b"\x01\x01\x01\x1e",  # kind without a length byte
        b"\x1e\x09\x00\x00",  # runs past the header
        b"\x08\x0a" + bytes(6),  # timestamps past the header
    ],
)
def test_bad_option_lengths(options: bytes) -> None:
    with pytest.raises(MalformedError) as exc:
        TcpPacket.parse(with_options(options), SRC, DST)
    assert exc.value.reason == "bad_option"


@pytest.mark.parametrize("offset", range(5))
def test_data_offset_below_five(offset: int) -> None:
    raw = bytearray(scapy_segment())
    raw[12] = offset << 4
    with pytest.raises(MalformedError) as exc:
        TcpPacket.parse(bytes(raw), SRC, DST, verify=False)
    assert exc.value.reason == "bad_header_length"


def test_data_offset_past_the_end() -> None:
    raw = scapy_segment(dataofs=15, options=[("MSS", 1460)])
    with pytest.raises(MalformedError) as exc:
        TcpPacket.parse(raw, SRC, DST, verify=False)
    assert exc.value.reason == "truncated"


def test_truncated_at_every_length() -> None:
    raw = scapy_segment(options=[("MSS", 1460), ("WScale", 2)], load=b"hello world")
    for n in range(len(raw)):
        with pytest.raises(MalformedError) as exc:
            TcpPacket.parse(raw[:n], SRC, DST)
        assert exc.value.reason in ("truncated", "bad_checksum")
        if n < 28:
            assert exc.value.reason == "truncated"


def test_bad_checksum_and_wrong_pseudo_header() -> None:
    raw = scapy_segment(load=b"x")
    assert TcpPacket.parse(raw, SRC, DST).payload == b"x"
    with pytest.raises(MalformedError) as exc:
        TcpPacket.parse(raw, SRC, "10.0.0.3")
    assert exc.value.reason == "bad_checksum"
    with pytest.raises(MalformedError):
        TcpPacket.parse(scapy_segment(chksum=0xDEAD), SRC, DST)
    assert TcpPacket.parse(raw, "1.1.1.1", "2.2.2.2", verify=False).payload == b"x"


def test_options_too_long_to_build() -> None:
    seg = TcpPacket(1, 2, timestamps=(1, 2), sack_blocks=((1, 2),) * 4)
    with pytest.raises(ValueError):
        seg.build(SRC, DST)
