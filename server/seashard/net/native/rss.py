"""Software RSS: the Toeplitz hash NICs use to pick a receive queue (Microsoft RSS spec).

Used where the device cannot steer flows itself (one queue, many shards) and to
pick, for a connection we open, a local port whose replies hash to our shard.
"""

from __future__ import annotations

import functools
import socket

# The 40-byte default key of the Microsoft RSS specification (the one its
# verification vectors use; many NIC drivers ship it as their default).
MICROSOFT_RSS_KEY = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa"
)


@functools.lru_cache(maxsize=8)
def _tables(key: bytes, nbytes: int) -> tuple[tuple[int, ...], ...]:
    """Per input byte position, the hash contribution of each of its 256 values.

    Bit i of the input (MSB first) contributes the 32 key bits starting at bit i;
    the hash is linear (XOR), so a byte's contribution is the XOR of its set bits'.
    """
    if len(key) * 8 < nbytes * 8 + 32:
        raise ValueError(f"RSS key of {len(key)} bytes too short for {nbytes} input bytes")
    k = int.from_bytes(key, "big")
    kbits = len(key) * 8
    tables = []
    for pos in range(nbytes):
        windows = [(k >> (kbits - 32 - (pos * 8 + bit))) & 0xFFFFFFFF for bit in range(8)]
        table = []
        for value in range(256):
            h = 0
            for bit in range(8):
                if value & (0x80 >> bit):
                    h ^= windows[bit]
            table.append(h)
        tables.append(tuple(table))
    return tuple(tables)


def toeplitz_hash(data: bytes, key: bytes = MICROSOFT_RSS_KEY) -> int:
    """The 32-bit Toeplitz hash of ``data`` under ``key``."""
    h = 0
    for table, byte in zip(_tables(key, len(data)), data, strict=True):
        h ^= table[byte]
    return h


def ipv4_tuple_bytes(src_ip: str, dst_ip: str, src_port: int, dst_port: int) -> bytes:
    """The RSS input for TCP/IPv4: source address, destination address, source, destination port."""
    return (
        socket.inet_aton(src_ip)
        + socket.inet_aton(dst_ip)
        + src_port.to_bytes(2, "big")
        + dst_port.to_bytes(2, "big")
    )


def ipv4_tcp_hash(
    src_ip: str, dst_ip: str, src_port: int, dst_port: int, key: bytes = MICROSOFT_RSS_KEY
) -> int:
    """The RSS hash of a received TCP/IPv4 segment's 4-tuple."""
    return toeplitz_hash(ipv4_tuple_bytes(src_ip, dst_ip, src_port, dst_port), key)


def ipv4_hash(src_ip: str, dst_ip: str, key: bytes = MICROSOFT_RSS_KEY) -> int:
    """The RSS hash over the two addresses only (non-TCP IPv4)."""
    return toeplitz_hash(socket.inet_aton(src_ip) + socket.inet_aton(dst_ip), key)


class RssSteering:
    """Maps a received flow to its owning shard, through an indirection table as NICs do.

    The default table is ``i % n_shards`` (Linux's ethtool default), so with a
    power-of-two table size the result is the low bits of the hash, spread evenly.
    """

    def __init__(
        self,
        n_shards: int,
        *,
        key: bytes = MICROSOFT_RSS_KEY,
        table: list[int] | None = None,
        table_size: int = 128,
    ) -> None:
        if n_shards < 1:
            raise ValueError("n_shards must be at least 1")
        if table is None:
            table = [i % n_shards for i in range(table_size)]
        if not table or any(not 0 <= s < n_shards for s in table):
            raise ValueError("indirection table entries must name shards 0..n_shards-1")
        self.n_shards = n_shards
        self.key = key
        self.table = list(table)

    def shard_for_hash(self, h: int) -> int:
        return self.table[h % len(self.table)]

    def shard_for(self, src_ip: str, dst_ip: str, src_port: int, dst_port: int) -> int:
        """The shard owning the flow of a segment received from ``src_ip:src_port``."""
        return self.shard_for_hash(ipv4_tcp_hash(src_ip, dst_ip, src_port, dst_port, self.key))

    def local_port_for(
        self, shard: int, local_ip: str, remote_ip: str, remote_port: int, ports: range
    ) -> int | None:
        """A local port in ``ports`` whose replies (remote -> local) hash to ``shard``."""
        for port in ports:
            if self.shard_for(remote_ip, local_ip, remote_port, port) == shard:
                return port
        return None
