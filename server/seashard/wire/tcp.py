"""TCP headers and options (RFC 9293, RFC 7323, RFC 2018).

Sequence and acknowledgement numbers are plain ints 0..2**32-1; modular
arithmetic belongs to ``seashard.tcp``. Options are parsed into fields; unknown
kinds are skipped by their length and kept in ``unknown_options``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import Buffer, internet_checksum, pseudo_header_sum
from .errors import MalformedError
from .numbers import TcpFlags as TcpFlags  # re-exported: their home before mypyc
from .numbers import TcpOption as TcpOption

_HEADER: Final = struct.Struct("!HHIIBBHHH")
_PROTO_TCP: Final = 6
MAX_OPTIONS_LEN: Final = 40


# Exact lengths of the fixed-size options we understand.
_FIXED_LEN: dict[int, int] = {
    TcpOption.MSS: 4,
    TcpOption.WSCALE: 3,
    TcpOption.SACK_PERMITTED: 2,
    TcpOption.TIMESTAMPS: 10,
}


_TS_OPTION: Final = struct.Struct("!BBBBII")  # NOP NOP TS: what every segment carries with TS on


def build_options(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    timestamps: tuple[int, int] | None,
    sack_blocks: tuple[tuple[int, int], ...] = (),
    unknown: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """Options in Linux's layout (MSS, SACK-permitted+TS, NOP+WS, NOP NOP SACK), padded."""
    if mss is None and wscale is None and not sack_permitted and not sack_blocks and not unknown:
        if timestamps is None:
            return b""
        return _TS_OPTION.pack(1, 1, TcpOption.TIMESTAMPS, 10, *timestamps)
    out = bytearray()
    if mss is not None:
        out += struct.pack("!BBH", TcpOption.MSS, 4, mss)
    if timestamps is not None:
        if sack_permitted:
            out += bytes((TcpOption.SACK_PERMITTED, 2))
        else:
            out += b"\x01\x01"
        out += struct.pack("!BBII", TcpOption.TIMESTAMPS, 10, *timestamps)
    elif sack_permitted:
        out += bytes((1, 1, TcpOption.SACK_PERMITTED, 2))
    if wscale is not None:
        out += bytes((1, TcpOption.WSCALE, 3, wscale))
    if sack_blocks:
        out += bytes((1, 1, TcpOption.SACK, 2 + 8 * len(sack_blocks)))
        for left, right in sack_blocks:
            out += struct.pack("!II", left, right)
    for kind, body in unknown:
        out += bytes((kind, 2 + len(body))) + body
    if len(out) % 4:
        out += b"\x00" * (4 - len(out) % 4)
    if len(out) > MAX_OPTIONS_LEN:
        raise ValueError(f"tcp options of {len(out)} bytes exceed {MAX_OPTIONS_LEN}")
    return bytes(out)


def _parse_options(target: Segment | TcpPacket, opts: Buffer) -> list[tuple[int, bytes]]:
    """Set ``target``'s option fields from ``opts``; returns the unknown options."""
    unknown: list[tuple[int, bytes]] = []
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == TcpOption.EOL:
            break
        if kind == TcpOption.NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedError("bad_option", f"kind {kind} without length")
        length = opts[i + 1]
        if length < 2 or i + length > n:
            raise MalformedError("bad_option", f"kind {kind} length {length}")
        body = opts[i + 2 : i + length]
        fixed = _FIXED_LEN.get(kind)
        if fixed is not None and length != fixed:
            raise MalformedError("bad_option", f"kind {kind} length {length}")
        if kind == TcpOption.MSS:
            target.mss = int.from_bytes(body, "big")
        elif kind == TcpOption.WSCALE:
            target.wscale = body[0]
        elif kind == TcpOption.SACK_PERMITTED:
            target.sack_permitted = True
        elif kind == TcpOption.TIMESTAMPS:
            tsval, tsecr = struct.unpack("!II", body)  # a pair, as mypy 1.0 types it
            target.timestamps = (tsval, tsecr)
        elif kind == TcpOption.SACK:
            if (length - 2) % 8 or length == 2:
                raise MalformedError("bad_option", f"sack length {length}")
            edges = struct.unpack(f"!{len(body) // 4}I", body)
            target.sack_blocks = tuple(zip(edges[::2], edges[1::2], strict=True))
        else:
            unknown.append((kind, bytes(body)))
        i += length
    return unknown


_FLAG_VALUES: Final = tuple(TcpFlags(i) for i in range(256))  # int -> TcpFlags, no enum machinery
_TS_ONLY: Final = b"\x01\x01\x08\x0a"  # NOP NOP TS(10): the options of an established segment
_TS_VALUES: Final = struct.Struct("!II")


