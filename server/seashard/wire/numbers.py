"""The protocol numbers that are Python enums (IPv4 protocols, TCP flags and options).

A module mypyc does not compile (see ``seashard/accel.py``): the mypyc of Debian's
mypy 1.0 cannot compile an ``IntEnum`` or ``IntFlag``.  ``wire.ipv4`` and
``wire.tcp`` import them from here and re-export them.
"""

from __future__ import annotations

import enum


class IpProto(enum.IntEnum):
    ICMP = 1
    TCP = 6
    UDP = 17


class TcpFlags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


class TcpOption(enum.IntEnum):
    EOL = 0
    NOP = 1
    MSS = 2
    WSCALE = 3
    SACK_PERMITTED = 4
    SACK = 5
    TIMESTAMPS = 8
