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
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from seashard import argtypes
from seashard.tcp.cc import CONTROLLERS
from seashard.tcp.profile import PROFILES

__all__ = ["NativeLimits", "add_arguments", "from_args"]


def _opt(
    help: str,
    type: Callable[[str], Any] | None = argtypes.count,
    metavar: str | None = "N",
    **argparse_extra: Any,
) -> dict[str, Any]:
    """A field's ``seashard serve`` option: ``--field-name``, with ``help`` and the
    default appended unless ``help`` says it (metadata read by ``add_arguments``)."""
    return {"help": help, "type": type, "metavar": metavar, **argparse_extra}


@dataclass(frozen=True)
class NativeLimits:
    max_connections: int = field(
        default=65536, metadata=_opt("live connections a shard accepts; more are reset")
    )
    syn_backlog: int = field(
        default=1024, metadata=_opt("half-open connections per listener and shard")
    )
    accept_backlog: int = field(
        default=4096, metadata=_opt("connections waiting for accept per listener and shard")
    )
    syncookies: bool = field(
        default=True,
        metadata=_opt(
            "drop SYNs when the SYN queue is full instead of answering with SYN cookies",
            type=None,
            metavar=None,
            flag="--no-syncookies",
            action="store_false",
        ),
    )
    synack_retries: int = field(
        default=5,
        metadata=_opt("SYN-ACK retransmissions before a half-open connection is freed"),
    )
    max_tw_buckets: int = field(
        default=32768,
        metadata=_opt("TIME_WAIT connections per shard; past it TIME_WAIT is skipped"),
    )
    fin_timeout: float = field(
        default=60.0,
        metadata=_opt(
            "FIN_WAIT_2 lifetime of a connection the app closed",
            type=argtypes.positive_seconds,
            metavar="SECONDS",
        ),
    )
    orphan_retries: int = field(
        default=8,
        metadata=_opt("probes before a closed connection facing a zero window is reset"),
    )
    reassembly_budget: int = field(
        default=32 * 1024 * 1024,
        metadata=_opt("out-of-order bytes a shard holds for all its connections", metavar="BYTES"),
    )
    arp_cache_entries: int = field(
        default=1024, metadata=_opt("ARP cache size per shard, oldest out")
    )
    # TcpConfig.profile(): "linux" or "rfc"
    tcp_profile: str = field(
        default="linux",
        metadata=_opt(
            "TCP's choices where the RFCs leave one: Linux's (200 ms minimum RTO, "
            "quick-ACK at start, CUBIC, TLP) or the strict RFC values (default linux)",
            type=None,
            metavar=None,
            choices=sorted(PROFILES),
        ),
    )
    # Congestion control; None: the profile's.
    tcp_cc: str | None = field(
        default=None,
        metadata=_opt(
            "congestion control (default: the profile's, cubic for linux)",
            type=None,
            metavar=None,
            choices=sorted(CONTROLLERS),
        ),
    )
    # Tail loss probes; None: the profile's (on for linux).  A loss timer first takes
    # in the frames queued on the device (TcpLayer._on_timer), so a busy shard's
    # probe is not spurious.
    tcp_tlp: bool | None = field(
        default=None,
        metadata=_opt(
            "tail loss probes (RFC 8985; default: the profile's, on for linux as Linux)",
            type=None,
            metavar=None,
            action=argparse.BooleanOptionalAction,
        ),
    )

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


def add_arguments(parser: Any) -> None:
    """The options, on an ``argparse`` parser or argument group: one per field, from
    the field's metadata (``_opt``)."""
    for f in fields(NativeLimits):
        opts = {k: v for k, v in f.metadata.items() if v is not None}
        flag = opts.pop("flag", "--" + f.name.replace("_", "-"))
        if opts.get("action") == "store_false":  # a --no-X switch: its default is "on"
            parser.add_argument(flag, dest=f.name, **opts)
            continue
        if "(default" not in opts["help"]:
            shown = format(f.default, "g") if isinstance(f.default, float) else f.default
            opts["help"] += f" (default {shown})"
        parser.add_argument(flag, dest=f.name, default=f.default, **opts)


def from_args(ns: argparse.Namespace) -> NativeLimits:
    """The limits an ``add_arguments`` parser parsed (ValueError: a bad combination)."""
    return NativeLimits(**{f.name: getattr(ns, f.name) for f in fields(NativeLimits)})