def _header(
    data: Buffer,
    src_ip: str | bytes,
    dst_ip: str | bytes,
    verify: bool,
    pseudo: int | None,
) -> tuple[int, int, int, int, int, int, int, int, int]:
    """The fixed header's fields and the header length, checked (and the checksum
    under the pseudo-header, if ``verify``): what both parsers start with.
    ``pseudo``: the pseudo-header sum of the two addresses with length 0, if known."""
    n = len(data)
    if n < 20:
        raise MalformedError("truncated", f"tcp header of {n} bytes")
    sport, dport, seq, ack, off, flags, window, csum, urgent = _HEADER.unpack_from(data)
    hlen = (off >> 4) * 4
    if hlen < 20:
        raise MalformedError("bad_header_length", f"data offset {hlen // 4}")
    if hlen > n:
        raise MalformedError("truncated", f"data offset {hlen} > {n} bytes")
    if verify:
        if pseudo is None:
            pseudo = pseudo_header_sum(src_ip, dst_ip, _PROTO_TCP, 0)
        # ones_complement_sum(data, pseudo + n) == 0xFFFF, in one C call or two
        total = int.from_bytes(data, "big")
        if n & 1:
            total <<= 8
        total += pseudo + n
        if not total or total % 0xFFFF:
            raise MalformedError("bad_checksum", "tcp")
    return sport, dport, seq, ack, flags, window, csum, urgent, hlen


def parse_segment(
    data: Buffer,
    src_ip: str | bytes,
    dst_ip: str | bytes,
    *,
    verify: bool = True,
    pseudo: int | None = None,
) -> tuple[int, int, Segment]:
    """Parse a segment from ``src_ip`` to ``dst_ip`` straight into a ``Segment``:
    (source port, destination port, segment).  The checks and errors of
    ``TcpPacket.parse``; unknown options are skipped.  ``pseudo``: the
    pseudo-header sum of the two addresses with length 0, if the caller has it."""
    sport, dport, seq, ack, flags, window, _csum, _urg, hlen = _header(
        data, src_ip, dst_ip, verify, pseudo
    )
    n = len(data)
    seg = Segment(seq, ack, _FLAG_VALUES[flags], window, bytes(data[hlen:]) if n > hlen else b"")
    if hlen > 20:
        if hlen == 32 and data[20:24] == _TS_ONLY:
            tsval, tsecr = _TS_VALUES.unpack_from(data, 24)
            seg.timestamps = (tsval, tsecr)
        else:
            _parse_options(seg, data[20:hlen])
    return sport, dport, seg


def tcp_checksum(src_ip: str | bytes, dst_ip: str | bytes, segment: Buffer) -> int:
    """The checksum of ``segment`` (its checksum field zero) under the IPv4 pseudo-header."""
    return internet_checksum(segment, pseudo_header_sum(src_ip, dst_ip, _PROTO_TCP, len(segment)))


# tcpdump's letters, in tcpdump's order; ACK prints as "." after them.
_LETTERS: Final = (
    (TcpFlags.SYN, "S"),
    (TcpFlags.FIN, "F"),
    (TcpFlags.RST, "R"),
    (TcpFlags.PSH, "P"),
    (TcpFlags.URG, "U"),
    (TcpFlags.ECE, "E"),
    (TcpFlags.CWR, "W"),
)


