"""Sans-IO TCP: one connection's state machine; segments in, segments out,
deadlines out, the clock is an input.  See ``connection.py`` for the scope."""

from .connection import Connection, GaveUp, State, TcpConfig, TcpError, TcpStateError, TcpStats
from .isn import IsnGenerator
from .listener import ListenVerdict, classify_listen, is_initial_syn, rst_for
from .segment import Flags, Segment
from .seq import seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt

__all__ = [
    "Connection",
    "Flags",
    "GaveUp",
    "IsnGenerator",
    "ListenVerdict",
    "Segment",
    "State",
    "TcpConfig",
    "TcpError",
    "TcpStateError",
    "TcpStats",
    "classify_listen",
    "is_initial_syn",
    "rst_for",
    "seq_add",
    "seq_diff",
    "seq_ge",
    "seq_gt",
    "seq_le",
    "seq_lt",
]
