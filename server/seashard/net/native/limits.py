"""Bounds on what a peer can make one native shard hold, with Linux's defaults.

Every bound here is per shard (each shard is its own stack, as each Linux
network namespace is), has a counter in the shard's metrics when it bites
(``tcp_limit_drops{reason}``, ``tcp_gave_up{reason}``, ``tcp_syncookies_*``,
``arp_*``), and, where a user would want to change it, a ``seashard serve``
option (``add_arguments``/``from_args``; the defaults are the dataclass's).

=====================  =======================  ==================================
limit                  default                  Linux's counterpart
=====================  =======================  ==================================
syn_backlog            1024 per listener        the SYN queue; tcp_max_syn_backlog
accept_backlog         4096 per listener        somaxconn (the listen backlog)
syncookies             on                       tcp_syncookies=1: cookies only
                                                when the SYN queue is full
synack_retries         5 (1 s RTO doubling:     tcp_synack_retries=5
                       freed 63 s after SYN)
max_tw_buckets         32768                    tcp_max_tw_buckets (ehash/2:
                                                32768 on a ~2-4 GB machine)
fin_timeout            60 s, orphans only       tcp_fin_timeout=60
orphan_retries         8                        tcp_orphan_retries=0, i.e. 8
reassembly_budget      32 MiB true size         tcp_mem pressure (system-wide)
max_connections        65536 live, passive      none (file descriptors bound it)
arp_cache_entries      1024                     gc_thresh3=1024
tcp_profile            linux                    Linux's TCP choices (tcp/profile.py);
                                                "rfc": the strict RFC values
tcp_cc                 the profile's (cubic)    net.ipv4.tcp_congestion_control
tcp_tlp                the profile's (on for    tcp_early_retrans=3 (TLP on)
                       linux, off for rfc)
=====================  =======================  ==================================

What each does when it bites:

- SYN queue full: a SYN cookie SYN-ACK (nothing stored); with syncookies off,
  the SYN is dropped.
- Accept queue full: the SYN is dropped, and so is the ACK that would complete
  a handshake (Linux, tcp_abort_on_overflow=0): the connection stays half-open
  and its SYN-ACK retransmission lets the peer's ACK come again.
- TIME_WAIT table full: the connection closes at once without TIME_WAIT, and a
  line is logged at most once a minute ("time wait bucket table overflow").
- Orphans: FIN_WAIT_2 ends after fin_timeout; an orphan that keeps seeing a
  zero window is reset after orphan_retries probes or retransmissions.
- Reassembly: out-of-order data beyond the receive window is trimmed (as ever);
  a segment beyond twice the receive buffer or the shard's budget is dropped.
- max_connections: a SYN (or cookie ACK) past the limit is answered with RST.
- ARP: the oldest entry makes room; a reply nobody asked for creates none.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any

from seashard import argtypes
from seashard.tcp.cc import CONTROLLERS
from seashard.tcp.profile import PROFILES

__all__ = ["NativeLimits", "add_arguments", "from_args"]


@dataclass(frozen=True)
class NativeLimits:
    syn_backlog: int = 1024
    accept_backlog: int = 4096
    syncookies: bool = True
    synack_retries: int = 5
    max_tw_buckets: int = 32768
    fin_timeout: float = 60.0
    orphan_retries: int = 8
    reassembly_budget: int = 32 * 1024 * 1024
    max_connections: int = 65536
    arp_cache_entries: int = 1024
    tcp_profile: str = "linux"  # TcpConfig.profile(): "linux" or "rfc"
    tcp_cc: str | None = None  # congestion control; None: the profile's
    # Tail loss probes; None: the profile's (on for linux).  A loss timer first takes
    # in the frames queued on the device (TcpLayer._on_timer), so a busy shard's
    # probe is not spurious.
    tcp_tlp: bool | None = None

    def __post_init__(self) -> None:
        if self.tcp_profile not in PROFILES:
            raise ValueError(f"unknown tcp profile {self.tcp_profile!r}")
        if self.tcp_cc is not None and self.tcp_cc not in CONTROLLERS:
            raise ValueError(f"unknown congestion control {self.tcp_cc!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("syncookies", "tcp_profile", "tcp_cc", "tcp_tlp"):
                continue
            if value < 0:
                raise ValueError(f"{f.name} must not be negative")
        if self.syn_backlog < 1 or self.accept_backlog < 1 or self.arp_cache_entries < 1:
            raise ValueError("backlogs and the ARP cache need room for at least one entry")


_D = NativeLimits()


def add_arguments(parser: Any) -> None:
    """The options, on an ``argparse`` parser or argument group."""
    g = parser
    g.add_argument(
        "--max-connections",
        type=argtypes.count,
        default=_D.max_connections,
        metavar="N",
        help=f"live connections a shard accepts; more are reset (default {_D.max_connections})",
    )
    g.add_argument(
        "--syn-backlog",
        type=argtypes.count,
        default=_D.syn_backlog,
        metavar="N",
        help=f"half-open connections per listener and shard (default {_D.syn_backlog})",
    )
    g.add_argument(
        "--accept-backlog",
        type=argtypes.count,
        default=_D.accept_backlog,
        metavar="N",
        help=f"connections waiting for accept per listener and shard (default {_D.accept_backlog})",
    )
    g.add_argument(
        "--no-syncookies",
        dest="syncookies",
        action="store_false",
        help="drop SYNs when the SYN queue is full instead of answering with SYN cookies",
    )
    g.add_argument(
        "--synack-retries",
        type=argtypes.count,
        default=_D.synack_retries,
        metavar="N",
        help=f"SYN-ACK retransmissions before a half-open connection is freed "
        f"(default {_D.synack_retries})",
    )
    g.add_argument(
        "--max-tw-buckets",
        type=argtypes.count,
        default=_D.max_tw_buckets,
        metavar="N",
        help=f"TIME_WAIT connections per shard; past it TIME_WAIT is skipped "
        f"(default {_D.max_tw_buckets})",
    )
    g.add_argument(
        "--fin-timeout",
        type=argtypes.positive_seconds,
        default=_D.fin_timeout,
        metavar="SECONDS",
        help=f"FIN_WAIT_2 lifetime of a connection the app closed (default {_D.fin_timeout:g})",
    )
    g.add_argument(
        "--orphan-retries",
        type=argtypes.count,
        default=_D.orphan_retries,
        metavar="N",
        help=f"probes before a closed connection facing a zero window is reset "
        f"(default {_D.orphan_retries})",
    )
    g.add_argument(
        "--reassembly-budget",
        type=argtypes.count,
        default=_D.reassembly_budget,
        metavar="BYTES",
        help=f"out-of-order bytes a shard holds for all its connections "
        f"(default {_D.reassembly_budget})",
    )
    g.add_argument(
        "--arp-cache-entries",
        type=argtypes.count,
        default=_D.arp_cache_entries,
        metavar="N",
        help=f"ARP cache size per shard, oldest out (default {_D.arp_cache_entries})",
    )
    g.add_argument(
        "--tcp-profile",
        choices=sorted(PROFILES),
        default=_D.tcp_profile,
        help="TCP's choices where the RFCs leave one: Linux's (200 ms minimum RTO, "
        "quick-ACK at start, CUBIC, TLP) or the strict RFC values (default linux)",
    )
    g.add_argument(
        "--tcp-cc",
        choices=sorted(CONTROLLERS),
        default=None,
        help="congestion control (default: the profile's, cubic for linux)",
    )
    g.add_argument(
        "--tcp-tlp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tail loss probes (RFC 8985; default: the profile's, on for linux as Linux)",
    )


def from_args(ns: argparse.Namespace) -> NativeLimits:
    """The limits an ``add_arguments`` parser parsed (ValueError: a bad combination)."""
    return NativeLimits(**{f.name: getattr(ns, f.name) for f in fields(NativeLimits)})
