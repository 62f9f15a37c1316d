"""Linux's choices where the RFCs leave one: named here, once.

``TcpConfig``'s defaults are ``LINUX``'s values (``TcpConfig.profile("rfc")``
or the native stack's ``--tcp-profile rfc`` selects the strict RFC values).

=====================  ===============================  ===============================
choice                 linux (default)                  rfc
=====================  ===============================  ===============================
rto_min                0.2 s (TCP_RTO_MIN)              1 s (RFC 6298 2.4)
rto_initial            1 s (TCP_TIMEOUT_INIT)           1 s (RFC 6298 2.1)
quickack               16: the first segments at the    0: delayed ACK from the start
                       start are ACKed at once          (and no pingpong mode)
                       (quickack mode, TCP_MAX_QUICKACKS);
                       pingpong mode: a reply within
                       the ATO, or a FIN with data,
                       delays the next ACK
delayed_ack            0.04 s (TCP_ATO_MIN)             0.2 s (RFC 1122's limit is
                                                        0.5 s; RFC 5681 suggests 0.2 s)
ACK every              2nd full-sized segment, counted  same (RFC 5681 4.2)
                       in MSS units (GRO-merged
                       segments count as many)
initial window         10 segments (RFC 6928, IW10)     RFC 6928 formula (same here)
wscale                 AUTO: the smallest shift that    AUTO
                       fits the receive buffer in 16
                       bits (tcp_select_initial_window)
SYN options            mss, sackOK+TS (12 bytes),       same layout
                       nop+wscale; nop,nop,sackOK and
                       nop,nop,TS when one is missing
cc                     "cubic" (RFC 9438, beta 0.7,     "newreno" (RFC 5681/6582)
                       C 0.4, fast convergence) + PRR
sack, timestamps       on (tcp_sack=1, tcp_timestamps=1) on
tlp                    on (tcp_early_retrans=3), the    off
                       native server too (--no-tcp-tlp)
zero-window probe      a pure ACK, SEG.SEQ = SND.UNA-1  one byte of new data
                       (tcp_xmit_probe_skb), RTO-based  (RFC 9293 3.8.6.1)
                       backoff
PSH                    the end of each write, and a     same
                       full MSS-multiple buffer once
                       more than half the peer's max
                       window is unpushed (forced_push)
rack                   on (tcp_recovery=1): reo_wnd     off
                       min_RTT/4, at most SRTT
=====================  ===============================  ===============================
"""

from __future__ import annotations

from typing import Any

__all__ = ["AUTO", "LINUX", "PROFILES", "RFC"]

AUTO = -1  # ``TcpConfig.wscale``: computed from the receive buffer

LINUX: dict[str, Any] = {
    "rto_min": 0.2,
    "rto_initial": 1.0,
    "quickack": 16,
    "delayed_ack": 0.04,
    "wscale": AUTO,
    "cc": "cubic",
    "sack": True,
    "timestamps": True,
    # On, as Linux, in the native server too: its loss timers first take in the
    # frames queued on the device (TcpLayer._on_timer), so a busy shard's probe
    # does not beat an ACK that has already arrived.
    "tlp": True,
    "zero_window_probe": "ack",
    "rack": True,
}

RFC: dict[str, Any] = {
    "rto_min": 1.0,
    "rto_initial": 1.0,
    "quickack": 0,
    "delayed_ack": 0.2,
    "wscale": AUTO,
    "cc": "newreno",
    "sack": True,
    "timestamps": True,
    "tlp": False,
    "zero_window_probe": "byte",
    "rack": False,
}

PROFILES = {"linux": LINUX, "rfc": RFC}
