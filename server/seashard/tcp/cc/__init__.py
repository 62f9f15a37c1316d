"""Congestion controllers behind one small interface.

The connection owns loss detection and recovery (SACK/RFC 6675, NewReno, PRR);
a controller only answers how big the window is and how it reacts:

* ``cwnd``/``ssthresh`` in bytes, ``mss``;
* ``on_ack(acked, now, rtt)``: new data acknowledged outside recovery (growth);
* ``enter_recovery(flight, now)``: a loss was detected; sets and returns the new
  ``ssthresh`` (the connection then runs PRR or NewReno towards it);
* ``exit_recovery()``: recovery ended (cwnd = ssthresh);
* ``on_rto(flight, now, repeated)``: the retransmission timer expired;
* ``on_idle()``: restart after idle (RFC 5681 4.1); ``set_mss(mss, iw)``.

``make(name, mss, iw)`` builds one by name: "cubic" (Linux's default) or "newreno".
"""

from __future__ import annotations

from .base import Controller, initial_window
from .cubic import Cubic
from .newreno import Reno

__all__ = ["CONTROLLERS", "Controller", "Cubic", "Reno", "initial_window", "make"]

CONTROLLERS: dict[str, type[Controller]] = {"cubic": Cubic, "newreno": Reno}


def make(name: str, mss: int, iw: int | None = None) -> Controller:
    try:
        cls = CONTROLLERS[name]
    except KeyError:
        have = ", ".join(CONTROLLERS)
        raise ValueError(f"unknown congestion control {name!r} (have: {have})") from None
    return cls(mss, iw)
