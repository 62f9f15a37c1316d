from collections import Counter

import pytest

from seashard.net.native.rss import (
    MICROSOFT_RSS_KEY,
    RssSteering,
    ipv4_hash,
    ipv4_tcp_hash,
    toeplitz_hash,
)

# "Verifying the RSS Hash Calculation" (Microsoft RSS specification), IPv4 table:
# destination, source, IPv4-only hash, IPv4-with-TCP hash.
VECTORS = [
    ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323E8FC2, 0x51CCC178),
    ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xD718262A, 0xC626B0EA),
    ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xD2D0A5DE, 0x5C2B394A),
    ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xAFC7327F),
    ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5D1809C5, 0x10E828A2),
]


@pytest.mark.parametrize(("dst", "dport", "src", "sport", "ip_only", "with_tcp"), VECTORS)
def test_microsoft_vectors(
    dst: str, dport: int, src: str, sport: int, ip_only: int, with_tcp: int
) -> None:
    assert ipv4_hash(src, dst) == ip_only
    assert ipv4_tcp_hash(src, dst, sport, dport) == with_tcp


def reference_toeplitz(data: bytes, key: bytes) -> int:
    k = int.from_bytes(key, "big")
    kbits = len(key) * 8
    h = 0
    for i in range(len(data) * 8):
        if data[i // 8] & (0x80 >> (i % 8)):
            h ^= (k >> (kbits - 32 - i)) & 0xFFFFFFFF
    return h


def test_table_method_matches_bitwise_reference() -> None:
    for n in range(0, 37, 3):
        data = bytes((i * 37 + n) & 0xFF for i in range(n))
        assert toeplitz_hash(data) == reference_toeplitz(data, MICROSOFT_RSS_KEY)
    with pytest.raises(ValueError):
        toeplitz_hash(bytes(40))


def test_steering_spreads_and_is_stable() -> None:
    rss = RssSteering(2)
    shards = Counter(
        rss.shard_for("10.0.0.7", "10.0.0.2", port, 1234) for port in range(40000, 41000)
    )
    assert set(shards) == {0, 1} and min(shards.values()) > 400
    assert rss.shard_for("10.0.0.7", "10.0.0.2", 40000, 1234) == rss.shard_for(
        "10.0.0.7", "10.0.0.2", 40000, 1234
    )


def test_custom_indirection_table() -> None:
    rss = RssSteering(3, table=[2])
    assert rss.shard_for("1.2.3.4", "5.6.7.8", 1, 2) == 2
    with pytest.raises(ValueError):
        RssSteering(2, table=[0, 2])


def test_local_port_for_shard() -> None:
    rss = RssSteering(4)
    for shard in range(4):
        port = rss.local_port_for(shard, "10.0.0.2", "10.0.0.9", 80, range(32768, 61000))
        assert port is not None
        assert rss.shard_for("10.0.0.9", "10.0.0.2", 80, port) == shard
