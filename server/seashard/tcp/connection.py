"""One TCP connection's state machine, sans-IO.

Segments in (``on_segment``), segments out (``segments_out``), deadlines out
(``next_deadline``/``on_timer``); the clock is whatever ``now`` the caller
passes.  Nothing here touches a socket, a file descriptor, an event loop or a
clock.  Ports, addresses and checksums are the glue's business.

Driving it (the glue): after *every* call (``on_segment``, ``on_timer``,
``send``, ``recv``, ``close``, ``abort``) take ``segments_out()`` and transmit
them, then re-arm one timer at ``next_deadline()``.  Wake readers when
``readable``, writers when ``send_space > 0``; drop the connection from the
table once ``is_closed`` (TIME-WAIT connections stay until ``time_wait_until``).

What is implemented (RFC numbers are the references the code follows):

* RFC 9293 state machine: active and passive open, simultaneous open and close,
  half-close, every state from SYN-SENT to TIME-WAIT.  LISTEN is the caller's
  (``listener.classify_listen`` + ``Connection.accept``).
* Sequence numbers modulo 2**32 everywhere (``seq.py``).
* RFC 5961: RST in window but not exactly at RCV.NXT, any SYN in a
  synchronized state and ACKs outside [SND.UNA - MAX.SND.WND, SND.NXT] get a
  challenge ACK, at most ``challenge_ack_limit`` per ``challenge_ack_interval``
  per connection.
* MSS option (536 when the peer sends none), RFC 7323 window scaling (only
  when both SYNs carry it; never applied to SYN segments; our shift is Linux's,
  the smallest that fits the receive buffer in 16 bits, ``linux_wscale``).
* SYN options in Linux's order and layout (``wire/tcp.py``): mss, sackOK+TS
  (12 bytes), nop+wscale.
* RFC 7323 timestamps: a 1 ms clock plus a per-connection offset (the layer
  passes Linux's keyed hash of the 4-tuple), RTTM (every ACK of new data is
  timed by its TSecr, retransmission or not), PAWS (R1; 24-day idle rule),
  TS.Recent only from a segment covering Last.ACK.sent.  The send MSS is 12
  bytes smaller once TS are on (Linux tcp_current_mss).
* SACK (RFC 2018): blocks for out-of-order data, most recent first, D-SACK
  (RFC 2883) for duplicates (``sack.ReceiverSack``); the sender's scoreboard,
  RFC 6675 recovery (IsLost, pipe, NextSeg rule 1) with PRR-SSRB (RFC 6937) for
  the amount sent, and after a timeout go-back-N that skips SACKed data.
* Tail loss probes (RFC 8985 7, Linux's PTO), SACK connections, ``tlp`` (on
  by default, see ``profile.py``).  RACK's time-based loss detection (RFC 8985
  6, ``rack.py``, ``rack``): per-segment send times, the reordering window
  min_RTT/4 bounded by SRTT, the reorder timer, lost retransmissions found
  lost again; what it marks lost goes through the same RFC 6675/PRR recovery.
* Congestion control behind ``cc/`` (CUBIC by default, NewReno selectable).
* Receive window = free receive buffer, with receiver SWS avoidance and a
  window update when the application reads enough (RFC 9293 3.8.6.2.2).
* Sender SWS avoidance; Nagle optional (off by default, i.e. TCP_NODELAY).
  PSH on the last segment of a write and, as Linux's forced push, where a
  write's MSS-sized buffers leave more than half the peer's largest window
  unpushed (``_mark_pushes``).
* RFC 6298 retransmission timer with Karn's rule, exponential backoff and a
  retry limit; SYN retries; go-back-N after a timeout; RTO reset to 3 s after
  a handshake that needed retransmission (RFC 6298 5.7).
* Without SACK: NewReno recovery (RFC 5681 + RFC 6582, "Impatient" timer
  variant, full-ACK deflation option 1) over the same controller; RFC 6928
  initial window, restart after idle (5681 4.1).
* Delayed ACK (Linux's rule: more than one full-sized segment unACKed, in
  bytes, or after ``delayed_ack``; quick-ACK for the first ``quickack`` ACKs;
  immediate for out-of-order data, for data filling a gap, for data beyond the
  window and for FIN).  Linux's values are named in ``profile.py``.
* TSO and GRO (``tso_max``, off by default): new data leaves in segments of up
  to ``tso_max`` bytes (whole MSS multiples but the tail of the queue) within
  cwnd, the peer's window and PRR, for the device to cut into MSS-sized ones;
  retransmissions and probes stay within the MSS; RACK and the TLP see the
  MSS-sized wire segments.  Segments above the MSS (GRO-merged) are taken whole,
  and rcv_mss measures the peer's MSS units in them, as Linux's gso_size.
* Zero-window probing (Linux's pure ACK at SND.UNA - 1, or with
  ``zero_window_probe="byte"`` one byte of new data; exponential backoff, probing goes
  on while the peer answers; ``max_retries`` unanswered probes abort), keepalive,
  2*MSL TIME-WAIT, optional FIN-WAIT-2 timeout.
* Simultaneous open: the SYN-ACK repeats our SYN's options; the peer's SYN-ACK
  (a duplicate of its SYN) is ACKed at once with a D-SACK of the SYN (Linux).
* Passive open from a SYN cookie (``from_cookie``, see ``syncookies.py``).
* Orphans (``orphan()``: the application closed and reads no more, Linux's
  SOCK_DEAD): a FIN-WAIT-2 timeout, and at most ``orphan_retries``
  retransmissions or zero-window probes even while the peer keeps answering
  with a zero window (Linux ``tcp_orphan_retries``); then a RST, as Linux
  sends when it kills an orphan to reclaim memory.
* Out-of-order data is held within the receive window, at most twice the
  receive buffer in true size (Linux's rcvbuf is twice the window it offers),
  and within the shard's ``ReassemblyBudget``; a segment beyond either is
  dropped (and ACKed, so the peer learns what is missing).

Choices worth knowing:

* TIME-WAIT: a retransmitted FIN is ACKed and restarts 2*MSL.  A new SYN
  (no ACK) whose sequence number is above the old RCV.NXT ends the TIME-WAIT
  (RFC 1122 4.2.2.13, RFC 6191 without timestamps): the connection goes CLOSED
  with ``reopen_syn`` set, and the caller passes that SYN to its listener (with
  an ISS above the old ``snd_max``).  Any other SYN gets a challenge ACK.
  RSTs are ignored in TIME-WAIT (RFC 1337) unless ``rfc1337=False``.
* URG is ignored.  Data carried on a SYN is not accepted (the peer resends it).
* SACK blocks on a full data segment are cut to what fits the MSS (Linux
  shrinks the payload instead); pure ACKs carry them all.
* Linux re-enters quick-ACK mode on some events (after an idle longer than
  the RTO, ECN); here quick-ACK is only at the start.  Linux's pingpong mode is
  kept: data sent within ``delayed_ack`` of data received, or a FIN that
  carries data, makes the next ACK a delayed one until a delayed ACK fires.
* The ACK field of an old duplicate segment (or of a segment refused by a zero
  window) is still processed, after the RFC 5961 ACK check; the segment's data
  is not.  A bare FIN at RCV.NXT is accepted even when the window is zero.
* A peer answering retransmissions with a zero window does not use up the
  retry limit (as Linux), as long as it keeps answering; unless the connection
  is an orphan (``orphan()``).
* ``from_cookie`` connections have no window scaling or SACK unless the cookie's
  TSval carried them (timestamps on, as Linux), and the MSS rounded down to the
  cookie's table.
* ``close()`` is a half-close (FIN after the queued data; receiving goes on);
  ``abort()`` sends RST.  A RST received leaves unread data readable.
* ``error`` is a ``TcpError`` (or None): RESET, REFUSED, TIMED_OUT, ABORTED
  (after our own ``abort()``); the glue maps it to an exception, never by text.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, Final

from . import cc as cc_registry
from .buffers import RecvBuffer, SendBuffer
from .congestion import NewReno
from .errors import TcpStateError
from .listener import rst_for
from .profile import AUTO, LINUX, PROFILES
from .rack import Rack
from .reassembly import Reassembler, ReassemblyBudget
from .rtt import RttEstimator
from .sack import DUPTHRESH, ReceiverSack, SackRecovery, Scoreboard
from .segment import Flags, Segment
from .seq import SEQ_MASK, seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt

__all__ = ["Connection", "GaveUp", "State", "TcpConfig", "TcpError", "TcpStateError", "TcpStats"]

DEFAULT_MSS: Final = 536  # RFC 9293 3.7.1: assumed when the peer sends no MSS option
MAX_WSCALE: Final = 14  # RFC 7323 2.3
MIN_MSS: Final = 64  # floor for a peer's absurdly small MSS option
TLP_WCDELACK: Final = 0.2  # RFC 8985 WCDelAckT (Linux: TCP_RTO_MIN) when one segment is out
TLP_MIN: Final = 0.002  # Linux TCP_TIMEOUT_MIN (2 jiffies) added otherwise
# Our choice, not Linux's (2 jiffies): a probe never sooner than 50 ms.  A Python
# shard under load takes tens of ms to get to a queued ACK, and a sooner probe
# is spurious; scripts with RTTs above 25 ms see Linux's 2*SRTT unchanged.
TLP_FLOOR: Final = 0.05
PAWS_IDLE: Final = 24 * 86400.0  # RFC 7323 5.5: TS.Recent older than 24 days is invalid
TS_OPTION_LEN: Final = 12  # NOP NOP TS: on every segment once timestamps are on
# The largest TSO payload: an IPv4 datagram (65535) less its header and the largest TCP one.
TSO_MAX: Final = 65535 - 20 - 60

# Flags as plain ints inside the machine: IntFlag arithmetic is ~10x slower.
_FIN: Final = int(Flags.FIN)
_SYN: Final = int(Flags.SYN)
_RST: Final = int(Flags.RST)
_PSH: Final = int(Flags.PSH)
_ACK: Final = int(Flags.ACK)
_FLAGS: Final = tuple(Flags(i) for i in range(256))  # int -> Flags without enum machinery
# seq.py's arithmetic, written out in the per-segment functions (a call each is most
# of their cost): a - b is negative (seq_lt) when ((a - b) & SEQ_MASK) >= _HALF.
_HALF: Final = 1 << 31


class State(enum.Enum):
    # Members are singletons: hash them by identity, in C (``state in _SENDING`` runs
    # on every segment; Enum's own __hash__ is Python code).
    __hash__ = object.__hash__

    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"
    CLOSED = "CLOSED"


class TcpError(enum.Enum):
    """Why a connection closed badly (``Connection.error``); the value is the message."""

    RESET = "connection reset"  # the peer's RST
    REFUSED = "connection refused"  # a RST answering our SYN
    TIMED_OUT = "timed out"  # retries, probes or keepalives unanswered
    ABORTED = "connection aborted"  # our own abort()
    CLOSED = "connection closed"  # an error already reported once (the glue sets it)

    def __str__(self) -> str:
        return self.value


class GaveUp(enum.Enum):
    """Why the machine gave up on its peer (``Connection.gave_up``), for counters."""

    SYN_RETRIES = "syn_retries"  # our SYN was never answered
    SYNACK_RETRIES = "synack_retries"  # a half-open connection's SYN-ACK was never ACKed
    RETRIES = "retries"  # data or FIN never acknowledged
    PROBES = "probes"  # zero-window probes never answered
    KEEPALIVE = "keepalive"
    FIN_WAIT_2_TIMEOUT = "fin_wait_2_timeout"
    ORPHAN_RETRIES = "orphan_retries"  # an orphan facing a zero window


_S: Final = State
# States past the handshake (the "synchronized" states of RFC 9293).
_SYNCHRONIZED: Final = frozenset(
    {
        _S.ESTABLISHED,
        _S.FIN_WAIT_1,
        _S.FIN_WAIT_2,
        _S.CLOSE_WAIT,
        _S.CLOSING,
        _S.LAST_ACK,
        _S.TIME_WAIT,
    }
)
# States in which we may still (re)transmit data or our FIN.
_SENDING: Final = frozenset({_S.ESTABLISHED, _S.CLOSE_WAIT, _S.FIN_WAIT_1, _S.CLOSING, _S.LAST_ACK})
# States in which the peer may still send us data.
_RECEIVING: Final = frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2})
# States in which the application may still queue data.
_WRITABLE: Final = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.CLOSE_WAIT})


def linux_wscale(space: int) -> int:
    """Linux's tcp_select_initial_window: the smallest shift that fits ``space``
    (the receive buffer) in the 16-bit window field, at most 14."""
    return min(MAX_WSCALE, max(0, space.bit_length() - 16))


@dataclass
class TcpConfig:
    """One connection's settings.  The defaults are Linux's choices where the
    RFCs leave one (``profile.py`` names and tabulates each: ``LINUX``);
    ``TcpConfig.profile("rfc")`` gives the strict RFC values instead."""

    mss: int = 1460  # what we announce and the most we send
    recv_buffer: int = 256 * 1024
    send_buffer: int = 256 * 1024
    # Our window-scale shift; AUTO: from recv_buffer (Linux); None: don't offer the option.
    wscale: int | None = LINUX["wscale"]
    rto_initial: float = LINUX["rto_initial"]
    rto_min: float = LINUX["rto_min"]
    rto_max: float = 60.0
    max_retries: int = 8  # retransmissions of one segment before "timed out"
    syn_retries: int = 5  # SYN retransmissions before giving up
    synack_retries: int = 5  # SYN-ACK retransmissions, then the half-open is freed (Linux: 5)
    msl: float = 30.0  # TIME-WAIT lasts 2 * msl
    delayed_ack: float = LINUX["delayed_ack"]  # 0 disables delayed ACKs
    quickack: int = LINUX["quickack"]  # ACKs sent at once at the start (Linux quickack mode)
    cc: str = LINUX["cc"]  # congestion control: "cubic" or "newreno" (cc/)
    sack: bool = LINUX["sack"]  # offer/accept SACK-permitted (RFC 2018)
    timestamps: bool = LINUX["timestamps"]  # offer/accept TSopt (RFC 7323)
    tlp: bool = LINUX["tlp"]  # tail loss probes (RFC 8985 7), SACK connections only
    rack: bool = LINUX["rack"]  # RACK time-based loss detection (RFC 8985 6), SACK only
    # Zero-window probe: "ack" (Linux tcp_xmit_probe_skb: a pure ACK at SND.UNA - 1,
    # which the peer must answer with an ACK) or "byte" (one byte of new data, RFC 9293).
    zero_window_probe: str = LINUX["zero_window_probe"]
    keepalive_idle: float | None = None  # None: no keepalive
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    nagle: bool = False
    initial_cwnd: int | None = None  # bytes; None: RFC 6928 min(10*MSS, max(2*MSS, 14600))
    challenge_ack_limit: int = 10  # challenge ACKs per interval (RFC 5961 7)
    challenge_ack_interval: float = 1.0
    rfc1337: bool = True  # ignore RST in TIME-WAIT (RFC 1337); False: RST closes it
    fin_wait_2_timeout: float | None = None  # None: FIN-WAIT-2 waits for the peer forever
    # TSO (the device cuts segments): the largest payload of one outgoing segment;
    # 0: never more than the MSS.  New data only; retransmissions stay within the MSS.
    tso_max: int = 0

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> TcpConfig:
        """The config of a named profile ("linux", "rfc"), with ``overrides``."""
        try:
            values = dict(PROFILES[name])
        except KeyError:
            have = ", ".join(PROFILES)
            raise ValueError(f"unknown tcp profile {name!r} (have: {have})") from None
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def __post_init__(self) -> None:
        if not MIN_MSS <= self.mss <= 65495:
            raise ValueError(f"mss {self.mss} out of range")
        if self.cc not in cc_registry.CONTROLLERS:
            raise ValueError(f"unknown congestion control {self.cc!r}")
        if self.wscale is not None and self.wscale != AUTO and not 0 <= self.wscale <= MAX_WSCALE:
            raise ValueError(f"wscale {self.wscale} out of range 0..{MAX_WSCALE}")
        if self.recv_buffer <= 0 or self.send_buffer <= 0:
            raise ValueError("buffer sizes must be positive")
        if self.recv_buffer > 1 << 30:
            raise ValueError("recv_buffer above 2**30 cannot be advertised")
        if not 0 < self.rto_min <= self.rto_max:
            raise ValueError("need 0 < rto_min <= rto_max")
        if self.zero_window_probe not in ("ack", "byte"):
            raise ValueError(f"zero_window_probe {self.zero_window_probe!r}: 'ack' or 'byte'")
        if not 0 <= self.tso_max <= TSO_MAX:
            raise ValueError(f"tso_max {self.tso_max} out of range 0..{TSO_MAX}")


@dataclass(slots=True)
class TcpStats:
    segments_in: int = 0
    segments_out: int = 0
    bytes_in: int = 0  # payload delivered in order to the receive buffer
    bytes_out: int = 0  # payload sent for the first time
    bytes_retransmitted: int = 0
    retransmits: int = 0  # segments sent again (timeout, fast retransmit, partial ACK)
    timeouts: int = 0  # retransmission-timer expiries
    fast_retransmits: int = 0
    dup_acks: int = 0  # duplicate ACKs received (RFC 5681 definition)
    dup_segments: int = 0  # old (already received) data or FIN received
    ooo_segments: int = 0  # segments queued out of order
    ooo_refused: int = 0  # out-of-order segments dropped: reassembly limit or budget
    challenge_acks: int = 0
    challenge_acks_suppressed: int = 0
    probes: int = 0  # zero-window probes
    keepalives: int = 0  # keepalive probes
    window_updates: int = 0  # ACKs sent because the application read data
    rtt_samples: int = 0
    paws_drops: int = 0  # segments dropped by PAWS (RFC 7323 5)
    sack_recoveries: int = 0  # recoveries run on the SACK scoreboard (RFC 6675)
    dsacks_sent: int = 0
    dsacks_received: int = 0
    tlp_probes: int = 0  # tail loss probes sent (RFC 8985 7)


_LONG_AGO: Final = float("-inf")

# A read-only stand-in for a connection that holds no SACK information (``_board`` None):
# nothing ever mutates it.
_NO_BOARD: Final = Scoreboard()


class Connection:
    """One TCP connection.  Create with :meth:`connect` (active open) or
    :meth:`accept` (passive open from a SYN received on a listener).

    Memory: a shard may hold 50,000 of these idle, so the attributes are slots (no
    ``__dict__``), and what an idle connection does not need is made when first needed:
    the SACK scoreboard (``_board``, None until a SACK block arrives, and again once
    SND.UNA passes every SACKed byte), the out-of-order queue (``_reasm``, None until
    data arrives out of order, and again once the gap fills), the forced-push marks
    (an empty tuple until a write needs one); the receive buffer, RACK's segment list,
    the receiver's SACK blocks and the reassembler's lists are empty tuples or lists
    while empty.  An attribute added to ``__init__`` must be added here too."""

    __slots__ = (
        "config",
        "state",
        "passive",
        "error",
        "gave_up",
        "stats",
        "_clock",
        "iss",
        "irs",
        "snd_una",
        "snd_nxt",
        "snd_max",
        "snd_wnd",
        "snd_wl1",
        "snd_wl2",
        "max_snd_wnd",
        "rcv_nxt",
        "_rcv_adv",
        "_rcv_off",
        "mss",
        "peer_mss",
        "snd_shift",
        "rcv_shift",
        "wscale_ok",
        "sack_ok",
        "ts_ok",
        "ts_offset",
        "ts_recent",
        "_ts_ms",
        "ts_recent_stamp",
        "_last_ack_sent",
        "_seg_tsecr",
        "_quick",
        "_rsack",
        "_board",
        "_srec",
        "_tlp_deadline",
        "_push_marks",
        "_pushed_seq",
        "_rack",
        "_rack_deadline",
        "_tlp_out",
        "_sack_dups",
        "_pingpong",
        "_lrcvtime",
        "_last_seg_start",
        "_sbuf",
        "_sbuf_seq",
        "_fin_queued",
        "_rbuf",
        "_reasm",
        "_budget",
        "fin_received",
        "was_established",
        "_rtt",
        "_ctl",
        "_cc",
        "_rtx_deadline",
        "_retries",
        "_syn_rtx",
        "_rtt_seq",
        "_rtt_time",
        "_persist_deadline",
        "_persist_backoff",
        "_probe_end",
        "_probes_unanswered",
        "_delack_deadline",
        "_ack_now",
        "_rx_unacked",
        "_rcv_mss",
        "_ka_deadline",
        "_ka_probes",
        "nagle",
        "keepalive_idle",
        "keepalive_interval",
        "keepalive_count",
        "_fw2_deadline",
        "fin_wait_2_timeout",
        "orphan_retries",
        "time_wait_until",
        "_last_rx",
        "_last_send",
        "_ch_start",
        "_ch_count",
        "reopen_syn",
        "_out",
        "output_due",
        "fast_path",
        "_sbuf_len",  # issue 11g
    )

    # ------------------------------------------------------------------ creation

    def __init__(
        self,
        iss: int,
        now: float,
        config: TcpConfig | None,
        passive: bool,
        budget: ReassemblyBudget | None = None,
    ) -> None:
        cfg = config if config is not None else TcpConfig()
        self.config = cfg
        self.state = State.CLOSED
        self.passive = passive
        self.error: TcpError | None = None
        self.gave_up: GaveUp | None = None  # None: it did not close by giving up
        self.stats = TcpStats()
        self._clock = now  # the latest ``now`` the caller passed (for TSval)
        iss &= SEQ_MASK
        self.iss = iss
        self.irs = 0
        # Send sequence space.
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss  # one past the highest sequence number ever sent
        self.snd_wnd = 0  # peer's window in bytes (scaled)
        self.snd_wl1 = 0
        self.snd_wl2 = iss
        self.max_snd_wnd = 0
        # Receive sequence space.
        self.rcv_nxt = 0
        self._rcv_adv = 0  # right edge of the window we last advertised
        self._rcv_off = 0  # stream offset of rcv_nxt (bytes delivered in order)
        # Options.
        self.mss = cfg.mss  # effective send MSS
        self.peer_mss: int | None = None
        self.snd_shift = 0  # shift applied to the peer's advertised windows
        self.rcv_shift = 0  # shift applied to the windows we advertise
        self.wscale_ok = False
        self.sack_ok = False  # both SYNs carried SACK-permitted
        self.ts_ok = False  # both SYNs carried timestamps
        # RFC 7323: our TSval clock is milliseconds plus a random per-connection
        # offset (Linux: a keyed hash of the 4-tuple; the caller may pass one).
        self.ts_offset = random.getrandbits(32)
        self.ts_recent = 0
        self._ts_ms = 0  # the latest millisecond our TSval used
        self.ts_recent_stamp = now
        self._last_ack_sent = 0  # RCV.NXT in the last ACK sent (RFC 7323 Last.ACK.sent)
        self._seg_tsecr = 0  # the TSecr of the segment being processed (0: none)
        self._quick = cfg.quickack  # Linux quickack mode: ACKs still to send at once
        self._rsack = ReceiverSack()
        self._board: Scoreboard | None = None  # made by the first SACK block (_sack_ack)
        self._srec: SackRecovery | None = None
        self._tlp_deadline: float | None = None
        # seqs ending a segment with PSH (forced push); a deque once a write needs one
        self._push_marks: deque[int] | tuple[()] = ()
        self._pushed_seq: int | None = None  # Linux tp->pushed_seq
        self._rack = Rack() if cfg.rack else None
        self._rack_deadline: float | None = None  # RACK's reorder timer
        self._tlp_out: int | None = None  # end of an outstanding TLP (one per tail)
        self._sack_dups = 0  # RFC 6675 DupAcks
        # Linux's pingpong (interactive) mode: we answered within the ATO of the last
        # data received, or the peer sent its FIN; ACKs are then delayed, not quick.
        self._pingpong = False
        self._lrcvtime = now  # when data last arrived (Linux icsk_ack.lrcvtime)
        self._last_seg_start: int | None = None  # where the last new segment began (TLP)
        # Buffers.
        self._sbuf = SendBuffer(cfg.send_buffer)
        self._sbuf_seq = seq_add(iss, 1)  # sequence number of _sbuf's first byte
        self._fin_queued = False
        self._rbuf = RecvBuffer()
        self._reasm: Reassembler | None = None  # made by the first out-of-order segment
        self._budget = budget
        self.fin_received = False
        self.was_established = False
        # Timers and their companions.
        self._rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max)
        self._ctl = cc_registry.make(cfg.cc, self.mss, cfg.initial_cwnd)
        self._cc = NewReno(self.mss, recover=iss, iw=cfg.initial_cwnd, ctl=self._ctl)
        self._rtx_deadline: float | None = None
        self._retries = 0
        self._syn_rtx = False  # the SYN (or SYN-ACK) was sent more than once
        self._rtt_seq: int | None = None  # Karn: ACK at/after this ends the timed segment
        self._rtt_time = 0.0
        self._persist_deadline: float | None = None
        self._persist_backoff = 0
        self._probe_end: int | None = None  # end of an outstanding zero-window probe byte
        self._probes_unanswered = 0
        self._delack_deadline: float | None = None
        self._ack_now = False
        self._rx_unacked = 0  # bytes received since we last sent an ACK
        self._rcv_mss = min(cfg.mss, DEFAULT_MSS)  # largest segment seen from the peer
        self._ka_deadline: float | None = None
        self._ka_probes = 0
        # Per-connection copies of the options an application may change.
        self.nagle = cfg.nagle
        self.keepalive_idle = cfg.keepalive_idle
        self.keepalive_interval = cfg.keepalive_interval
        self.keepalive_count = cfg.keepalive_count
        self._fw2_deadline: float | None = None
        self.fin_wait_2_timeout = cfg.fin_wait_2_timeout
        self.orphan_retries: int | None = None  # set by orphan()
        self.time_wait_until: float | None = None
        self._last_rx = now
        self._last_send = now
        self._ch_start = _LONG_AGO  # the first challenge ACK starts an interval (no float kept)
        self._ch_count = 0
        # A SYN that legitimately reopened a connection sitting in TIME-WAIT.
        self.reopen_syn: Segment | None = None
        self._out: list[Segment] | tuple[()] = ()  # a list while segments wait (_queue)
        # on_segment(defer=True) leaves the output to flush_output (a batch's one ACK).
        self.output_due = False
        # Header prediction (_fast_path) on; False runs every segment through the
        # general machine (the differential test compares the two).
        self.fast_path = True
        # len(self._sbuf), kept beside it (write, consume, clear): the per-segment
        # functions read it without a call (issue 11g).
        self._sbuf_len = 0

    @classmethod
    def connect(
        cls,
        iss: int,
        now: float,
        config: TcpConfig | None = None,
        budget: ReassemblyBudget | None = None,
        ts_offset: int | None = None,
    ) -> Connection:
        """Active open: the connection starts in SYN-SENT with its SYN queued.
        ``ts_offset``: our TSval clock's offset (default: random)."""
        c = cls(iss, now, config, passive=False, budget=budget)
        if ts_offset is not None:
            c.ts_offset = ts_offset & SEQ_MASK
        c.state = State.SYN_SENT
        c._send_syn(now, retransmit=False)
        return c

    @classmethod
    def accept(
        cls,
        syn: Segment,
        iss: int,
        now: float,
        config: TcpConfig | None = None,
        budget: ReassemblyBudget | None = None,
        ts_offset: int | None = None,
    ) -> Connection:
        """Passive open from a SYN that reached a listener: SYN-RECEIVED, SYN-ACK queued.
        Data or FIN carried by the SYN are not accepted (the peer will resend them)."""
        if (syn.flags & (_SYN | _ACK | _RST)) != _SYN:
            raise ValueError(f"not a connection request: {syn}")
        c = cls(iss, now, config, passive=True, budget=budget)
        if ts_offset is not None:
            c.ts_offset = ts_offset & SEQ_MASK
        c.stats.segments_in += 1
        c._take_syn(syn, now)
        c.state = State.SYN_RECEIVED
        c._send_syn(now, retransmit=False)
        return c

    @classmethod
    def from_cookie(
        cls,
        ack: Segment,
        iss: int,
        mss: int,
        now: float,
        config: TcpConfig | None = None,
        budget: ReassemblyBudget | None = None,
        *,
        wscale: int | None = None,
        sack_permitted: bool = False,
        ts_offset: int | None = None,
    ) -> Connection:
        """Passive open completed by a SYN cookie: ``ack`` echoes the cookie ``iss``
        (the caller checked it, ``syncookies.SynCookies.check``) and ``mss`` is the
        MSS the cookie encoded.  Nothing of the SYN was kept, so the connection is
        rebuilt from the ACK: the peer's ISN is ``ack.seq - 1``, the window we
        offered is the cookie SYN-ACK's (unscaled).  Window scaling and SACK are
        what the cookie's TSval carried (``wscale``/``sack_permitted``, from
        ``CookieGrant``; none without timestamps), and ``ts_offset`` must be the
        one the cookie SYN-ACK's TSval used.  The ACK is then processed as in
        SYN-RECEIVED (it may carry data or a FIN), which establishes the connection."""
        if not ack.flags & _ACK or ack.flags & (_SYN | _RST) or ack.ack != seq_add(iss, 1):
            raise ValueError(f"not a cookie ACK for ISS {iss}: {ack}")
        c = cls(iss, now, config, passive=True, budget=budget)
        if ts_offset is not None:
            c.ts_offset = ts_offset & SEQ_MASK
        ts = None if ack.timestamps is None else (ack.timestamps[0], 0)
        syn = Segment(
            seq_add(ack.seq, -1),
            0,
            _FLAGS[_SYN],
            ack.window,
            mss=mss,
            wscale=wscale,
            sack_permitted=sack_permitted,
            timestamps=ts,
        )
        c._take_syn(syn, now)
        c.state = State.SYN_RECEIVED
        end = seq_add(iss, 1)
        c.snd_nxt = c.snd_max = end  # our (cookie) SYN-ACK
        c._rcv_adv = seq_add(c.rcv_nxt, min(c.config.recv_buffer, 0xFFFF))
        c._last_ack_sent = c.rcv_nxt
        c.on_segment(ack, now)
        return c

    # ------------------------------------------------------------ app-facing state

    @property
    def is_established(self) -> bool:
        """The handshake completed and the connection is not closed (any synchronized state)."""
        return self.state in _SYNCHRONIZED

    @property
    def is_closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def readable(self) -> bool:
        """``recv()`` would return data, or EOF/an error is there to be seen."""
        return self._rbuf.size > 0 or self.fin_received or self.state is State.CLOSED

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it has been read."""
        return self.fin_received and self._rbuf.size == 0

    @property
    def unread(self) -> int:
        return self._rbuf.size

    @property
    def send_space(self) -> int:
        if self._fin_queued or self.state not in _WRITABLE:
            return 0
        return self._sbuf.space

    @property
    def writable(self) -> bool:
        return self.send_space > 0

    @property
    def unsent(self) -> int:
        """Queued bytes not yet transmitted."""
        return max(0, len(self._sbuf) - seq_diff(self.snd_nxt, self._sbuf_seq))

    @property
    def bytes_in_flight(self) -> int:
        return seq_diff(self.snd_max, self.snd_una)

    @property
    def all_sent_acked(self) -> bool:
        """Everything the application queued (and our FIN, if sent) is acknowledged."""
        return not len(self._sbuf) and self.snd_una == self.snd_max and self._probe_end is None

    @property
    def fin_acked(self) -> bool:
        return self._fin_queued and seq_gt(self.snd_una, self._fin_seq)

    @property
    def cwnd(self) -> int:
        return self._cc.cwnd

    @property
    def ssthresh(self) -> int:
        return self._cc.ssthresh

    @property
    def in_recovery(self) -> bool:
        return self._cc.in_recovery

    @property
    def srtt(self) -> float | None:
        return self._rtt.srtt

    @property
    def rttvar(self) -> float | None:
        return self._rtt.rttvar

    @property
    def rto(self) -> float:
        return self._rtt.rto

    @property
    def reassembly(self) -> Reassembler:
        """The out-of-order data held (to look at: ``held``, ``truesize``, ``ranges()``)."""
        return self._reasm if self._reasm is not None else self._new_reasm()

    def _new_reasm(self) -> Reassembler:
        self._reasm = Reassembler(limit=2 * self.config.recv_buffer, budget=self._budget)
        return self._reasm

    @property
    def rcv_wnd(self) -> int:
        """Receive window currently offered to the peer (bytes beyond rcv_nxt)."""
        return max(0, seq_diff(self._rcv_adv, self.rcv_nxt))

    @property
    def _quick_on(self) -> bool:
        """Linux's ACK policy (quick-ACK and pingpong) is on: the linux profile."""
        return self.config.quickack > 0 and self.config.delayed_ack > 0

    @property
    def _fin_seq(self) -> int:
        return seq_add(self._sbuf_seq, self._sbuf_len)

    def __repr__(self) -> str:
        return (
            f"<Connection {self.state.name} snd_una={self.snd_una} snd_nxt={self.snd_nxt} "
            f"snd_max={self.snd_max} snd_wnd={self.snd_wnd} rcv_nxt={self.rcv_nxt} "
            f"rcv_wnd={self.rcv_wnd} cwnd={self.cwnd} error={self.error!r}>"
        )

    # --------------------------------------------------------------- app calls

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """Queue as much of ``data`` as the send buffer takes; returns that count
        (0 when full: wait for ``send_space``).  Transmits at once what the
        windows allow."""
        self._clock = now
        if self._fin_queued or self.state not in _WRITABLE:
            raise TcpStateError(str(self.error or "connection closing"))
        n = self._sbuf.write(data)
        if n:
            self._sbuf_len += n
            if n > self.mss and self.max_snd_wnd > 1:
                self._mark_pushes(n)
            else:  # what _mark_pushes does for a write of at most one MSS
                self._pushed_seq = (self._sbuf_seq + self._sbuf_len) & SEQ_MASK
            # _output, written out (a sending state: data first, else a due ACK)
            if self.state in _SENDING and not self._send_data(now) and self._ack_now:
                self._emit_ack()
        return n

    def _mark_pushes(self, n: int) -> None:
        """Linux tcp_sendmsg's forced_push: the write is cut into buffers of
        size_goal (the MSS times what fits in half the peer's largest window); a
        full buffer that brings more than half that window unpushed gets PSH
        (tcp_mark_push).  The write's last byte always does (tcp_push)."""
        end = seq_add(self._sbuf_seq, len(self._sbuf))
        start = seq_add(end, -n)
        half = self.max_snd_wnd >> 1
        mss = self.mss
        if half > 0 and n > mss:
            pushed = self._pushed_seq if self._pushed_seq is not None else start
            goal = max(mss, half // mss * mss) if self.max_snd_wnd > DEFAULT_MSS else mss
            pos = goal
            while pos < n:
                at = seq_add(start, pos)
                if seq_diff(at, pushed) > half:
                    if not self._push_marks:
                        self._push_marks = deque()
                    self._push_marks.append(at)
                    pushed = at
                pos += goal
        self._pushed_seq = end

    def recv(self, max_bytes: int | None = None, now: float | None = None) -> bytes:
        """Take up to ``max_bytes`` (all, when None) in-order received bytes.
        Returns b"" when nothing is buffered (check ``at_eof``/``error``).
        Reading may queue a window update."""
        return self._read(max_bytes, False, now)

    def recv_some(self, limit: int, now: float | None = None) -> bytes:
        """What a stream's read returns: all in-order bytes when they total at most
        ``limit``, else whole received chunks up to it (at least one): a bulk reader is
        not handed one join of every 64 KB segment a batch brought (a copy, and for
        large joins a fresh mapping whose pages fault in)."""
        return self._read(limit, True, now)

    def _read(self, n: int | None, whole_chunks: bool, now: float | None) -> bytes:
        rbuf = self._rbuf
        if now is not None:
            self._clock = now
        if not rbuf.size:
            return b""
        data = rbuf.read_some(n) if whole_chunks and n is not None else rbuf.read(n)
        if self.state in _RECEIVING and not self.fin_received and not self._ack_now:
            # A window update, if the window can open significantly (the receiver-side
            # SWS rule allows moving the right edge, and the new window is at least
            # twice what the peer currently sees).  It is made due, not queued: it goes
            # out on whatever the caller sends before it collects the output (an echo's
            # reply), else alone.
            cap = self.config.recv_buffer
            free = cap - rbuf.size
            limit = 0xFFFF << self.rcv_shift
            if free > limit:
                free = limit
            cur = (self._rcv_adv - self.rcv_nxt) & SEQ_MASK
            if cur >= _HALF:
                cur = 0
            half = cap // 2
            mss = self.mss
            if free - cur >= (half if half < mss else mss) and free >= 2 * cur:
                self.stats.window_updates += 1
                self._ack_now = self.output_due = True
        return data

    def close(self, now: float) -> None:
        """The CLOSE call: our FIN follows the queued data.  Receiving continues
        (half-close) until the peer's FIN.  Idempotent."""
        self._clock = now
        st = self.state
        if st is State.SYN_SENT:
            self._set_closed(None)
            return
        if self._fin_queued or st not in _WRITABLE:
            return
        self._fin_queued = True
        if st is State.ESTABLISHED:
            self.state = State.FIN_WAIT_1
        elif st is State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        # SYN-RECEIVED: the FIN goes out once the handshake completes.
        if self.state in _SENDING:
            self._output(now)

    def abort(self, now: float) -> None:
        """The ABORT call: send RST (when the peer knows the connection), go to CLOSED."""
        self._clock = now
        st = self.state
        if st is State.CLOSED:
            return
        if st in (
            State.SYN_RECEIVED,
            State.ESTABLISHED,
            State.FIN_WAIT_1,
            State.FIN_WAIT_2,
            State.CLOSE_WAIT,
        ):
            self._emit(self.snd_max, _RST | _ACK)
        self._set_closed(TcpError.ABORTED)

    def orphan(self, now: float, fin_wait_2_timeout: float | None, retries: int) -> None:
        """The application closed and will never read or write again (Linux: the
        socket is orphaned).  From now on FIN-WAIT-2 lasts at most
        ``fin_wait_2_timeout`` seconds (or the configured one, if shorter), and at
        most ``retries`` retransmissions or zero-window probes are sent even while
        the peer keeps answering with a zero window; then the connection is reset."""
        self.orphan_retries = retries
        current = self.fin_wait_2_timeout
        if fin_wait_2_timeout is not None and (current is None or fin_wait_2_timeout < current):
            self.fin_wait_2_timeout = fin_wait_2_timeout  # the shorter of the two holds
        if self.state is State.FIN_WAIT_2 and self.fin_wait_2_timeout is not None:
            deadline = now + self.fin_wait_2_timeout
            if self._fw2_deadline is None or deadline < self._fw2_deadline:
                self._fw2_deadline = deadline

    def end_time_wait(self) -> None:
        """Leave TIME-WAIT at once (Linux, when its table of TIME-WAIT sockets is full)."""
        if self.state is State.TIME_WAIT:
            self._set_closed(None)

    def set_nagle(self, enabled: bool) -> None:
        """Nagle's algorithm on (True) or off (False, like TCP_NODELAY)."""
        self.nagle = enabled

    def set_keepalive(
        self,
        idle: float | None,
        now: float,
        interval: float | None = None,
        count: int | None = None,
    ) -> None:
        """Keepalive after ``idle`` seconds without a segment from the peer, then
        ``count`` probes ``interval`` apart, then "timed out".  ``idle=None`` turns it off."""
        self.keepalive_idle = idle
        if interval is not None:
            self.keepalive_interval = interval
        if count is not None:
            self.keepalive_count = count
        if idle is None:
            self._ka_deadline = None
            self._ka_probes = 0
        elif self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self._ka_probes = 0
            self._ka_deadline = max(self._last_rx + idle, now)

    @property
    def output_pending(self) -> bool:
        """Segments wait in ``segments_out()`` (or a read made an ACK due)."""
        return bool(self._out) or self.output_due

    def segments_out(self) -> list[Segment]:
        """Take the segments that must be sent now, in order (first what a read or a
        deferred ``on_segment`` made due)."""
        if self.output_due:
            self.flush_output(self._clock)
        out = self._out
        if not out:
            return []
        self._out = ()
        return out  # type: ignore[return-value]  # a non-empty _out is a list

    def next_deadline(self) -> float | None:
        """When ``on_timer`` must next be called (None: no timer running)."""
        if self.state is State.TIME_WAIT:
            return self.time_wait_until
        # Written out: a tuple of seven and a loop over it, on every segment, cost more.
        best = self._rtx_deadline
        d = self._tlp_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._rack_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._persist_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._delack_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._ka_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._fw2_deadline
        if d is not None and (best is None or d < best):
            best = d
        return best

    def on_timer(self, now: float) -> None:
        """Run every timer that is due at ``now`` (calling early does nothing)."""
        self._clock = now
        st = self.state
        if st is State.CLOSED:
            return
        if st is State.TIME_WAIT:
            if self.time_wait_until is not None and now >= self.time_wait_until:
                self._set_closed(None)
            return
        if self._fw2_deadline is not None and now >= self._fw2_deadline:
            self.gave_up = GaveUp.FIN_WAIT_2_TIMEOUT
            self._set_closed(None)
            return
        if self._rtx_deadline is not None and now >= self._rtx_deadline:
            self._tlp_deadline = None
            self._on_rto(now)
            if self.state is State.CLOSED:
                return
        if self._rack_deadline is not None and now >= self._rack_deadline:
            self._on_rack_timer(now)
        if self._tlp_deadline is not None and now >= self._tlp_deadline:
            self._on_tlp(now)
        if self._persist_deadline is not None and now >= self._persist_deadline:
            self._on_persist(now)
            if self.state is State.CLOSED:
                return
        if self._ka_deadline is not None and now >= self._ka_deadline:
            self._on_keepalive(now)
            if self.state is State.CLOSED:
                return
        if self._delack_deadline is not None and now >= self._delack_deadline:
            self._delack_deadline = None
            self._ack_now = True
            self._pingpong = False  # Linux: a delayed ACK that fired leaves pingpong mode
        self._output(now)

    # ------------------------------------------------------------ segment input

    def on_segment(self, seg: Segment, now: float, defer: bool = False) -> None:
        """Process one arriving segment (RFC 9293 3.10.7).  ``defer``: what it makes
        due (ACK, data) is sent by the next :meth:`flush_output` instead of now, so
        a batch of segments gets one ACK (the glue's batching)."""
        self._clock = now
        self.stats.segments_in += 1
        ts = seg.timestamps
        self._seg_tsecr = ts[1] if ts is not None and self.ts_ok else 0
        st = self.state
        if st is State.ESTABLISHED and self.fast_path and self._fast_path(seg, ts, now):
            if defer:
                self.output_due = True
            else:
                self._output(now)
            return
        if st is State.CLOSED:
            rst = rst_for(seg)
            if rst is not None:
                self._queue(rst)
                self.stats.segments_out += 1
            return
        if st is State.SYN_SENT:
            self._on_syn_sent(seg, now)
        elif st is State.TIME_WAIT:
            self._on_time_wait(seg, now)
            return
        else:
            self._on_synchronized(seg, now)
        if self.state is not State.CLOSED:
            if defer:
                self.output_due = True
            else:
                self._output(now)

    def flush_output(self, now: float) -> None:
        """Send what deferred ``on_segment`` calls made due (nothing if none)."""
        if self.output_due:
            self.output_due = False
            self._clock = now
            if self.state is not State.CLOSED:
                self._output(now)

    def _fast_path(self, seg: Segment, ts: tuple[int, int] | None, now: float) -> bool:
        """Header prediction (Van Jacobson; Linux tcp_rcv_established): in
        ESTABLISHED, the next in-order segment (data, or a pure ACK of new data or
        of nothing outstanding) with only ACK/PSH set, timestamps that pass PAWS,
        no SACK blocks, nothing in recovery, no hole, no probe and room for its
        data: handled here with exactly what the general machine
        (``_on_synchronized``) would do for it.  Anything else: False, and the
        general machine runs.

        Unlike Linux, a changed window does not leave the fast path: our receiver
        moves its right edge with every read (no rounding to MSS multiples), so
        the peer's window changes on most segments; outside a duplicate ACK (not
        taken here) the window is only used by the update rule, done below."""
        # (Sequence arithmetic written out, as seq.py defines it: this runs per segment.)
        flags = int(seg.flags)
        seq = seg.seq
        if (flags & 0xF7) != _ACK or seq != self.rcv_nxt or seg.sack_blocks:
            return False
        ts_ok = self.ts_ok
        if ts_ok and (ts is None or ((ts[0] - self.ts_recent) & SEQ_MASK) >= _HALF):
            return False
        payload = seg.payload
        plen = len(payload)
        ack = seg.ack
        una = self.snd_una
        if (
            self._srec is not None
            or self._cc.in_recovery
            or self._probe_end is not None
            or self._reasm
            or self.fin_received
        ):
            return False
        d = (ack - una) & SEQ_MASK
        if d >= _HALF:
            return False  # below SND.UNA
        snd_max = self.snd_max
        if 0 < ((ack - snd_max) & SEQ_MASK) < _HALF:
            return False  # beyond SND.MAX
        if not d and not plen and snd_max != una:
            return False  # a duplicate ACK: the general machine counts it
        if plen:
            rcv_wnd = (self._rcv_adv - seq) & SEQ_MASK
            if rcv_wnd >= _HALF or plen > rcv_wnd:
                return False
        # --- from here on exactly _on_synchronized's steps for this segment ---
        if ts_ok:
            dl = (seq - self._last_ack_sent) & SEQ_MASK
            if not dl or dl >= _HALF:
                self.ts_recent = ts[0]  # type: ignore[index]  # RFC 7323 4.3
                self.ts_recent_stamp = now
        self._last_rx = now
        self._probes_unanswered = 0
        if self._ka_deadline is not None or self._ka_probes:
            self._ka_reset(now)
        if d:
            self._ack_advance(ack, now)
            if self.sack_ok:
                if self._board is not None or self._srec is not None:
                    self._sack_ack(seg, d, True, now)
                else:
                    # _sack_ack for an advancing ACK with no SACK blocks, no recovery
                    # and nothing SACKed, written out
                    rack = self._rack
                    if rack is not None:
                        rack.on_ack(self.snd_una, self._board, now)
                        if rack.segs or rack.lost_to is not None:
                            self._rack_detect(now)
                        else:
                            self._rack_deadline = None
                    self._sack_dups = 0
        self._window_update(seq, ack, seg.window << self.snd_shift)
        if plen:
            # _process_text for in-order data that fits, with no hole to fill:
            # _deliver and _ack_check, written out.
            if type(payload) is not bytes:
                payload = bytes(payload)
            self._rbuf.append(payload)
            self.rcv_nxt = (seq + plen) & SEQ_MASK
            self._rcv_off += plen
            self.stats.bytes_in += plen
            if plen > self._rcv_mss:
                self._measure_rcv_mss(plen)
            unacked = self._rx_unacked = self._rx_unacked + plen
            self._lrcvtime = now
            cfg = self.config
            if (
                (self._quick > 0 and not self._pingpong)
                or unacked > self._rcv_mss
                or cfg.delayed_ack <= 0
            ):
                self._ack_now = True
            elif self._delack_deadline is None and not self._ack_now:
                self._delack_deadline = now + cfg.delayed_ack
        return True

    def _on_syn_sent(self, seg: Segment, now: float) -> None:
        flags = int(seg.flags)
        ack_ok = False
        if flags & _ACK:
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & _RST:
                    self._emit(seg.ack, _RST)
                return
            ack_ok = True
        if flags & _RST:
            if ack_ok:
                self._set_closed(TcpError.REFUSED)
            return
        if not flags & _SYN:
            return
        self._take_syn(seg, now)
        self._rcv_adv = seq_add(self.rcv_nxt, min(self.config.recv_buffer, 0xFFFF))
        self._last_rx = now
        if ack_ok:
            # SYN-ACK: our SYN is acknowledged (its window is not scaled).
            self._ack_advance(seg.ack, now)
            self._establish(now)
            self._ack_now = True
            if seg.payload or flags & _FIN:
                self._process_text(seq_add(seg.seq, 1), seg.payload, bool(flags & _FIN), now)
        else:
            # Simultaneous open: answer with SYN-ACK (our SYN again, now acking theirs).
            self.state = State.SYN_RECEIVED
            self._send_syn(now, retransmit=True)

    def _on_synchronized(self, seg: Segment, now: float) -> None:
        """SYN-RECEIVED and every synchronized state except TIME-WAIT."""
        flags = int(seg.flags)
        seq = seg.seq
        payload = seg.payload
        st = self.state
        wnd = seg.window << self.snd_shift
        if flags & _SYN:
            if st is State.SYN_RECEIVED and seq == self.irs and not flags & _RST:
                if not flags & _ACK:
                    # The peer retransmitted its SYN: our SYN-ACK was lost.
                    self._send_syn(now, retransmit=True)
                    return
                # Simultaneous open: the peer's SYN-ACK completes our handshake.
                # Go on with the SYN stripped; a SYN's window is never scaled.
                seq = seq_add(seq, 1)
                flags &= ~_SYN
                wnd = seg.window
                # Its SYN is a duplicate of the one taken: Linux (tcp_data_queue, an
                # old segment) ACKs at once with a D-SACK of it (RFC 2883).
                if self.sack_ok:
                    self._rsack.dsack = (self._rcv_off - 1, self._rcv_off)
                self._ack_now = True
            else:
                # RFC 5961 4.2: any SYN in a synchronized state, whatever its sequence number.
                self._challenge_ack(now)
                return

        rcv_nxt = self.rcv_nxt
        rcv_wnd = seq_diff(self._rcv_adv, rcv_nxt)
        if rcv_wnd < 0:
            rcv_wnd = 0
        off = seq_diff(seq, rcv_nxt)
        ts = seg.timestamps if self.ts_ok else None

        if (
            ts is not None
            and not flags & _RST
            and seq_lt(ts[0], self.ts_recent)
            and now - self.ts_recent_stamp <= PAWS_IDLE
        ):
            # RFC 7323 5.3 R1 (PAWS): an old TSval; ACK (D-SACK for data) and drop.
            self.stats.paws_drops += 1
            if payload and self.sack_ok and off < 0:
                base = self._rcv_off
                self._rsack.dsack = (base + off, base + min(off + len(payload), 0))
            self._ack_now = True
            return

        if flags & _RST:
            # RFC 5961 3.2: exactly RCV.NXT resets; elsewhere in the window: challenge ACK.
            if off == 0:
                self._on_rst()
            elif 0 < off < rcv_wnd:
                self._challenge_ack(now)
            return

        plen = len(payload)
        fin = bool(flags & _FIN)
        seg_len = plen + fin
        # RFC 9293 3.10.7.4, first check: sequence number acceptability.
        if seg_len == 0:
            acceptable = off == 0 if rcv_wnd == 0 else 0 <= off < rcv_wnd
        elif rcv_wnd == 0:
            # Zero window: only a bare FIN at RCV.NXT (it needs no buffer space).
            acceptable = off == 0 and plen == 0
        else:
            last = off + seg_len - 1
            acceptable = 0 <= off < rcv_wnd or 0 <= last < rcv_wnd
        if not acceptable:
            if off < 0 and seg_len:
                self.stats.dup_segments += 1
                if plen and self.sack_ok:
                    # RFC 2883: report the duplicate (Linux tcp_send_dupack).
                    self._rsack.dsack = (self._rcv_off + off, self._rcv_off + min(off + plen, 0))
            # Old duplicates and zero-window probes still carry a valid ACK field:
            # use it (RFC 9293 3.10.7.4 "special allowance"; RFC 5961 5.2 checks it).
            if off <= 0 and flags & _ACK and st is not State.SYN_RECEIVED:
                self._last_rx = now
                self._process_ack(seg, seq, wnd, flags, now)
                if self.state is State.CLOSED:
                    return
            self._ack_now = True
            return

        if ts is not None and seq_le(seq, self._last_ack_sent) and seq_ge(ts[0], self.ts_recent):
            # RFC 7323 4.3: TS.Recent from a segment that covers Last.ACK.sent.
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
        if not flags & _ACK:
            return
        self._last_rx = now
        self._probes_unanswered = 0
        if self._ka_deadline is not None or self._ka_probes:
            self._ka_reset(now)
        if st is State.SYN_RECEIVED:
            ack = seg.ack
            if seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_max):
                self.snd_wnd = wnd
                self.snd_wl1 = seq
                self.snd_wl2 = ack
                # Linux's max_window starts from the handshake's ACK (the child
                # socket is made from it, tcp_create_openreq_child), not the SYN.
                self.max_snd_wnd = wnd
                self._ack_advance(ack, now)
                self._establish(now)
            else:
                self._emit(ack, _RST)
                return
        elif not self._process_ack(seg, seq, wnd, flags, now):
            return

        if plen or fin:
            if self.state in _RECEIVING:
                self._process_text(seq, payload, fin, now)
            else:
                # Data or FIN after the peer's FIN: cannot happen legitimately; re-ACK.
                self._ack_now = True

    def _on_time_wait(self, seg: Segment, now: float) -> None:
        flags = int(seg.flags)
        if flags & _RST:
            if self.config.rfc1337:
                return  # RFC 1337: a RST must not cut TIME-WAIT short
            off = seq_diff(seg.seq, self.rcv_nxt)
            if off == 0:
                self._set_closed(None)
            elif 0 < off < self.rcv_wnd:
                self._challenge_ack(now)
            return
        if flags & _SYN:
            if not flags & _ACK and seq_gt(seg.seq, self.rcv_nxt):
                # RFC 9293 3.6.1 / RFC 1122 4.2.2.13 (RFC 6191 without timestamps):
                # a new incarnation may reuse the 4-tuple if its ISN is above the
                # old RCV.NXT.  This connection ends; the caller hands ``reopen_syn``
                # to its listener (with an ISS above our snd_max).
                self.reopen_syn = seg
                self._set_closed(None)
                return
            self._challenge_ack(now)
            return
        if flags & _FIN and seq_add(seg.seq, seg.seg_len) == self.rcv_nxt:
            # Retransmitted FIN: our last ACK was lost.  ACK again, restart 2*MSL.
            self.time_wait_until = now + 2 * self.config.msl
            self.stats.dup_segments += 1
            self._emit_ack()
            return
        if seg.seg_len or seg.seq != self.rcv_nxt:
            # Linux tcp_timewait_state_process: an out-of-window segment is ACKed
            # (and, carrying an ACK, restarts TIME-WAIT); a bare ACK at RCV.NXT is not.
            if flags & _ACK:
                self.time_wait_until = now + 2 * self.config.msl
            self._emit_ack()

    # ------------------------------------------------------------- ACK processing

    def _process_ack(self, seg: Segment, seq: int, wnd: int, flags: int, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth check (with RFC 5961 5.2).  Returns False when
        the segment must be dropped (or the connection closed)."""
        ack = seg.ack
        una = self.snd_una
        limit = self.snd_max
        if self._probe_end is not None and seq_gt(self._probe_end, limit):
            limit = self._probe_end
        if seq_gt(ack, limit) or seq_lt(ack, seq_add(una, -self.max_snd_wnd)):
            self._challenge_ack(now)
            return False
        sack = self.sack_ok
        if ack != una:
            if seq_gt(ack, una):
                self._ack_advance(ack, now)
                if sack and self.state in _SENDING:
                    self._sack_ack(seg, seq_diff(ack, una), True, now)
        elif (
            not seg.payload
            and not flags & (_SYN | _FIN)
            and (wnd == self.snd_wnd or sack)
            and self.snd_max != una
            and self._probe_end is None
            and self.state in _SENDING
        ):
            self.stats.dup_acks += 1
            if sack:
                self._sack_ack(seg, 0, False, now)
            else:
                flight = seq_diff(self.snd_max, una)
                if self._cc.on_dup_ack(ack, flight, self.snd_max, now):
                    self.stats.fast_retransmits += 1
                    self._retransmit_first(now)
        elif sack and seg.sack_blocks and self.state in _SENDING:
            self._sack_ack(seg, 0, False, now)
        if seq_ge(ack, self.snd_una):  # only ACKs >= SND.UNA update the window
            self._window_update(seq, ack, wnd)
        return self.state is not State.CLOSED

    def _window_update(self, seq: int, ack: int, wnd: int) -> None:
        """RFC 9293's SND.WL1/SND.WL2 rule: take the peer's (scaled) window ``wnd``
        from a segment newer than the last one that set it.  Both paths call it."""
        wl1 = self.snd_wl1
        dw = (wl1 - seq) & SEQ_MASK  # seq_lt(wl1, seq) or equal, written out
        if dw >= _HALF or (not dw and (((self.snd_wl2 - ack) & SEQ_MASK) or _HALF) >= _HALF):
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if wnd and self._persist_deadline is not None:
                self._persist_deadline = None
                self._persist_backoff = 0

    def _ack_advance(self, ack: int, now: float) -> None:
        """SND.UNA moves to ``ack``: free acked data, sample RTT, congestion control,
        timers, and the state changes that our FIN's acknowledgment brings."""
        # (seq.py's arithmetic written out: see _HALF.)
        sbuf = self._sbuf
        sbuf_seq = self._sbuf_seq
        nbytes = (ack - sbuf_seq) & SEQ_MASK
        if nbytes >= _HALF:
            nbytes -= 1 << 32
        queued = self._sbuf_len
        if nbytes > queued:
            nbytes = queued
        if nbytes > 0:
            sbuf.consume(nbytes)
            self._sbuf_len = queued - nbytes
            self._sbuf_seq = (sbuf_seq + nbytes) & SEQ_MASK
        self.snd_una = ack
        probe_end = self._probe_end
        if probe_end is not None and ((ack - probe_end) & SEQ_MASK) < _HALF:
            self._probe_end = None
        if 0 < ((ack - self.snd_max) & SEQ_MASK) < _HALF:
            self.snd_max = ack  # the zero-window probe byte was accepted
        if ((self.snd_nxt - ack) & SEQ_MASK) >= _HALF:
            self.snd_nxt = ack
        self._retries = 0
        self._probes_unanswered = 0
        self._persist_backoff = 0
        tsecr = self._seg_tsecr
        rtt_seq = self._rtt_seq
        if tsecr and nbytes > 0:
            # RFC 7323 4 (RTTM): the echoed TSval times this ACK, retransmission or not.
            ms = int(now * 1000)  # _ts_now(now), written out
            if ms < self._ts_ms:
                ms = self._ts_ms
            self._ts_ms = ms
            r = (ms + self.ts_offset - tsecr) & SEQ_MASK
            if r < 0x7FFFFFFF:
                self._rtt.sample(r / 1000)
                self.stats.rtt_samples += 1
            self._rtt_seq = None
        # Karn: only a segment never retransmitted is timed.
        elif rtt_seq is not None and ((ack - rtt_seq) & SEQ_MASK) < _HALF:
            self._rtt.sample(now - self._rtt_time)
            self.stats.rtt_samples += 1
            self._rtt_seq = None
        restart = True
        tlp_out = self._tlp_out
        if tlp_out is not None and ((ack - tlp_out) & SEQ_MASK) < _HALF:
            self._tlp_out = None  # the probe's episode is over
        if self.sack_ok:
            board = self._board
            if board is not None:
                board.advance(ack)
                if not board:
                    self._board = None  # nothing SACKed above SND.UNA any more
            self._cc.dup_acks = 0
            if nbytes > 0 and self.was_established and self._srec is None:
                self._ctl.on_ack(nbytes, now, self._rtt.srtt)
        elif nbytes > 0 and self.was_established:
            flight_after = seq_diff(self.snd_max, ack)
            retransmit, restart = self._cc.on_new_ack(
                nbytes, ack, flight_after, now, self._rtt.srtt
            )
            if retransmit:
                self._retransmit_first(now)
        else:
            self._cc.dup_acks = 0
        if ack == self.snd_max and self._probe_end is None:
            self._rtx_deadline = None  # RFC 6298 5.2
            self._tlp_deadline = None
            self._rack_deadline = None
            # Nothing in flight: the equal sequence numbers share one int object
            # (CPython makes one per computed value, 32 bytes each, held by every
            # idle connection; compiled, they are unboxed and this costs nothing).
            self.snd_max = self.snd_nxt = ack
            if self._sbuf_seq == ack:
                self._sbuf_seq = ack
            if self._pushed_seq == ack:
                self._pushed_seq = ack
        elif restart or self._rtx_deadline is None:
            self._rtx_deadline = now + self._rtt.rto  # RFC 6298 5.3
            self._arm_tlp(now)
        if self._fin_queued and seq_gt(ack, self._fin_seq):
            st = self.state
            if st is State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
                if self.fin_wait_2_timeout is not None:
                    self._fw2_deadline = now + self.fin_wait_2_timeout
            elif st is State.CLOSING:
                self._enter_time_wait(now)
            elif st is State.LAST_ACK:
                self._set_closed(None)

    # ------------------------------------------------------ SACK loss recovery

    def _sack_ack(self, seg: Segment, acked: int, advanced: bool, now: float) -> None:
        """An ACK on a SACK connection: update the scoreboard, then RFC 6675
        (enter/leave recovery) and PRR (how much may go out now)."""
        board = self._board
        una = self.snd_una
        newly = 0
        if seg.sack_blocks:
            if board is None:
                board = self._board = Scoreboard()
            newly, dsack = board.update(seg.sack_blocks, una, self.snd_max)
            if dsack:
                self.stats.dsacks_received += 1
        delivered = acked + newly
        mss = self.mss
        rack = self._rack
        if rack is not None:
            rack.on_ack(una, board, now)  # _rack_update, written out
            if rack.segs or rack.lost_to is not None:
                self._rack_detect(now)
            else:
                self._rack_deadline = None  # (_rack_detect's answer then)
        srec = self._srec
        if srec is not None:
            if seq_ge(una, srec.recover):
                self._srec = None  # RFC 6675: the recovery point is acknowledged
                self._cc.in_recovery = False
                self._ctl.exit_recovery()  # Linux tcp_end_cwnd_reduction: cwnd = ssthresh
            else:
                srec.prr(delivered, self._pipe(), mss)
                self._ctl.cwnd = max(self._pipe() + srec.quota, mss)
            return
        if advanced:
            self._sack_dups = 0
        elif newly > 0:
            self._sack_dups += 1  # RFC 6675: a duplicate ACK carries new SACK information
        if board is None or not board:
            return
        lost = seq_gt(self._lost_to(), una)
        if (lost or self._sack_dups >= DUPTHRESH) and seq_ge(una, self._cc.recover):
            self._enter_sack_recovery(delivered, now)

    def _lost_to(self) -> int:
        """Below this seq every unSACKed byte is lost: RFC 6675's IsLost, or RACK's."""
        una = self.snd_una
        board = self._board
        lost = una if board is None else board.lost_boundary(una, self.mss)
        rack = self._rack
        if rack is not None and rack.lost_to is not None and seq_gt(rack.lost_to, lost):
            return rack.lost_to
        return lost

    def _rack_update(self, now: float) -> None:
        """RFC 8985 6.2 on an ACK: RACK from what it delivered, then loss detection
        and the reorder timer."""
        rack = self._rack
        assert rack is not None
        una = self.snd_una
        rack.on_ack(una, self._board, now)
        self._rack_detect(now)

    def _rack_detect(self, now: float) -> None:
        rack = self._rack
        assert rack is not None
        if not rack.segs and rack.lost_to is None:
            self._rack_deadline = None  # nothing sent is undelivered: what detect() finds
            return
        sacked_segs = 0 if self._board is None else self._board.sacked // self.mss
        rtt = self._rtt
        wnd = rack.reo_wnd(rtt.min_rtt, rtt.srtt, self._srec is not None, sacked_segs, DUPTHRESH)
        timeout = rack.detect(self.snd_una, now, wnd)
        # Linux arms the reorder timer TCP_TIMEOUT_MIN (2 jiffies) late (tcp_rack_mark_lost).
        self._rack_deadline = None if timeout is None else now + timeout + TLP_MIN

    def _on_rack_timer(self, now: float) -> None:
        """RFC 8985 6.3: the reorder timer fired: detect again, and start (or go on
        with) recovery for what is lost now."""
        self._rack_deadline = None
        if self._rack is None or self.state not in _SENDING or self.snd_una == self.snd_max:
            return
        self._rack_detect(now)
        una = self.snd_una
        if not seq_gt(self._lost_to(), una) and self._rack.relost() is None:
            return
        srec = self._srec
        if srec is None:
            if seq_ge(una, self._cc.recover):
                self._enter_sack_recovery(0, now)
        else:
            srec.prr(0, self._pipe(), self.mss)
            self._ctl.cwnd = max(self._pipe() + srec.quota, self.mss)

    def _enter_sack_recovery(self, delivered: int, now: float) -> None:
        ctl = self._ctl
        prior = ctl.cwnd
        flight = seq_diff(self.snd_max, self.snd_una)
        ssthresh = ctl.enter_recovery(flight, now)
        srec = SackRecovery(self.snd_max, self.snd_una, max(prior, self.mss), ssthresh)
        self._srec = srec
        self._cc.in_recovery = True
        self._cc.recover = self.snd_max
        self._tlp_deadline = None
        self.stats.sack_recoveries += 1
        self.stats.fast_retransmits += 1
        srec.prr(delivered, self._pipe(), self.mss)
        ctl.cwnd = max(self._pipe() + srec.quota, self.mss)

    def _pipe(self) -> int:
        """RFC 6675 pipe: outstanding bytes not SACKed and not lost, plus the lost
        ones retransmitted (below HighRxt)."""
        board = self._board if self._board is not None else _NO_BOARD
        una = self.snd_una
        total = seq_diff(self.snd_max, una) - board.sacked
        lost_to = self._lost_to()
        high_rxt = self._srec.high_rxt if self._srec is not None else una
        if seq_lt(high_rxt, una):
            high_rxt = una
        pipe = total - board.unsacked(una, una, lost_to) + board.unsacked(una, una, high_rxt)
        if self._rack is not None:
            for a, b in self._rack.relost_ranges():  # lost retransmissions: not in flight
                pipe -= board.unsacked(una, a, b)
        return max(0, pipe)

    def _sack_retransmit(self, now: float) -> None:
        """RFC 6675 NextSeg rule 1 within PRR's quota: the first unSACKed, lost
        bytes above HighRxt (the first one always, at the start of recovery)."""
        srec = self._srec
        if srec is None:
            return
        board = self._board if self._board is not None else _NO_BOARD
        una = self.snd_una
        rack = self._rack
        while srec.quota > 0 and rack is not None:
            seg = rack.relost()  # a lost retransmission goes first: it is the oldest hole
            if seg is None:
                break
            a = seg.start if seq_gt(seg.start, una) else una  # partly acked
            end = self._retransmit_at(a, seq_diff(seg.end, a), now)
            if end == a:
                return
            n = seq_diff(end, a)
            srec.quota -= n
            srec.prr_out += n
        while srec.quota > 0:
            lost_to = self._lost_to()
            start = srec.high_rxt if seq_gt(srec.high_rxt, una) else una
            hole = None
            for a, b in board.holes(una, board.high(una)):
                if seq_gt(b, start):
                    hole = (a if seq_ge(a, start) else start, b)
                    break
            if hole is None:
                return
            s, e = hole
            if not (seq_lt(s, lost_to) or (s == una and srec.prr_out == 0)):
                return
            end = self._retransmit_at(s, seq_diff(e, s), now)
            if end == s:
                return
            n = seq_diff(end, s)
            srec.high_rxt = end
            srec.quota -= n
            srec.prr_out += n

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 7.2 (as Linux tcp_schedule_loss_probe): a tail loss probe
        2*SRTT after the last send, plus the worst-case delayed ACK when one segment
        is in flight, never later than the RTO."""
        srtt = self._rtt.srtt
        if (
            not self.config.tlp
            or not self.sack_ok
            or self._srec is not None
            or self._tlp_out is not None
            or srtt is None
            or self.snd_una == self.snd_max
            or self._persist_deadline is not None
            or self.state not in _SENDING
        ):
            self._tlp_deadline = None
            return
        pto = 2 * srtt
        flight = (self.snd_max - self.snd_una) & SEQ_MASK  # seq_diff, written out
        if flight >= _HALF:
            flight -= 1 << 32
        pto += TLP_WCDELACK if flight <= self.mss else TLP_MIN
        if pto < TLP_FLOOR:
            pto = TLP_FLOOR
        when = now + pto
        if self._rtx_deadline is not None and self._rtx_deadline < when:
            when = self._rtx_deadline
        self._tlp_deadline = when

    def _on_tlp(self, now: float) -> None:
        """The probe timeout fired: one new segment if the windows allow, else the
        last segment again (RFC 8985 7.3); then the RTO watches."""
        self._tlp_deadline = None
        if self.state not in _SENDING or self.snd_una == self.snd_max or self._srec is not None:
            return
        off = seq_diff(self.snd_nxt, self._sbuf_seq)
        avail = len(self._sbuf) - off
        wnd_room = seq_diff(seq_add(self.snd_wl2, self.snd_wnd), self.snd_nxt)
        if self.snd_nxt == self.snd_max and avail > 0 and wnd_room > 0:
            n = min(self.mss, avail, wnd_room)
            flags = _ACK
            if n == avail:
                flags |= _PSH | (_FIN if self._fin_queued else 0)
            seq = self.snd_nxt
            self._emit_data(seq, flags, self._sbuf.peek(off, n), now)
            self.snd_nxt = seq_add(seq, n + (1 if flags & _FIN else 0))
        else:
            last = self._last_seg_start
            if last is None or seq_lt(last, self.snd_una):
                last = self.snd_una
            self._retransmit_at(last, seq_diff(self.snd_max, last), now)
        self._tlp_out = self.snd_max
        self.stats.tlp_probes += 1
        self._rtx_deadline = now + self._rtt.rto

    # ------------------------------------------------------------ data receiving

    def _process_text(
        self, seq: int, payload: bytes | bytearray | memoryview, fin: bool, now: float
    ) -> None:
        """RFC 9293 3.10.7.4 seventh and eighth checks: segment text and FIN."""
        rcv_wnd = seq_diff(self._rcv_adv, self.rcv_nxt)
        if rcv_wnd < 0:
            rcv_wnd = 0
        off = seq_diff(seq, self.rcv_nxt)
        plen = len(payload)
        if type(payload) is not bytes:
            payload = bytes(payload)  # a memoryview into a frame must not be kept
        if off < 0:
            cut = -off
            if cut > plen:
                fin = False  # that FIN was already received
            self.stats.dup_segments += 1
            if plen and self.sack_ok:
                self._rsack.dsack = (self._rcv_off + off, self._rcv_off + min(off + plen, 0))
            payload = payload[cut:] if cut < plen else b""
            plen = len(payload)
            off = 0
        if off + plen > rcv_wnd:
            # Beyond the window: keep what fits; the FIN after it is not accepted.
            keep = rcv_wnd - off
            payload = payload[:keep] if keep > 0 else b""
            plen = len(payload)
            fin = False
            self._ack_now = True  # tell the sender at once where the window ends
        if not plen and not fin:
            self._ack_now = True
            return
        reasm = self._reasm
        if off:
            # Out of order: hold it, and send a duplicate ACK at once (RFC 5681 4.2).
            if reasm is None:
                reasm = self._new_reasm()
            self.stats.ooo_segments += 1
            start = self._rcv_off + off
            kept = reasm.insert(start, payload) if plen else 0
            if kept < 0:
                self.stats.ooo_refused += 1
                fin = False
            elif plen and self.sack_ok:
                if kept == 0:
                    self._rsack.dsack = (start, start + plen)  # RFC 2883: all held already
                else:
                    self._rsack.add(start, start + plen)
            if fin:
                reasm.fin_offset = self._rcv_off + off + plen
            self._ack_now = True
            return
        had_gap = reasm is not None and bool(reasm)
        if plen:
            self._deliver(payload)
            if plen > self._rcv_mss:
                self._measure_rcv_mss(plen)
        if had_gap:
            assert reasm is not None
            for chunk in reasm.pop_ready(self._rcv_off):
                self._deliver(chunk)
            if reasm.fin_offset is not None and reasm.fin_offset == self._rcv_off:
                fin = True
            if not reasm:
                self._reasm = None  # the gap filled: an idle connection holds no queue
            self._rsack.advance(self._rcv_off)
            self._ack_now = True  # a segment that fills (part of) a gap is ACKed at once
        if fin:
            self._on_fin(now, with_data=plen > 0)
            return
        self._ack_check(plen, now)

    def _ack_check(self, plen: int, now: float) -> None:
        """In-order data taken: an ACK now or a delayed one (also the fast path's)."""
        self._rx_unacked += plen
        # Linux __tcp_ack_snd_check: at once in quickack mode, or when more than one
        # full-sized segment (bytes, so a GRO-merged one counts as many) is unACKed.
        self._lrcvtime = now
        quick = self._quick > 0 and not self._pingpong
        if quick or self._rx_unacked > self._rcv_mss or self.config.delayed_ack <= 0:
            self._ack_now = True
        elif self._delack_deadline is None and not self._ack_now:
            self._delack_deadline = now + self.config.delayed_ack

    def _measure_rcv_mss(self, plen: int) -> None:
        """Linux tcp_measure_rcv_mss: the largest segment seen, at most our MSS.  A
        segment above our MSS was merged by GRO (or never cut by the local sender's
        TSO): Linux measures its gso_size, the segments the peer sent, which under
        our MSS option are our MSS less the timestamp option."""
        cap = self.config.mss
        if plen > cap:
            plen = cap - TS_OPTION_LEN if self.ts_ok else cap
        if plen > self._rcv_mss:
            self._rcv_mss = plen

    def _deliver(self, data: bytes) -> None:
        n = len(data)
        self._rbuf.append(data)
        self.rcv_nxt = (self.rcv_nxt + n) & SEQ_MASK
        self._rcv_off += n
        self.stats.bytes_in += n

    def _on_fin(self, now: float, with_data: bool = False) -> None:
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.fin_received = True
        if self._reasm is not None:
            self._reasm.clear()
            self._reasm = None
        self._rsack.clear()
        st = self.state
        if with_data and st is State.ESTABLISHED and self._quick_on and not self._ack_now:
            # Linux tcp_fin: CLOSE-WAIT enters pingpong mode; the ACK of a FIN that
            # carries data is delayed (a bare FIN's is not: measured a few ms).
            self._pingpong = True
            if self._delack_deadline is None:
                self._delack_deadline = now + self.config.delayed_ack
        else:
            self._ack_now = True
        if st is State.ESTABLISHED:
            self.state = State.CLOSE_WAIT
        elif st is State.FIN_WAIT_1:
            if self.fin_acked:
                self._enter_time_wait(now)
            else:
                self.state = State.CLOSING
        elif st is State.FIN_WAIT_2:
            self._enter_time_wait(now)

    # ------------------------------------------------------------------ output

    def _output(self, now: float) -> None:
        st = self.state
        sent = False
        if st in _SENDING:
            if (
                self._srec is None
                and not self._fin_queued
                and self.snd_nxt == self._sbuf_seq
                and not self._sbuf_len
            ):
                # Nothing queued (what _send_data finds, in short): arm the RTO only.
                if (
                    self.snd_una != self.snd_max
                    and self._rtx_deadline is None
                    and self._persist_deadline is None
                ):
                    self._rtx_deadline = now + self._rtt.rto
            else:
                sent = self._send_data(now)
        if self._ack_now and not sent and st is not State.CLOSED and st is not State.SYN_SENT:
            self._emit_ack()

    def _send_data(self, now: float) -> bool:
        """Send what the windows allow; returns True if a segment (with ACK) went out."""
        sent = False
        sbuf = self._sbuf
        total = self._sbuf_len
        mss = self.mss
        # TSO: new data goes out in segments of up to tso_max (whole MSS multiples but
        # the tail of the queue), the device cutting them into MSS-sized ones.
        tso = self.config.tso_max
        cc = self._cc
        ctl = cc.ctl  # (cc.cwnd is ctl.cwnd)
        nagle = self.nagle
        if (
            total
            and self.snd_max == self.snd_una
            and now - self._last_send > self._rtt.rto
            and self.was_established
        ):
            cc.on_idle()  # RFC 5681 4.1: restart from the initial window after idling
        srec = self._srec
        if srec is not None:
            before = len(self._out)
            self._sack_retransmit(now)
            sent = len(self._out) > before
        board = self._board if self.sack_ok and self._board else None
        new_data = False
        avail = 0
        wnd_room = 0
        # (seq.py's arithmetic written out: see _HALF.)
        sbuf_seq = self._sbuf_seq
        while True:
            snd_nxt = self.snd_nxt
            off = (snd_nxt - sbuf_seq) & SEQ_MASK
            if off >= _HALF:
                off -= 1 << 32
            avail = total - off
            wnd_room = (self.snd_wl2 + self.snd_wnd - snd_nxt) & SEQ_MASK
            if wnd_room >= _HALF:
                wnd_room -= 1 << 32
            if avail > 0:
                n = mss
                behind = ((snd_nxt - self.snd_max) & SEQ_MASK) >= _HALF  # below SND.MAX
                if tso > mss and not behind:
                    n = tso
                    half = self.max_snd_wnd >> 1  # Linux tcp_bound_to_half_wnd
                    if half < n and self.max_snd_wnd > DEFAULT_MSS:
                        n = half if half > mss else mss
                if board is not None and behind:
                    # Going back after a timeout: skip what the peer SACKed.
                    end = board.sacked_at(self.snd_nxt, self.snd_una)
                    if end is not None:
                        self.snd_nxt = end
                        continue
                    nxt = board.next_start(self.snd_nxt, self.snd_una)
                    if nxt is not None and seq_diff(nxt, self.snd_nxt) < n:
                        n = seq_diff(nxt, self.snd_nxt)
                in_flight = (snd_nxt - self.snd_una) & SEQ_MASK
                if in_flight >= _HALF:
                    in_flight -= 1 << 32
                # In recovery PRR decides how much goes out (srec.quota).
                room = srec.quota if srec is not None else ctl.cwnd - in_flight
                if wnd_room < room:
                    room = wnd_room
                if avail < n:
                    n = avail
                if room < n:
                    n = room
                if n <= 0:
                    break
                if n > mss and n < avail:
                    n -= n % mss  # a TSO segment's wire segments are all full-sized
                if n < mss and in_flight > 0:
                    # Sender SWS avoidance: a short segment that does not empty the
                    # queue waits unless it is at least half the largest window seen.
                    if n < avail and n < self.max_snd_wnd // 2:
                        break
                    if nagle:
                        break
                flags = _ACK
                marks = self._push_marks
                if marks:
                    while marks and seq_le(marks[0], self.snd_nxt):
                        marks.popleft()
                    if marks and seq_diff(marks[0], self.snd_nxt) <= n:
                        n = seq_diff(marks.popleft(), self.snd_nxt)
                        flags |= _PSH  # a forced push (_mark_pushes)
                if n == avail:
                    flags |= _PSH
                    if self._fin_queued:
                        flags |= _FIN
                seq = self.snd_nxt
                self._emit_data(seq, flags, sbuf.peek(off, n), now)
                self.snd_nxt = (seq + n + (1 if flags & _FIN else 0)) & SEQ_MASK
                if srec is not None:
                    srec.quota -= n
                    srec.prr_out += n
                sent = True
                new_data = True
                if flags & _FIN:
                    break
            elif avail == 0 and self._fin_queued:
                seq = self.snd_nxt
                self._emit_data(seq, _ACK | _FIN, b"", now)
                self.snd_nxt = seq_add(seq, 1)
                sent = True
                break
            else:
                break
        if (
            avail > 0
            and wnd_room <= 0
            and self.snd_una == self.snd_max
            and self._persist_deadline is None
        ):
            # Peer's window is closed and nothing is in flight: probe it.
            self._rtx_deadline = None
            self._persist_deadline = now + self._persist_interval()
        elif (
            self.snd_una != self.snd_max
            and self._rtx_deadline is None
            and self._persist_deadline is None
        ):
            self._rtx_deadline = now + self._rtt.rto
        if new_data:
            self._arm_tlp(now)  # Linux re-schedules the probe after every write
        return sent

    def _emit_data(self, seq: int, flags: int, payload: bytes | memoryview, now: float) -> None:
        """Emit a data and/or FIN segment; bookkeeping for retransmissions and RTT."""
        n = len(payload)
        end = (seq + n + (flags & _FIN)) & SEQ_MASK
        stats = self.stats
        rack = self._rack
        snd_max = self.snd_max
        if ((seq - snd_max) & SEQ_MASK) >= _HALF:  # below SND.MAX: a retransmission
            stats.retransmits += 1
            stats.bytes_retransmitted += n
            self._rtt_seq = None  # Karn's rule
            if rack is not None:
                rack.retransmitted(seq, end, now, self.snd_una)
        else:
            stats.bytes_out += n
            mss = self.mss
            if n > mss:  # TSO: what RACK and the TLP see are the wire segments
                last = seq_add(seq, (n - 1) // mss * mss)
                if rack is not None and self.sack_ok:
                    if not flags & _FIN:
                        rack.sent(seq, end, now, mss)  # one entry for them (Rack.sent)
                    else:
                        s = seq
                        while s != last:
                            nxt = seq_add(s, mss)
                            rack.sent(s, nxt, now)
                            s = nxt
                        rack.sent(last, end, now)
                self._last_seg_start = last
            else:
                if rack is not None and self.sack_ok and n:
                    rack.sent(seq, end, now)
                self._last_seg_start = seq
            cfg = self.config  # (_quick_on, written out)
            if (
                n
                and cfg.quickack > 0
                and cfg.delayed_ack > 0
                and now - self._lrcvtime < cfg.delayed_ack
            ):
                self._pingpong = True  # Linux tcp_event_data_sent
            if self._rtt_seq is None:
                self._rtt_seq = end
                self._rtt_time = now
        if 0 < ((end - snd_max) & SEQ_MASK) < _HALF:
            self.snd_max = end
        if self._rtx_deadline is None:
            self._rtx_deadline = now + self._rtt.rto  # RFC 6298 5.1
        self._last_send = now
        self._emit(seq, flags, payload)

    def _retransmit_at(self, seq: int, limit: int, now: float) -> int:
        """Send again up to min(MSS, ``limit``) bytes already sent from ``seq`` (with
        the FIN if they reach it).  Returns the sequence number after them."""
        off = seq_diff(seq, self._sbuf_seq)
        sent = seq_diff(self.snd_max, self._sbuf_seq)
        queued = len(self._sbuf) - off
        n = min(self.mss, limit, queued, max(sent - off, 0))
        flags = _ACK
        fin = self._fin_queued and seq_gt(self.snd_max, self._fin_seq)
        if n == queued and fin and limit > n:
            flags |= _FIN
        if n <= 0 and not flags & _FIN:
            return seq
        if n < 0:
            n = 0
        if n and n == queued:
            flags |= _PSH
        self._emit_data(seq, flags, self._sbuf.peek(off, n) if n else b"", now)
        return seq_add(seq, n + (1 if flags & _FIN else 0))

    def _retransmit_first(self, now: float) -> int:
        """Send the first unacknowledged segment again (fast retransmit, partial ACK,
        timeout).  Returns the sequence number after it."""
        una = self.snd_una
        off = seq_diff(una, self._sbuf_seq)
        sent = seq_diff(self.snd_max, self._sbuf_seq)  # data (+FIN) ever sent
        queued = len(self._sbuf) - off
        n = min(self.mss, queued, max(sent - off, 0))
        if n <= 0 and queued > 0:
            n = min(self.mss, queued)  # window probe situation: nothing was sent yet
        flags = _ACK
        if n == queued and self._fin_queued:
            flags |= _FIN
        if n <= 0 and not flags & _FIN:
            return una
        payload = self._sbuf.peek(off, n) if n > 0 else b""
        if n and n == queued:
            flags |= _PSH
        self._emit_data(una, flags, payload, now)
        return seq_add(una, n + (1 if flags & _FIN else 0))

    def _emit(self, seq: int, flags: int, payload: bytes | memoryview = b"") -> None:
        if flags & _ACK:
            # The window field of an outgoing non-SYN segment, written out here.
            # Receiver SWS avoidance (RFC 9293 3.8.6.2.2): the right edge only advances
            # by at least min(RCV.BUFF/2, MSS).  The offered window is rounded *down* to
            # the scale granularity, so the peer may see the edge retreat by less than
            # one unit (RFC 7323 2.4); ``_rcv_adv`` keeps the furthest edge ever offered
            # and everything up to it stays acceptable.  Accepted data therefore never
            # exceeds the free buffer space.
            shift = self.rcv_shift
            cap = self.config.recv_buffer
            free = cap - self._rbuf.size
            if free < 0:
                free = 0
            rcv_nxt = self.rcv_nxt
            adv = self._rcv_adv
            cur = (adv - rcv_nxt) & SEQ_MASK
            if cur >= _HALF:
                cur = 0
            half = cap // 2
            mss = self.mss
            target = free if free - cur >= (half if half < mss else mss) else cur
            wire = target >> shift
            if wire > 0xFFFF:
                wire = 0xFFFF
            edge = (rcv_nxt + (wire << shift)) & SEQ_MASK
            if 0 < ((edge - adv) & SEQ_MASK) < _HALF:
                self._rcv_adv = edge
            seg = Segment(seq, rcv_nxt, _FLAGS[flags], wire, payload)
            if self.ts_ok:
                ms = int(self._clock * 1000)  # _ts_now(self._clock), written out
                if ms < self._ts_ms:
                    ms = self._ts_ms
                self._ts_ms = ms
                seg.timestamps = ((ms + self.ts_offset) & SEQ_MASK, self.ts_recent)
            rsack = self._rsack
            if self.sack_ok and (rsack.blocks or rsack.dsack is not None):
                base = self.rcv_nxt - self._rcv_off
                if self._rsack.dsack is not None:
                    self.stats.dsacks_sent += 1
                limit = 3 if self.ts_ok else 4
                if payload:
                    # Options and payload within the MSS (Linux shrinks the payload;
                    # here a full data segment carries fewer blocks, or none).
                    room = self.mss - len(payload)
                    limit = min(limit, max(0, (room - 4) // 8))
                if limit:
                    seg.sack_blocks = tuple(
                        ((base + a) & SEQ_MASK, (base + b) & SEQ_MASK)
                        for a, b in self._rsack.take(limit)
                    )
            self._last_ack_sent = self.rcv_nxt
            if self._quick > 0:
                self._quick -= 1  # Linux tcp_dec_quickack_mode, per segment sent
            self._ack_now = False
            self._delack_deadline = None
            self._rx_unacked = 0
        else:
            seg = Segment(seq, 0, _FLAGS[flags], 0, payload)
        out = self._out  # _queue(seg), written out
        if out:
            out.append(seg)  # type: ignore[union-attr]
        else:
            self._out = [seg]
        self.stats.segments_out += 1

    def _queue(self, seg: Segment) -> None:
        """Queue ``seg`` for ``segments_out`` (an idle connection holds no list)."""
        out = self._out
        if out:
            out.append(seg)  # type: ignore[union-attr]
        else:
            self._out = [seg]

    def _emit_ack(self) -> None:
        """A bare ACK.  Its sequence number is SND.MAX unless that lies beyond the
        peer's window (after a zero-window probe), so the peer finds it acceptable."""
        s = self.snd_max
        wnd_end = seq_add(self.snd_wl2, self.snd_wnd)
        if seq_gt(s, wnd_end):
            s = wnd_end if seq_gt(wnd_end, self.snd_una) else self.snd_una
        self._emit(s, _ACK)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 challenge ACK, at most ``challenge_ack_limit`` per interval."""
        cfg = self.config
        if now - self._ch_start >= cfg.challenge_ack_interval:
            self._ch_start = now
            self._ch_count = 0
        if self._ch_count >= cfg.challenge_ack_limit:
            self.stats.challenge_acks_suppressed += 1
            return
        self._ch_count += 1
        self.stats.challenge_acks += 1
        self._emit_ack()

    # ------------------------------------------------------------- handshake

    def _take_syn(self, seg: Segment, now: float) -> None:
        """Record the peer's SYN: IRS, options, its (unscaled) window.  SACK and
        timestamps are on when both SYNs carry them (we offer what the config says;
        a SYN-ACK only answers what the SYN offered)."""
        cfg = self.config
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        self._rcv_adv = self.rcv_nxt
        self._last_ack_sent = self.rcv_nxt
        self.sack_ok = cfg.sack and seg.sack_permitted
        ts = seg.timestamps
        self.ts_ok = cfg.timestamps and ts is not None
        if ts is not None and self.ts_ok:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now

        self.peer_mss = seg.mss
        peer_mss = seg.mss if seg.mss is not None else DEFAULT_MSS
        self.mss = max(MIN_MSS, min(cfg.mss, peer_mss))
        self._rcv_mss = min(self.mss, DEFAULT_MSS)
        if self.ts_ok:
            self.mss = max(MIN_MSS, self.mss - TS_OPTION_LEN)
        if seg.wscale is not None and cfg.wscale is not None:
            self.wscale_ok = True
            self.snd_shift = min(seg.wscale, MAX_WSCALE)
            self.rcv_shift = self._offered_wscale() or 0  # not None: cfg.wscale is set
        else:
            self.wscale_ok = False
            self.snd_shift = 0
            self.rcv_shift = 0
        self.snd_wnd = seg.window
        self.max_snd_wnd = seg.window
        self.snd_wl1 = seg.seq
        self.snd_wl2 = seg.ack if seg.flags & _ACK else self.iss

    def _send_syn(self, now: float, retransmit: bool) -> None:
        cfg = self.config
        synack = self.state is State.SYN_RECEIVED
        win = min(max(cfg.recv_buffer - self._rbuf.size, 0), 0xFFFF)  # never scaled
        tsval = self._ts_now(now)
        if synack:
            wscale = self.rcv_shift if self.wscale_ok else None
            sack, ts_on = self.sack_ok, self.ts_ok
            if not self.passive:
                # Simultaneous open: Linux's SYN-ACK repeats its SYN's options
                # (tcp_syn_options), whatever the peer's SYN offered.
                sack, ts_on = cfg.sack, cfg.timestamps
                wscale = self._offered_wscale()
            seg = Segment(
                self.iss,
                self.rcv_nxt,
                _FLAGS[_SYN | _ACK],
                win,
                mss=cfg.mss,
                wscale=wscale,
                sack_permitted=sack,
                timestamps=(tsval, self.ts_recent if self.ts_ok else 0) if ts_on else None,
            )
            self._rcv_adv = seq_add(self.rcv_nxt, win)
            self._last_ack_sent = self.rcv_nxt
            self._ack_now = False
        else:
            seg = Segment(
                self.iss,
                0,
                _FLAGS[_SYN],
                win,
                mss=cfg.mss,
                wscale=self._offered_wscale(),
                sack_permitted=cfg.sack,
                timestamps=(tsval, 0) if cfg.timestamps else None,
            )
        end = seq_add(self.iss, 1)
        self.snd_nxt = end
        if seq_lt(self.snd_max, end):
            self.snd_max = end
        if retransmit:
            self.stats.retransmits += 1
            self._rtt_seq = None
            self._syn_rtx = True
        else:
            self._rtt_seq = end
            self._rtt_time = now
        if self._rtx_deadline is None:
            self._rtx_deadline = now + self._rtt.rto
        self._queue(seg)
        self.stats.segments_out += 1

    def _offered_wscale(self) -> int | None:
        return self.offered_wscale(self.config)

    @staticmethod
    def offered_wscale(cfg: TcpConfig) -> int | None:
        """Our window-scale shift: AUTO computes it from the receive buffer as Linux
        does; an explicit one is capped to a granularity of at most 1/8 of the
        receive buffer (a huge shift on a small buffer would round every offered
        window down to zero)."""
        ws = cfg.wscale
        if ws is None:
            return None
        if ws == AUTO:
            return linux_wscale(cfg.recv_buffer)
        return min(ws, max(0, (cfg.recv_buffer // 8).bit_length() - 1))

    def _ts_now(self, now: float) -> int:
        """Our TSval: a 1 ms clock (RFC 7323 5.4 allows 1 ms..1 s) plus the offset."""
        ms = int(now * 1000)
        if ms < self._ts_ms:
            ms = self._ts_ms  # never backwards, whatever clock readings the caller mixes
        self._ts_ms = ms
        return (ms + self.ts_offset) & SEQ_MASK

    def _establish(self, now: float) -> None:
        self.state = State.FIN_WAIT_1 if self._fin_queued else State.ESTABLISHED
        self.was_established = True
        self._cc.set_mss(self.mss, self.config.initial_cwnd)
        self._cc.recover = self.snd_una
        if self._syn_rtx and self._rtt.samples == 0:
            self._rtt.reset(3.0)  # RFC 6298 5.7: the SYN was lost and nothing was measured
        self._retries = 0
        self._last_send = now
        if self.keepalive_idle is not None:
            self._ka_reset(now)

    # ------------------------------------------------------------------ timers

    def _on_rto(self, now: float) -> None:
        self._rtx_deadline = None
        st = self.state
        cfg = self.config
        if st is State.SYN_SENT or st is State.SYN_RECEIVED:
            self.stats.timeouts += 1
            self._retries += 1
            synack = st is State.SYN_RECEIVED and self.passive
            if self._retries > (cfg.synack_retries if synack else cfg.syn_retries):
                self.gave_up = GaveUp.SYNACK_RETRIES if synack else GaveUp.SYN_RETRIES
                self._set_closed(TcpError.TIMED_OUT)
                return
            self._rtt.backoff()
            self._send_syn(now, retransmit=True)
            return
        if self.snd_una == self.snd_max:
            return
        self.stats.timeouts += 1
        orphan = self.orphan_retries
        if self.snd_wnd == 0 and now - self._last_rx < 2 * cfg.rto_max and orphan is None:
            # The peer keeps answering with a zero window: retransmissions act as
            # window probes and do not count towards the retry limit (as Linux,
            # but not for an orphan).
            pass
        else:
            self._retries += 1
            limit = cfg.max_retries if orphan is None else min(cfg.max_retries, orphan)
            if self._retries > limit:
                if orphan is not None:
                    self._give_up_orphan(now)
                else:
                    self.gave_up = GaveUp.RETRIES
                    self._set_closed(TcpError.TIMED_OUT)
                return
        flight = seq_diff(self.snd_max, self.snd_una)
        self._srec = None
        self._tlp_out = None
        self._sack_dups = 0
        self._rack_deadline = None
        if self._rack is not None:
            self._rack.clear()  # after a timeout everything is resent (go-back-N)
        self._cc.on_timeout(flight, self.snd_max, repeated=self._retries > 1, now=now)
        self._rtt.backoff()
        self._rtt_seq = None
        # Go-back-N: the first segment now, the rest as ACKs open the window.
        self.snd_nxt = self.snd_una
        self.snd_nxt = self._retransmit_first(now)

    def _give_up_orphan(self, now: float) -> None:
        self._emit(self.snd_max, _RST | _ACK)
        self.gave_up = GaveUp.ORPHAN_RETRIES
        self._set_closed(TcpError.TIMED_OUT)

    def _persist_interval(self) -> float:
        return min(self._rtt.rto * (1 << min(self._persist_backoff, 16)), self.config.rto_max)

    def _on_persist(self, now: float) -> None:
        self._persist_deadline = None
        if self.state not in _SENDING:
            return
        off = seq_diff(self.snd_nxt, self._sbuf_seq)
        avail = len(self._sbuf) - off
        wnd_room = seq_diff(seq_add(self.snd_wl2, self.snd_wnd), self.snd_nxt)
        if avail <= 0 or wnd_room > 0:
            self._persist_backoff = 0
            return  # _output sends normally
        if self._probes_unanswered > self.config.max_retries:
            self.gave_up = GaveUp.PROBES
            self._set_closed(TcpError.TIMED_OUT)
            return
        if self.orphan_retries is not None and self._persist_backoff >= self.orphan_retries:
            # An orphan whose peer keeps its window shut (answered or not): Linux's
            # tcp_probe_timer gives up on it after tcp_orphan_retries backed-off probes.
            self._give_up_orphan(now)
            return
        if self.config.zero_window_probe == "ack":
            # Linux (tcp_write_wakeup -> tcp_xmit_probe_skb): an old sequence number,
            # no data; the peer answers with an ACK carrying its window.
            self._emit(seq_add(self.snd_una, -1), _ACK)
        else:
            # One byte of new data beyond the closed window (RFC 9293 3.8.6.1).
            seq = self.snd_nxt
            self._emit(seq, _ACK, self._sbuf.peek(off, 1))
            self._probe_end = seq_add(seq, 1)
        self._last_send = now
        self.stats.probes += 1
        self._probes_unanswered += 1
        self._persist_backoff += 1
        self._persist_deadline = now + self._persist_interval()

    def _ka_reset(self, now: float) -> None:
        self._ka_probes = 0
        idle = self.keepalive_idle
        self._ka_deadline = None if idle is None else now + idle

    def _on_keepalive(self, now: float) -> None:
        st = self.state
        if self.keepalive_idle is None or st not in (State.ESTABLISHED, State.CLOSE_WAIT):
            self._ka_deadline = None
            return
        if self.snd_una != self.snd_max or len(self._sbuf):
            # Not idle: the retransmission or persist timer watches the peer.
            self._ka_reset(now)
            return
        if self._ka_probes >= self.keepalive_count:
            self._emit(self.snd_max, _RST | _ACK)
            self.gave_up = GaveUp.KEEPALIVE
            self._set_closed(TcpError.TIMED_OUT)
            return
        # SEG.SEQ = SND.NXT - 1 with no data: the peer must answer with an ACK.
        self._emit(seq_add(self.snd_una, -1), _ACK)
        self._ka_probes += 1
        self.stats.keepalives += 1
        self._ka_deadline = now + self.keepalive_interval

    # ------------------------------------------------------------ state changes

    def _on_rst(self) -> None:
        st = self.state
        if st is State.SYN_RECEIVED:
            err = TcpError.RESET if self.passive else TcpError.REFUSED
        elif st in (State.CLOSING, State.LAST_ACK):
            err = None  # we were closing anyway
        else:
            err = TcpError.RESET
        self._set_closed(err)

    def _enter_time_wait(self, now: float) -> None:
        self.state = State.TIME_WAIT
        self.time_wait_until = now + 2 * self.config.msl
        self._stop_timers()

    def _stop_timers(self) -> None:
        self._rtx_deadline = None
        self._tlp_deadline = None
        self._rack_deadline = None
        self._persist_deadline = None
        self._delack_deadline = None
        self._ka_deadline = None
        self._fw2_deadline = None

    def _set_closed(self, error: TcpError | None) -> None:
        self.state = State.CLOSED
        if error is not None and self.error is None:
            self.error = error
        self._stop_timers()
        self._ack_now = False
        self._sbuf.clear()
        self._sbuf_len = 0
        if self._reasm is not None:
            self._reasm.clear()  # gives its bytes back to the shard's budget
            self._reasm = None
        self._board = None
        self._rsack.clear()
        self._push_marks = ()
        self._srec = None
        self._probe_end = None
        if self._rack is not None:
            self._rack.clear()