@dataclass(slots=True)
class Segment:
    """A TCP segment as the state machine sees it (``seashard.tcp``): no ports, no
    checksum; the native glue parses frames straight into it (``parse_segment``)
    and builds frames from it with per-connection header templates."""

    seq: int
    ack: int
    flags: TcpFlags
    window: int
    payload: Buffer = b""  # a memoryview into a frame too: TCP copies what it keeps
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr)
    sack_blocks: tuple[tuple[int, int], ...] = ()  # (left, right) edges, first block first

    # Written out, not generated: compiled, dataclass's generated __init__ runs as
    # interpreted Python (an args tuple, a kwargs dict and ten setattr calls: 3-4% of a
    # native shard's CPU, one per segment in and one per segment out); this one is a
    # native constructor. dataclass keeps an __init__ the class defines.
    def __init__(
        self,
        seq: int,
        ack: int,
        flags: TcpFlags,
        window: int,
        payload: Buffer = b"",
        mss: int | None = None,
        wscale: int | None = None,
        sack_permitted: bool = False,
        timestamps: tuple[int, int] | None = None,
        sack_blocks: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.timestamps = timestamps
        self.sack_blocks = sack_blocks

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one each for SYN and FIN."""
        f = int(self.flags)  # plain-int arithmetic: IntFlag operators are slow
        return len(self.payload) + (f & 1) + ((f >> 1) & 1)

    @property
    def syn(self) -> bool:
        return bool(int(self.flags) & 2)

    @property
    def fin(self) -> bool:
        return bool(int(self.flags) & 1)

    @property
    def rst(self) -> bool:
        return bool(int(self.flags) & 4)

    @property
    def has_ack(self) -> bool:
        return bool(int(self.flags) & 16)

    def flag_str(self) -> str:
        s = "".join(letter for flag, letter in _LETTERS if self.flags & flag)
        if self.flags & TcpFlags.ACK:
            s += "."
        return s or "none"

    def __str__(self) -> str:
        n = len(self.payload)
        parts = [f"{self.flag_str()} {self.seq}:{(self.seq + n) & 0xFFFFFFFF}({n})"]
        if self.flags & TcpFlags.ACK:
            parts.append(f"ack {self.ack}")
        parts.append(f"win {self.window}")
        opts = []
        if self.mss is not None:
            opts.append(f"mss {self.mss}")
        if self.sack_permitted:
            opts.append("sackOK")
        if self.timestamps is not None:
            opts.append(f"TS val {self.timestamps[0]} ecr {self.timestamps[1]}")
        if self.wscale is not None:
            opts.append(f"wscale {self.wscale}")
        if self.sack_blocks:
            opts.append("sack " + " ".join(f"{a}:{b}" for a, b in self.sack_blocks))
        if opts:
            parts.append("<" + ",".join(opts) + ">")
        return " ".join(parts)


@dataclass(slots=True)
class TcpPacket:
    """A TCP segment as on the wire: header fields, parsed options and payload."""

    src_port: int
    dst_port: int
    seq: int = 0
    ack: int = 0
    flags: TcpFlags = TcpFlags(0)
    window: int = 0
    payload: bytes = b""
    urgent: int = 0
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr)
    unknown_options: tuple[tuple[int, bytes], ...] = ()
    checksum: int = 0

    @property
    def ts_val(self) -> int | None:
        return None if self.timestamps is None else self.timestamps[0]

    @property
    def ts_ecr(self) -> int | None:
        return None if self.timestamps is None else self.timestamps[1]

    @classmethod
    def parse(
        cls, data: Buffer, src_ip: str | bytes, dst_ip: str | bytes, *, verify: bool = True
    ) -> TcpPacket:
        """Parse a segment carried from ``src_ip`` to ``dst_ip`` (the pseudo-header)."""
        sport, dport, seq, ack, flags, window, csum, urgent, hlen = _header(
            data, src_ip, dst_ip, verify, None
        )
        seg = cls(sport, dport, seq, ack, TcpFlags(flags), window, bytes(data[hlen:]), urgent)
        seg.checksum = csum
        if hlen > 20:
            seg._parse_options(data[20:hlen])
        return seg

    def _parse_options(self, opts: Buffer) -> None:
        unknown = _parse_options(self, opts)
        if unknown:
            self.unknown_options = tuple(unknown)

    def build_options(self) -> bytes:
        """Options in Linux's layout (MSS, SACK-permitted+TS, NOP+WS, NOP NOP SACK), padded."""
        return build_options(
            self.mss,
            self.wscale,
            self.sack_permitted,
            self.timestamps,
            self.sack_blocks,
            self.unknown_options,
        )

    def build(
        self, src_ip: str | bytes, dst_ip: str | bytes, *, csum_partial: bool = False
    ) -> bytes:
        """The segment bytes with a checksum computed under the pseudo-header;
        ``csum_partial``: the folded pseudo-header sum only, for a device to complete
        (checksum offload, ``wire/vnet.py``)."""
        options = self.build_options()
        hlen = 20 + len(options)
        segment = bytearray(
            _HEADER.pack(
                self.src_port,
                self.dst_port,
                self.seq & 0xFFFFFFFF,
                self.ack & 0xFFFFFFFF,
                (hlen // 4) << 4,
                int(self.flags) & 0xFF,
                self.window,
                0,
                self.urgent,
            )
        )
        segment += options
        segment += self.payload
        if csum_partial:
            csum = pseudo_header_sum(src_ip, dst_ip, _PROTO_TCP, len(segment))
        else:
            csum = tcp_checksum(src_ip, dst_ip, segment)
        struct.pack_into("!H", segment, 16, csum)
        return bytes(segment)
