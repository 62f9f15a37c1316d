"""A TCP segment as the state machine sees it: header fields that matter, no ports.

The glue layer (``seashard.net.native``) parses wire frames into ``Segment``
objects and back; ports, checksums and addresses are its business.  ``window``
is the 16-bit field exactly as on the wire: the receiver of a segment applies
the sender's window-scale shift itself (and never to SYN segments).
"""

from __future__ import annotations

from dataclasses import dataclass

from seashard.wire.tcp import TcpFlags

from .seq import SEQ_MASK

__all__ = ["Flags", "Segment"]


# The wire's flag bits: one enum for both layers, so segments convert without mapping.
Flags = TcpFlags


# tcpdump's letters, in tcpdump's order; ACK prints as "." after them.
_LETTERS = (
    (Flags.SYN, "S"),
    (Flags.FIN, "F"),
    (Flags.RST, "R"),
    (Flags.PSH, "P"),
    (Flags.URG, "U"),
    (Flags.ECE, "E"),
    (Flags.CWR, "W"),
)


@dataclass(slots=True)
class Segment:
    seq: int
    ack: int
    flags: Flags
    window: int
    payload: bytes = b""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr)
    sack_blocks: tuple[tuple[int, int], ...] = ()  # (left, right) edges, first block first

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
        if self.flags & Flags.ACK:
            s += "."
        return s or "none"

    def __str__(self) -> str:
        n = len(self.payload)
        parts = [f"{self.flag_str()} {self.seq}:{(self.seq + n) & SEQ_MASK}({n})"]
        if self.flags & Flags.ACK:
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
