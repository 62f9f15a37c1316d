"""SYN cookies (RFC 4987 section 3.6), Linux's scheme, sans-IO.

When a listener's SYN queue is full, the SYN-ACK's initial sequence number
carries what the connection needs and nothing is stored; the peer's ACK echoes
it (``ACK - 1``) and the connection is created from that ACK alone.  As in
Linux (``net/ipv4/syncookies.c``)::

    cookie = H1(4-tuple) + SEG.SEQ + (count << 24)
             + ((H2(4-tuple, count) + mss_index) mod 2**24)

- ``count`` is a time counter that ticks every ``PERIOD`` (64) seconds; a
  cookie is valid while ``now``'s count is less than ``MAX_AGE`` (2) ticks
  past the one it was made in, so it lives between 64 and 128 seconds (Linux:
  ``MAX_SYNCOOKIE_AGE`` 2, 60-second ticks).
- ``mss_index`` selects the MSS from ``MSS_TABLE`` (Linux's ``msstab``): the
  largest entry not above the peer's MSS (536 when the peer's is smaller).
- H1 and H2 are keyed BLAKE2b hashes with a per-process random secret (Linux:
  per boot), so an off-path attacker cannot forge an ACK that passes:  a guess
  with the right count is accepted with probability 4 / 2**24.

Without timestamps a cookie cannot carry the peer's window scale or
SACK-permitted: a cookie connection runs without both, exactly as Linux's does
when the SYN had no timestamp.  With timestamps, as Linux
(``cookie_init_timestamp``/``cookie_timestamp_decode``), the low ``TSBITS`` (6)
bits of our TSval carry them: bits 0-3 the peer's window-scale shift (15: none),
bit 4 SACK-permitted, bit 5 ECN (never set here); the rest is our clock, moved
back one step of 64 when the encoded value would lie in its future.  The ACK's
TSecr echoes that TSval and ``check`` decodes it.  Our TSval clock's offset is
a keyed hash of the 4-tuple (``ts_offset``, Linux's ``secure_tcp_ts_off``), so the
connection built from the ACK goes on with the same clock.

The clock is the ``now`` the caller passes; nothing here reads one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .flowhash import Endpoint, FlowHash, flow_bytes
from .segment import Flags, Segment
from .seq import SEQ_MASK

__all__ = [
    "MAX_AGE",
    "MSS_TABLE",
    "PERIOD",
    "Cookie",
    "CookieGrant",
    "SynCookies",
    "cookie_synack",
]

MSS_TABLE = (536, 1300, 1440, 1460)  # Linux msstab (ipv4): the common MSS values
PERIOD = 64.0  # seconds per tick of the time counter
MAX_AGE = 2  # ticks a cookie stays valid (Linux MAX_SYNCOOKIE_AGE)
COOKIE_BITS = 24
COOKIE_MASK = (1 << COOKIE_BITS) - 1
TSBITS = 6  # Linux TSBITS: the low bits of TSval that carry options
TSMASK = (1 << TSBITS) - 1
TS_OPT_WSCALE_MASK = 0xF
TS_OPT_SACK = 1 << 4
MAX_WSCALE = 14
_COUNT_MASK = SEQ_MASK >> COOKIE_BITS  # the 8 bits of the counter the cookie keeps


@dataclass(frozen=True, slots=True)
class Cookie:
    """What a SYN-ACK sent from a full SYN queue carries: its ISN and the MSS encoded."""

    isn: int
    mss: int
    tsval: int | None = None  # our SYN-ACK's TSval with the options encoded; None: no TS
    wscale: int | None = None  # the peer's shift the TSval carries
    sack_permitted: bool = False


@dataclass(frozen=True, slots=True)
class CookieGrant:
    """What a valid cookie ACK tells: the peer's MSS (rounded down to ``MSS_TABLE``).
    Window scaling and SACK need timestamps to be carried (see the module docstring)."""

    mss: int
    wscale: int | None = None
    sack_permitted: bool = False


def mss_index(peer_mss: int | None) -> int:
    """The ``MSS_TABLE`` index for a peer's MSS option (536 when it sent none)."""
    mss = 536 if peer_mss is None else peer_mss
    for i in range(len(MSS_TABLE) - 1, 0, -1):
        if mss >= MSS_TABLE[i]:
            return i
    return 0


