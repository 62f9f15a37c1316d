"""What a listening port (or no port at all) does with a segment.

A listener has no per-connection state here: on an acceptable SYN the caller
creates ``Connection.accept(syn, iss, now, config)``; everything else either
gets the RFC 9293 reset or is dropped.  Backlogs, SYN queues and the choice of
ISN (``IsnGenerator``) are the caller's.
"""

from __future__ import annotations

import enum

from .segment import Flags, Segment
from .seq import SEQ_MASK

__all__ = ["ListenVerdict", "classify_listen", "is_initial_syn", "rst_for"]

_FIN, _SYN, _RST, _ACK = int(Flags.FIN), int(Flags.SYN), int(Flags.RST), int(Flags.ACK)


class ListenVerdict(enum.Enum):
    ACCEPT = "accept"  # a SYN: create Connection.accept(...)
    RESET = "reset"  # answer with rst_for(seg)
    DROP = "drop"  # ignore silently


def is_initial_syn(seg: Segment) -> bool:
    """A connection request: SYN without ACK, RST or FIN."""
    return (seg.flags & (Flags.SYN | Flags.ACK | Flags.RST | Flags.FIN)) == Flags.SYN


def classify_listen(seg: Segment) -> ListenVerdict:
    """RFC 9293 3.10.7.2, a segment arriving for a socket in LISTEN state:
    RST is ignored, any ACK is reset, a SYN opens a connection, the rest is dropped."""
    flags = int(seg.flags)  # plain ints: a flood meets this for every segment
    if flags & _RST:
        return ListenVerdict.DROP
    if flags & _ACK:
        return ListenVerdict.RESET
    if flags & _SYN:
        # A SYN+FIN is nonsense (and a classic scanner probe): drop it.
        return ListenVerdict.DROP if flags & _FIN else ListenVerdict.ACCEPT
    return ListenVerdict.DROP


def rst_for(seg: Segment) -> Segment | None:
    """The reset to send for a segment that reaches no connection (RFC 9293 3.10.7.1)
    or that a listener refuses: never answer a RST; if the segment carries an ACK,
    ``<SEQ=SEG.ACK><CTL=RST>``; otherwise ``<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>``."""
    flags = seg.flags
    if flags & Flags.RST:
        return None
    if flags & Flags.ACK:
        return Segment(seq=seg.ack, ack=0, flags=Flags.RST, window=0)
    return Segment(
        seq=0,
        ack=(seg.seq + seg.seg_len) & SEQ_MASK,
        flags=Flags.RST | Flags.ACK,
        window=0,
    )
