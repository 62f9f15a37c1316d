"""Inbound packets built from script lines; outbound ones decoded and compared.

Options are encoded in the script's order, byte for byte (``TcpPacket.build``
would re-order them as Linux does, which would hide what a script tests).
Decoding keeps the options as a list in wire order for the strict comparison.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.tcp import tcp_checksum

from .model import TcpOpt, TcpSpec

MASK = 0xFFFFFFFF
_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20, "E": 0x40}
_FLAG_BITS["W"] = 0x80


def flag_bits(letters: str) -> int:
    bits = 0
    for c in letters:
        bits |= _FLAG_BITS.get(c, 0)
    return bits


def flag_letters(bits: int) -> str:
    """packetdrill's spelling: S F R P U E W in that order, then '.' for ACK."""
    out = "".join(c for c in "SFRPUEW" if bits & _FLAG_BITS[c])
    return out + "." if bits & 0x10 else out


def encode_options(options: tuple[TcpOpt, ...]) -> bytes:
    out = bytearray()
    for o in options:
        if o.kind == "nop":
            out.append(1)
        elif o.kind == "eol":
            out.append(0)
        elif o.kind == "mss":
            out += struct.pack("!BBH", 2, 4, o.value)
        elif o.kind == "wscale":
            out += bytes((3, 3, o.value))
        elif o.kind == "sackOK":
            out += bytes((4, 2))
        elif o.kind == "TS":
            out += struct.pack("!BBII", 8, 10, o.value[0] & MASK, o.value[1] & MASK)
        elif o.kind == "sack":
            out += bytes((5, 2 + 8 * len(o.value)))
            for a, b in o.value:
                out += struct.pack("!II", a & MASK, b & MASK)
    while len(out) % 4:
        out.append(0)  # padding: EOL bytes, as packetdrill pads
    return bytes(out)


def build_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    payload: bytes,
    ident: int = 0,
) -> bytes:
    """One IPv4 packet carrying a TCP segment, checksums right."""
    hlen = 20 + len(options)
    seg = bytearray(
        struct.pack(
            "!HHIIBBHHH",
            sport,
            dport,
            seq & MASK,
            ack & MASK,
            (hlen // 4) << 4,
            flags,
            window,
            0,
            0,
        )
    )
    seg += options + payload
    struct.pack_into("!H", seg, 16, tcp_checksum(src, dst, bytes(seg)))
    ip = IPv4Packet(src=src, dst=dst, proto=IpProto.TCP, payload=bytes(seg), ttl=64, ident=ident)
    return ip.build()


@dataclass
class Seen:
    """An outbound TCP segment as the stack sent it (absolute numbers)."""

    time: float  # seconds since the script started
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: list[TcpOpt]
    length: int

    def describe(self, local_isn: int, remote_isn: int = 0, ts_offset: int = 0) -> str:
        """packetdrill's way of printing it: relative seq, options in wire order."""
        rel = (self.seq - local_isn) & MASK
        text = f"> {flag_letters(self.flags)} {rel}:{(rel + self.length) & MASK}({self.length})"
        if self.flags & 0x10:
            text += f" ack {(self.ack - remote_isn) & MASK}"
        text += f" win {self.window}"
        if self.options:
            shown = []
            for o in self.options:
                if o.kind == "TS":
                    shown.append(f"TS val {(o.value[0] - ts_offset) & MASK} ecr {o.value[1]}")
                else:
                    shown.append(str(o))
            text += " <" + ",".join(shown) + ">"
        return text


def decode_tcp(data: bytes, when: float) -> Seen | None:
    """An IPv4 TCP packet from the stack; None for anything else (ARP, IPv6, UDP...)."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0xF) * 4
    total = struct.unpack_from("!H", data, 2)[0]
    if data[9] != IpProto.TCP or total > len(data) or total < ihl + 20:
        return None
    seg = data[ihl:total]
    sport, dport, seq, ack, off, flags, window = struct.unpack_from("!HHIIBBH", seg)
    hlen = (off >> 4) * 4
    if hlen < 20 or hlen > len(seg):
        return None
    return Seen(
        when, sport, dport, seq, ack, flags, window, decode_options(seg[20:hlen]), len(seg) - hlen
    )


def decode_options(raw: bytes) -> list[TcpOpt]:
    out: list[TcpOpt] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            # EOL ends the list; the zero bytes after it are padding, not options.
            out.append(TcpOpt("eol"))
            break
        if kind == 1:
            out.append(TcpOpt("nop"))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            out.append(TcpOpt(f"bad option {kind}"))
            break
        length = raw[i + 1]
        body = raw[i + 2 : i + length]
        if kind == 2 and length == 4:
            out.append(TcpOpt("mss", struct.unpack("!H", body)[0]))
        elif kind == 3 and length == 3:
            out.append(TcpOpt("wscale", body[0]))
        elif kind == 4 and length == 2:
            out.append(TcpOpt("sackOK"))
        elif kind == 8 and length == 10:
            out.append(TcpOpt("TS", struct.unpack("!II", body)))
        elif kind == 5 and (length - 2) % 8 == 0:
            edges = struct.unpack(f"!{len(body) // 4}I", body)
            out.append(TcpOpt("sack", tuple(zip(edges[::2], edges[1::2], strict=True))))
        else:
            out.append(TcpOpt(f"option {kind} len {length}"))
        i += length
    return out


def strip_padding(options: list[TcpOpt]) -> list[TcpOpt]:
    """A trailing EOL is padding unless the script wrote one."""
    return options[:-1] if options and options[-1].kind == "eol" else options


def expected_inbound_window(spec: TcpSpec) -> int:
    return 0 if spec.win is None else spec.win