class SynCookies:
    """``SynCookies(secret)``: ``make`` the cookie for a SYN, ``check`` the ACK that
    echoes it.  ``secret`` defaults to 32 random bytes (one per process: per boot)."""

    __slots__ = ("_hash",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._hash = FlowHash(secret, what="cookie")

    @staticmethod
    def count(now: float) -> int:
        """The time counter at ``now`` (seconds, any monotonic origin)."""
        return int(now // PERIOD) & _COUNT_MASK

    def _hash32(self, flow: bytes, count: int, which: int) -> int:
        """H1 (``which`` 1, ``count`` 0) and H2 (``which`` 2)."""
        return self._hash.hash32(flow, struct.pack("!BI", which, count))

    def ts_offset(self, local: Endpoint, remote: Endpoint) -> int:
        """The TSval clock offset for a 4-tuple (keyed, as Linux's secure_tcp_ts_off)."""
        return self._hash32(flow_bytes(local, remote), 0, 3)

    def make(
        self,
        local: Endpoint,
        remote: Endpoint,
        syn_seq: int,
        peer_mss: int | None,
        now: float,
        *,
        timestamps: bool = False,
        wscale: int | None = None,
        sack_permitted: bool = False,
    ) -> Cookie:
        """The cookie ISN for a SYN from ``remote`` to ``local`` with sequence number
        ``syn_seq`` and MSS option ``peer_mss``.  With ``timestamps`` (the SYN had
        TS and we use them) the cookie's ``tsval`` also carries the peer's
        ``wscale`` and ``sack_permitted`` (Linux's cookie_init_timestamp)."""
        count = self.count(now)
        index = mss_index(peer_mss)
        flow = flow_bytes(local, remote)
        h1 = self._hash32(flow, 0, 1)
        h2 = self._hash32(flow, count, 2)
        isn = (h1 + syn_seq + (count << COOKIE_BITS) + ((h2 + index) & COOKIE_MASK)) & SEQ_MASK
        if not timestamps:
            return Cookie(isn, MSS_TABLE[index])
        ws = None if wscale is None else min(wscale, MAX_WSCALE)
        options = TS_OPT_WSCALE_MASK if ws is None else ws
        if sack_permitted:
            options |= TS_OPT_SACK
        ts = (int(now * 1000) + self.ts_offset(local, remote)) & SEQ_MASK
        tsval = (ts & ~TSMASK) | options
        if tsval > ts:  # never a TSval in our clock's future: one step of 64 back
            tsval = ((((ts >> TSBITS) - 1) << TSBITS) | options) & SEQ_MASK
        return Cookie(isn, MSS_TABLE[index], tsval, ws, sack_permitted)

    def check(
        self,
        local: Endpoint,
        remote: Endpoint,
        seq: int,
        ack: int,
        now: float,
        tsecr: int | None = None,
    ) -> CookieGrant | None:
        """The grant for an ACK (sequence ``seq``, acknowledgment ``ack``) that echoes
        a cookie made less than ``MAX_AGE`` ticks ago; None for a forged, damaged
        or expired one.  ``tsecr``: the ACK's TSecr (it echoes the cookie's TSval),
        decoded as Linux's cookie_timestamp_decode into ``wscale``/``sack_permitted``."""
        syn_seq = (seq - 1) & SEQ_MASK
        cookie = (ack - 1) & SEQ_MASK
        count = self.count(now)
        flow = flow_bytes(local, remote)
        cookie = (cookie - self._hash32(flow, 0, 1) - syn_seq) & SEQ_MASK
        diff = (count - (cookie >> COOKIE_BITS)) & _COUNT_MASK
        if diff >= MAX_AGE:
            return None
        made = (count - diff) & _COUNT_MASK
        index = (cookie - self._hash32(flow, made, 2)) & COOKIE_MASK
        if index >= len(MSS_TABLE):
            return None
        if tsecr is None:
            return CookieGrant(MSS_TABLE[index])
        options = tsecr & TSMASK
        ws: int | None = options & TS_OPT_WSCALE_MASK
        if ws == TS_OPT_WSCALE_MASK:
            ws = None
        elif ws is not None and ws > MAX_WSCALE:
            return None  # Linux: an impossible shift means a damaged echo
        return CookieGrant(MSS_TABLE[index], ws, bool(options & TS_OPT_SACK))


def cookie_synack(
    syn: Segment, cookie: Cookie, our_mss: int, window: int, our_wscale: int | None = None
) -> Segment:
    """The SYN-ACK that carries ``cookie``: our MSS and an unscaled window.
    Without a cookie TSval, no window-scale or SACK option (nothing would remember
    them); with one, TS (echoing the SYN's TSval), SACK-permitted and our shift
    (``our_wscale``) when the peer offered them, as the TSval encodes."""
    seg = Segment(
        seq=cookie.isn,
        ack=(syn.seq + 1) & SEQ_MASK,
        flags=Flags.SYN | Flags.ACK,
        window=min(window, 0xFFFF),
        mss=our_mss,
    )
    if cookie.tsval is not None and syn.timestamps is not None:
        seg.timestamps = (cookie.tsval, syn.timestamps[0])
        seg.sack_permitted = cookie.sack_permitted
        if cookie.wscale is not None:
            seg.wscale = our_wscale
    return seg
