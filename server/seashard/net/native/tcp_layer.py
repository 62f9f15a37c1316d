"""One shard's TCP endpoints on the native stack: demultiplexing, listeners, timers, output.

Segments arrive from the Interface (already IPv4-checked), are parsed straight
into the machine's ``Segment`` (``wire.tcp.parse_segment``) and handed to the
owning sans-IO Connection; what it emits is written into per-connection header
templates (Ethernet + IPv4 + ports built once, the neighbour's MAC from ARP) and
sent through the Interface.

Batching (Seastar's poller): the Driver brackets the frames of one device
wakeup with ``begin_batch``/``end_batch``; inside, a connection's input is
processed at once but its output is deferred (``Connection.on_segment(defer=)``),
and ``flush`` then sends each touched connection's segments once: at most one
ACK per connection per batch, its data after every ACK the batch brought.

Timers are the layer's, sans-IO: one heap per shard (``next_deadline``,
``poll(now)``), lazily re-queued, so an idle connection with no deadline holds
no timer; ``driver.LoopTimer`` is the asyncio side, one loop timer per shard.
The clock is the loop's (``now()``).

Which shard owns a flow: the device queue it arrived on (the kernel's flow
hash), except for connections this shard opened itself (their local port is
≡ shard id mod N, so any shard can route replies to the opener) and, when the
device has fewer queues than shards, the Toeplitz hash of the 4-tuple.

What a peer can make a shard hold is bounded (``limits.py`` has the defaults
and what each bound does when it bites): per listener a SYN queue (half-open
connections, freed after their SYN-ACK retries) apart from the accept queue,
SYN cookies once the SYN queue is full, the TIME_WAIT table, orphans, the
out-of-order budget and the number of live connections.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import os
import random
import socket
import struct
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from seashard import smp
from seashard.net.api import (
    AcceptResult,
    BindError,
    LazyAcceptResult,
    ListenOptions,
    SocketAddress,
)
from seashard.net.native.driver import LoopTimer
from seashard.net.native.limits import NativeLimits
from seashard.net.native.streams import FlowKey, NativeConnection
from seashard.tcp.connection import TSO_MAX, Connection, State, TcpConfig
from seashard.tcp.isn import IsnGenerator
from seashard.tcp.listener import ListenVerdict, classify_listen, rst_for
from seashard.tcp.reassembly import ReassemblyBudget
from seashard.tcp.segment import Flags, Segment
from seashard.tcp.seq import seq_add
from seashard.tcp.syncookies import MAX_AGE, PERIOD, SynCookies, cookie_synack
from seashard.wire.checksum import Buffer, internet_checksum, pseudo_header_sum
from seashard.wire.errors import MalformedError
from seashard.wire.ethernet import mac_to_bytes
from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.tcp import build_options, parse_segment

if TYPE_CHECKING:
    from seashard.net.native.ipv4 import Interface

EPHEMERAL: Final = range(32768, 61000)
_TCP_HEADER: Final = struct.Struct("!HHIIBBHHH")
_IP_TEMPLATE: Final = struct.Struct("!BBHHHBBH4s4s")
_CSUM: Final = struct.Struct("!H")
# Header templates and pseudo-header sums kept, one per remote address (bounded caches)
MAX_TEMPLATES: Final = 4096
# How _settle moved a connection's deadline (plain ints: compiled, they cost nothing)
_LATER: Final = 0  # later, or not at all
_EARLIER: Final = 1  # earlier than the loop timer's
_NO_DEADLINE: Final = 2  # none left, or the connection is gone
# A remote address's header template (see _template): the prefix's pieces, the IPv4
# header's sum, the pseudo-header's sum, the ARP generation and expiry it holds for.
_Template = tuple[bytes, bytes, bytes, int, int, int, float]
# A frame's headers in one pack: Ethernet and IPv4 up to the total length, total length,
# identifier, flags to protocol, checksum, addresses; then TCP from the ports (no
# options, or NOP NOP TS).
_FRAME: Final = struct.Struct("!16sHH4sH8sHHIIBBHHH")
_FRAME_TS: Final = struct.Struct("!16sHH4sH8sHHIIBBHHHHHII")
# Cookie ACKs are only looked for while a listener sent cookies this recently
# (Linux: tcp_synq_no_recent_overflow), so a blind ACK flood meets no hash at all.
COOKIE_WINDOW: Final = MAX_AGE * PERIOD
TW_OVERFLOW_LOG_INTERVAL: Final = 60.0  # seconds between "time wait bucket table overflow" lines


class NativeServerSocket:
    def __init__(self, layer: TcpLayer, address: SocketAddress, options: ListenOptions) -> None:
        self.layer = layer
        self.local_address = address
        self.options = options
        self.pending: deque[NativeConnection] = deque()
        self.half_open = 0  # the SYN queue: connections in SYN_RECEIVED
        self.last_cookie: float | None = None  # when this listener last sent a SYN cookie
        self._waiter: asyncio.Future[None] | None = None
        self.aborted = False

    def deliver(self, conn: NativeConnection) -> None:
        """A half-open connection completed its handshake: into the accept queue."""
        self.half_open -= 1
        self.enqueue(conn)

    def enqueue(self, conn: NativeConnection) -> None:
        """Into the accept queue (cookie connections come here straight)."""
        if self.aborted:  # nobody will ever accept it (as Linux: reset it)
            conn.abort()
            return
        self.pending.append(conn)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def accept(self) -> AcceptResult:
        while not self.pending:
            if self.aborted:
                raise ConnectionAbortedError(f"listener on port {self.local_address.port} closed")
            self._waiter = self.layer.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        conn = self.pending.popleft()
        return LazyAcceptResult(conn)

    def abort_accept(self) -> None:
        if self.aborted:
            return
        self.aborted = True
        self.layer.listeners.pop(self.local_address.port, None)
        while self.pending:
            self.pending.popleft().abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class TcpLayer:
    def __init__(
        self,
        interface: Interface,
        loop: asyncio.AbstractEventLoop,
        shard_id: int,
        shards: int,
        *,
        config: TcpConfig | None = None,
        limits: NativeLimits | None = None,
        owner_of: Callable[[str, int, int], int] | None = None,
        forward: Callable[[int, str, bytes], None] | None = None,
        log: Callable[[str], None] = smp.log,
    ) -> None:
        self.interface = interface
        self.loop = loop
        self.shard_id = shard_id
        self.shards = shards
        self.limits = limits = limits or NativeLimits()
        # An explicit config (the frame-level tests') keeps its own SYN-ACK retries.
        cc: dict[str, Any] = {"cc": limits.tcp_cc} if limits.tcp_cc is not None else {}
        if limits.tcp_tlp is not None:
            cc["tlp"] = limits.tcp_tlp
        self.config = config or TcpConfig.profile(
            limits.tcp_profile,
            mss=interface.config.mtu - 40,
            synack_retries=limits.synack_retries,
            tso_max=TSO_MAX if "tso4" in interface.offloads else 0,  # the device cuts them
            **cc,
        )
        self.owner_of = owner_of  # software RSS: (remote ip, remote port, local port) -> shard
        self.forward = forward  # hand a segment to its owning shard
        # Deliver the frames waiting on the device (Driver.drain), before a loss timer.
        self.drain: Callable[[], object] | None = None
        self.log = log
        self.conns: dict[FlowKey, NativeConnection] = {}
        self.listeners: dict[int, NativeServerSocket] = {}
        self.listened_elsewhere: set[int] = set()  # ports other shards listen on
        self.previous_time_wait: list[dict[str, Any]] = []  # from the last run (stack.py)
        self.isn = IsnGenerator()
        self.cookies = SynCookies()  # a per-process secret: Linux's is per boot
        self.reassembly = ReassemblyBudget(limits.reassembly_budget)
        self.stats: Counter[str] = Counter()
        self.limit_drops: Counter[str] = Counter()  # a bound bit: what was refused, by reason
        self.gave_up: Counter[str] = Counter()  # connections the machine gave up on, by reason
        self._time_wait: set[FlowKey] = set()  # the TIME_WAIT table (bounded)
        self._tw_logged_at: float | None = None
        self.connections_total = 0
        self._next_port = random.randrange(len(EPHEMERAL))
        self._batch = 0  # > 0: inside a batch (begin_batch/end_batch)
        self._dirty: dict[NativeConnection, None] = {}  # touched in this batch, in order
        self._flush_soon = False  # a flush is scheduled for this loop iteration (kick_soon)
        self._timers: list[tuple[float, int, NativeConnection]] = []  # see "timers" below
        self._timer_seq = 0
        # The asyncio side of the timers: one loop timer at next_deadline(), running poll.
        self.timer = LoopTimer(loop, self.poll, self.next_deadline)
        self._loop_stale = False  # the loop timer may be set for a dropped entry
        self._arm_pending = False  # an _arm is queued (call_soon)
        self._hops: dict[str, _Template] = {}  # remote ip -> its header template
        self._pseudo: dict[str, int] = {}  # remote ip -> TCP pseudo-header sum (length 0)
        self._broadcast = ("255.255.255.255", str(interface.config.network.broadcast_address))

    def now(self) -> float:
        return self.loop.time()

    # ---------------------------------------------------------------- input

    def on_packet(self, ip: IPv4Packet, data: bytes, now: float) -> None:
        """The Interface's TCP handler. MalformedError propagates: it counts the drop."""
        self.on_tcp(ip.src, data, now)

    def on_tcp(self, src: str, data: Buffer, now: float) -> None:
        """The Interface's direct-path TCP handler (``Interface.tcp_segment``): a segment
        from ``src`` to us. MalformedError propagates: it counts the drop."""
        pseudo = self._pseudo.get(src)
        if pseudo is None:
            if len(self._pseudo) >= MAX_TEMPLATES:
                self._pseudo.clear()  # a cache, not a table a flood could grow
            pseudo = self._pseudo[src] = pseudo_header_sum(src, self.interface.ip, IpProto.TCP, 0)
        # A frame the device vouched for (offload) is not checksummed again.
        sport, dport, seg = parse_segment(
            data, src, self.interface.ip, verify=not self.interface.rx_csum_valid, pseudo=pseudo
        )
        key = (src, sport, dport)
        conn = self.conns.get(key)
        if conn is None:
            if self.forward is not None:
                owner = self._owner(key)
                if owner != self.shard_id:
                    self.stats["segments_forwarded"] += 1
                    self.forward(owner, src, bytes(data))
                    return
        elif conn.tcp.state is State.ESTABLISHED:
            # _segment_in's steps for a connection in ESTABLISHED, in short (only
            # TIME_WAIT sets reopen_syn).
            self.stats["segments_in"] += 1
            conn.segments_in += 1
            batch = self._batch
            conn.tcp.on_segment(seg, now, defer=batch > 0)
            if batch:
                self._dirty[conn] = None
            else:
                self.kick(conn)
            return
        self._segment_in(src, sport, dport, seg, now)

    def on_forwarded(self, src_ip: str, data: bytes) -> None:
        """A segment another shard received for a flow we own (software RSS).

        That shard checked the checksum already; a damaged one is counted, not raised.
        """
        try:
            sport, dport, seg = parse_segment(data, src_ip, self.interface.ip, verify=False)
        except MalformedError:
            self.stats["segments_malformed"] += 1
            return
        self._segment_in(src_ip, sport, dport, seg, self.now())

    def _segment_in(self, src_ip: str, sport: int, dport: int, seg: Segment, now: float) -> None:
        """A segment this shard owns: to its connection, else to a listener or a reset."""
        key = (src_ip, sport, dport)
        conn = self.conns.get(key)
        if conn is not None and conn.tcp.state is State.CLOSED:
            self._dirty.pop(conn, None)  # closed earlier in this batch: free it first
            self._settle(conn, now)
            conn = self.conns.get(key)
        self.stats["segments_in"] += 1
        if conn is not None:
            if (
                conn.tcp.state is State.SYN_RECEIVED
                and conn.on_established is not None
                and self._accept_queue_full(dport)
                and (int(seg.flags) & 0x16) == 0x10  # ACK, no SYN or RST
            ):
                # Linux (tcp_abort_on_overflow=0): drop the ACK that would complete
                # the handshake; the SYN-ACK retransmission brings it back later.
                self.limit_drops["accept_queue_full"] += 1
                return
            conn.segments_in += 1
            conn.tcp.on_segment(seg, now, defer=self._batch > 0)
            reopen = conn.tcp.reopen_syn
            if reopen is not None:
                self._dirty.pop(conn, None)
                self._settle(conn, now)  # frees the key now, for the new incarnation
            else:
                self.kick(conn)
            if reopen is not None and key not in self.conns:
                # RFC 1122 4.2.2.13: the new ISS must be above the old incarnation's
                # sequence numbers; Linux uses the old SND.NXT + 65535 + 2.
                iss = seq_add(conn.tcp.snd_max, 65535 + 2)
                self._no_connection(src_ip, sport, dport, reopen, now, iss)
            return
        self._no_connection(src_ip, sport, dport, seg, now)

    def _owner(self, key: FlowKey) -> int:
        remote_ip, remote_port, local_port = key
        listened = local_port in self.listeners or local_port in self.listened_elsewhere
        if not listened and local_port in EPHEMERAL:  # replies to an active open: the opener's
            return local_port % self.shards
        if self.owner_of is not None:
            return self.owner_of(remote_ip, remote_port, local_port)
        return self.shard_id

    def _no_connection(
        self, src_ip: str, sport: int, dport: int, seg: Segment, now: float, iss: int | None = None
    ) -> None:
        listener = self.listeners.get(dport)
        if listener is not None:
            verdict = classify_listen(seg)
            limits = self.limits
            if verdict is ListenVerdict.ACCEPT:
                self.stats["syn_received"] += 1
                if self.live_count() >= limits.max_connections:
                    self.limit_drops["max_connections"] += 1  # refused: the RST below
                elif len(listener.pending) >= limits.accept_backlog:
                    self.limit_drops["accept_queue_full"] += 1  # Linux: ListenOverflows
                    return
                elif listener.half_open >= limits.syn_backlog:
                    if limits.syncookies:
                        self._send_cookie(listener, src_ip, sport, dport, seg, now)
                    else:
                        self.limit_drops["syn_queue_full"] += 1
                    return
                else:
                    self._accept(listener, src_ip, sport, dport, seg, now, iss)
                    return
            elif verdict is ListenVerdict.DROP:
                self.stats["segments_dropped_listen"] += 1
                return
            elif (
                listener.last_cookie is not None
                and now - listener.last_cookie <= COOKIE_WINDOW
                and not seg.flags & (Flags.SYN | Flags.RST)
                and self._cookie_ack(listener, src_ip, sport, dport, seg, now)
            ):
                return
        elif seg.flags & Flags.SYN and not seg.flags & Flags.ACK:
            self.stats["syn_no_listener"] += 1
            if dport in self.listened_elsewhere:
                self.log(
                    f"no listener on port {dport} on this shard: reset connection from "
                    f"{src_ip}:{sport} (listen on every shard, or run with -c 1)"
                )
        else:
            self.stats["segments_no_connection"] += 1
        rst = rst_for(seg)
        if rst is not None:
            self.stats["rst_sent"] += 1
            self._transmit(src_ip, dport, sport, rst, now)

    def _accept(
        self,
        listener: NativeServerSocket,
        src_ip: str,
        sport: int,
        dport: int,
        seg: Segment,
        now: float,
        iss: int | None = None,
    ) -> None:
        local = listener.local_address  # one object for all its connections (memory)
        # One address string per peer, not one per connection (each segment's is new).
        remote = SocketAddress(sys.intern(src_ip), sport)
        if iss is None:
            iss = self.isn.isn((local.host, local.port), (remote.host, remote.port), now)
        tsoff = self.cookies.ts_offset((local.host, local.port), (remote.host, remote.port))
        tcp = Connection.accept(seg, iss, now, self.config, self.reassembly, ts_offset=tsoff)
        conn = NativeConnection(self, tcp, local, remote, on_established=listener.deliver)
        listener.half_open += 1
        self._register(conn)
        conn.segments_in += 1
        self.kick(conn)

    def _send_cookie(
        self,
        listener: NativeServerSocket,
        src_ip: str,
        sport: int,
        dport: int,
        seg: Segment,
        now: float,
    ) -> None:
        """The SYN queue is full: answer with a SYN cookie and keep nothing.  With
        timestamps the cookie's TSval carries the peer's window scale and
        SACK-permitted (as Linux); without, the SYN-ACK offers neither and the
        connection runs without them, as Linux's cookie connections do."""
        cfg = self.config
        local, remote = (self.interface.ip, dport), (src_ip, sport)
        use_ts = cfg.timestamps and seg.timestamps is not None
        cookie = self.cookies.make(
            local,
            remote,
            seg.seq,
            seg.mss,
            now,
            timestamps=use_ts,
            wscale=seg.wscale if cfg.wscale is not None else None,
            sack_permitted=cfg.sack and seg.sack_permitted,
        )
        our_ws = Connection.offered_wscale(cfg)
        synack = cookie_synack(seg, cookie, cfg.mss, cfg.recv_buffer, our_ws)
        listener.last_cookie = now
        self.stats["syncookies_sent"] += 1
        self._transmit(src_ip, dport, sport, synack, now)

    def _cookie_ack(
        self,
        listener: NativeServerSocket,
        src_ip: str,
        sport: int,
        dport: int,
        seg: Segment,
        now: float,
    ) -> bool:
        """An ACK to a listener that sent cookies lately: if it echoes a valid cookie,
        the connection is created from it.  False: answer it as any unknown ACK."""
        local, remote = (self.interface.ip, dport), (src_ip, sport)
        tsecr = seg.timestamps[1] if seg.timestamps is not None and self.config.timestamps else None
        grant = self.cookies.check(local, remote, seg.seq, seg.ack, now, tsecr)
        if grant is None:
            self.stats["syncookies_rejected"] += 1
            return False
        if self.live_count() >= self.limits.max_connections:
            self.limit_drops["max_connections"] += 1
            return False
        if self._accept_queue_full(dport):
            self.limit_drops["accept_queue_full"] += 1
            return True  # dropped, as the final ACK of a stored handshake would be
        self.stats["syncookies_accepted"] += 1
        iss = seq_add(seg.ack, -1)
        tcp = Connection.from_cookie(
            seg,
            iss,
            grant.mss,
            now,
            self.config,
            self.reassembly,
            wscale=grant.wscale,
            sack_permitted=grant.sack_permitted,
            ts_offset=self.cookies.ts_offset(local, remote),
        )
        conn = NativeConnection(
            self,
            tcp,
            listener.local_address,
            SocketAddress(sys.intern(remote[0]), remote[1]),
            on_established=listener.enqueue,
        )
        self._register(conn)
        conn.segments_in += 1
        self.kick(conn)
        return True

    def _accept_queue_full(self, port: int) -> bool:
        listener = self.listeners.get(port)
        return listener is not None and len(listener.pending) >= self.limits.accept_backlog

    def live_count(self) -> int:
        """Connections that count against max_connections: all but TIME_WAIT."""
        return len(self.conns) - len(self._time_wait)

    def _register(self, conn: NativeConnection) -> None:
        self.conns[conn.key] = conn
        self.connections_total += 1

    # --------------------------------------------------------------- output

    def begin_batch(self) -> None:
        """Frames of one device wakeup follow: defer every connection's output to
        :meth:`end_batch`, so each sends at most one ACK for the whole batch."""
        self._batch += 1

    def end_batch(self) -> None:
        self._batch -= 1
        if self._batch == 0:
            self.flush(readers_first=True)

    def flush(self, readers_first: bool = False) -> None:
        """Send what the touched connections queued, once each, in the order touched.

        ``readers_first`` (a batch's end): a connection whose application waits to read
        what the batch brought, and that has nothing else to send, is not settled now
        but woken, and settled at the end of the loop iteration (:meth:`kick_soon`).
        Its ACK then rides on what the application sends in reply, as on Seastar's
        polled output: an echo sent a bare ACK, its window closed by the unread
        request, before every reply."""
        dirty = self._dirty
        timers = self._timers
        top = timers[0][2] if timers else None
        rearm = self._loop_stale
        now = self.loop.time()
        settle = self._settle
        woken: list[NativeConnection] = []
        while dirty:
            conn = next(iter(dirty))
            del dirty[conn]
            if readers_first:
                fut = conn._read_waiter
                tcp = conn.tcp
                if (
                    fut is not None
                    and tcp.output_due
                    and tcp.unread
                    and tcp.state is State.ESTABLISHED
                    and not conn.app_closed
                    and not tcp.unsent
                    and not fut.done()
                ):
                    fut.set_result(None)
                    woken.append(conn)
                    continue
            moved = settle(conn, now)
            if moved == _EARLIER or (moved == _NO_DEADLINE and conn is top):
                rearm = True  # an earlier deadline, or the loop timer's one went away
        for conn in woken:
            self.kick_soon(conn)
        if rearm:
            self._arm_soon()

    def kick(self, conn: NativeConnection, now: float | None = None) -> None:
        """After any event: send what the machine queued, re-arm its timer, wake the app.
        Inside a batch this only marks the connection: :meth:`flush` does the rest.
        ``now``: the loop's time, if the caller has just read it."""
        if self._batch:
            self._dirty[conn] = None
            return
        if self._dirty:
            self._dirty.pop(conn, None)
        timers = self._timers
        top = timers[0] if timers else None
        moved = self._settle(conn, self.loop.time() if now is None else now)
        if (
            moved == _EARLIER
            or (moved == _NO_DEADLINE and top is not None and top[2] is conn)
            or self._loop_stale
        ):
            self._arm_soon()  # an earlier deadline, or the loop timer's one went away

    def kick_soon(self, conn: NativeConnection) -> None:
        """:meth:`kick` at the end of this loop iteration, for what a read made due: an
        echo's write in the same step sends its reply with the ACK on it, not after a
        bare one (as Seastar's TCP polls a connection's output rather than sending at
        once).  A ``kick`` before then settles the connection itself."""
        self._dirty[conn] = None
        if not self._flush_soon:
            self._flush_soon = True
            self.loop.call_soon(self._soon)

    def _soon(self) -> None:
        self._flush_soon = False
        if not self._batch:
            self.flush()

    def _settle(self, conn: NativeConnection, now: float) -> int:
        """How the connection's deadline moved: ``_EARLIER`` than the loop timer's (it
        queued it), ``_NO_DEADLINE`` left (or the connection is gone), or ``_LATER`` (or
        not at all).  Only the first two re-arm the loop timer: one that moved later
        leaves it to fire early and re-arm then (see "timers" below), where re-arming
        cost a heap repair on every request of a busy shard."""
        tcp = conn.tcp
        if tcp.output_due:
            tcp.flush_output(now)  # the ACK (and data) for the segments of the batch
        if conn.app_closed:
            if tcp.orphan_retries is None:
                tcp.orphan(now, self.limits.fin_timeout, self.limits.orphan_retries)
            if tcp.unread:
                tcp.recv(now=now)  # nobody will read it; the window update goes out below
        out = tcp.segments_out()
        if out:
            mss = tcp.mss
            for seg in out:
                self._transmit_conn(conn, seg, now, mss)
        state = tcp.state
        if state is State.TIME_WAIT and conn.key not in self._time_wait:
            self._admit_time_wait(conn, now)
            state = tcp.state
        moved = _NO_DEADLINE
        if state is State.CLOSED:
            self._forget(conn)
        else:
            deadline = tcp.next_deadline()
            if deadline is not None:
                moved = _LATER
                if conn.timer_when is None or deadline < conn.timer_when:
                    self._timer_seq += 1
                    heapq.heappush(self._timers, (deadline, self._timer_seq, conn))
                    conn.timer_when = deadline
                    loop_when = self.timer.when
                    if loop_when is None or deadline < loop_when:
                        moved = _EARLIER
        # conn.wake(), for the waiters there are (most of the time none, or a reader)
        if (
            conn.on_established is not None
            or conn._write_waiter is not None
            or conn._open_waiter is not None
        ):
            conn.wake()
        else:
            fut = conn._read_waiter
            if fut is not None and not fut.done():
                fut.set_result(None)
        return moved

    def _admit_time_wait(self, conn: NativeConnection, now: float) -> None:
        if len(self._time_wait) < self.limits.max_tw_buckets:
            self._time_wait.add(conn.key)
            return
        # Linux: no TIME_WAIT for this one, a counter and a rate-limited line.
        conn.tcp.end_time_wait()
        self.limit_drops["time_wait_overflow"] += 1
        if self._tw_logged_at is None or now - self._tw_logged_at >= TW_OVERFLOW_LOG_INTERVAL:
            self._tw_logged_at = now
            self.log(
                f"TCP: time wait bucket table overflow ({self.limits.max_tw_buckets} "
                "connections, --max-tw-buckets): closing without TIME_WAIT"
            )

    # ------------------------------------------------------------- timers
    #
    # One heap for the shard: (deadline, order, connection).  An entry is pushed
    # when a connection's deadline moves earlier than the one it has queued; one
    # that moved later is left and re-queued when it comes up (Linux's lazy
    # sk_reset_timer), so a busy connection does not churn the heap, and an idle
    # one with no deadline holds nothing.  The loop sees one timer, set at the
    # earliest true deadline (``next_deadline``) when it is armed; a deadline that
    # moved later since leaves it to fire early, find nothing due and re-arm (see
    # ``_settle``).

    def _pop_timer(self) -> tuple[float, NativeConnection]:
        when, _, conn = heapq.heappop(self._timers)
        if conn.timer_when == when:
            conn.timer_when = None
        return when, conn

    def _requeue(self, conn: NativeConnection, deadline: float | None) -> None:
        if deadline is not None and (conn.timer_when is None or deadline < conn.timer_when):
            self._timer_seq += 1
            heapq.heappush(self._timers, (deadline, self._timer_seq, conn))
            conn.timer_when = deadline

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must next run (None: no connection has a deadline)."""
        timers = self._timers
        conns = self.conns
        while timers:
            when, _, conn = timers[0]
            if conns.get(conn.key) is conn:
                deadline = conn.tcp.next_deadline()
                if deadline == when:
                    return when
            else:
                deadline = None
            # _pop_timer, then _requeue, with one heap operation
            if conn.timer_when == when:
                conn.timer_when = None
            if deadline is not None and (conn.timer_when is None or deadline < conn.timer_when):
                self._timer_seq += 1
                heapq.heapreplace(timers, (deadline, self._timer_seq, conn))
                conn.timer_when = deadline
            else:
                heapq.heappop(timers)
        return None

    def poll(self, now: float) -> None:
        """Run every connection timer due at ``now``."""
        while True:
            when = self.next_deadline()
            if when is None or when > now:
                return
            _, conn = self._pop_timer()
            self._on_timer(conn, now)

    def _on_timer(self, conn: NativeConnection, now: float) -> None:
        if self.drain is not None and conn.tcp.bytes_in_flight:
            # A loss timer (RTO, TLP, RACK) decides from the ACKs seen so far.  The
            # loop runs due timers before the frames still queued on the device (a
            # busy shard reads 64 per wakeup), so the ACK that makes a probe
            # pointless may be waiting there: take it in first, as Linux's softirq
            # has long done.  (A spurious probe's answer may reach a connection
            # already freed: a RST and a "no connection" count.)
            self.drain()
            if self.conns.get(conn.key) is not conn:
                return  # closed by what came in
            deadline = conn.tcp.next_deadline()
            if deadline is None or deadline > now:
                self._requeue(conn, deadline)
                return  # re-armed by it
        conn.tcp.on_timer(now)
        self.kick(conn)

    def _arm(self) -> None:
        self._arm_pending = False
        self._loop_stale = False
        self.timer.update()

    def _arm_soon(self) -> None:
        """Re-arm the loop timer once the callbacks running now are done: however many
        connections moved their deadlines in one loop iteration, it is set once."""
        if not self._arm_pending:
            self._arm_pending = True
            self.loop.call_soon(self._arm)

    def _forget(self, conn: NativeConnection) -> None:
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
            self._time_wait.discard(conn.key)
            self.stats["retransmits_closed"] += conn.tcp.stats.retransmits
            if conn.tcp.gave_up is not None:
                self.gave_up[conn.tcp.gave_up.value] += 1
        conn.timer_when = None  # its heap entries are dropped as they come up
        self._loop_stale = True  # ... and one may be what the loop timer is set for
        if conn.on_established is not None and not conn.tcp.was_established:
            listener = self.listeners.get(conn.key[2])
            if listener is not None:  # a half-open connection that never made it
                listener.half_open -= 1
            conn.on_established = None

    def _transmit(
        self, remote: str, lport: int, rport: int, seg: Segment, now: float, mss: int = 0
    ) -> None:
        """A segment through the Interface's general path: of no connection (RST, SYN
        cookie), or of one whose neighbour is not resolved (ARP queues it).
        Offloads (devices.py): a payload above the MSS is cut by the device
        (gso_size), and with "csum" the device completes the checksum."""
        self.stats["segments_out"] += 1
        iface = self.interface
        gso = mss if mss and len(seg.payload) > mss else 0
        partial = bool(gso) or "csum" in iface.offloads
        opts = build_options(
            seg.mss, seg.wscale, seg.sack_permitted, seg.timestamps, seg.sack_blocks
        )
        data = bytearray(
            _TCP_HEADER.pack(
                lport,
                rport,
                seg.seq & 0xFFFFFFFF,
                seg.ack & 0xFFFFFFFF,
                (20 + len(opts)) << 2,
                int(seg.flags) & 0xFF,
                seg.window,
                0,
                0,
            )
        )
        data += opts
        data += seg.payload
        pseudo = pseudo_header_sum(iface.ip, remote, IpProto.TCP, len(data))
        _CSUM.pack_into(data, 16, pseudo if partial else internet_checksum(data, pseudo))
        iface.send_ipv4(remote, IpProto.TCP, bytes(data), now, gso_size=gso, csum_partial=partial)

    # Per-connection header templates: the Ethernet + IPv4 header and the ports are
    # built once per connection (the neighbour's MAC from ARP; rebuilt when ARP's
    # generation moves or the entry expires); per segment only the IPv4 length,
    # identifier and checksum (incrementally, from the template's sum) and the
    # TCP fields are written, and the TCP checksum is one pass over the segment
    # (or, with the "csum" offload, the pseudo-header sum for the device to finish).

    def _template(self, remote: str, now: float) -> _Template | None:
        """The header bytes every segment to ``remote`` starts with (ports aside):
        one per remote address, shared by all its connections (an idle connection
        holds none), rebuilt when ARP changes or its entry expires."""
        iface = self.interface
        if remote == iface.ip or remote in self._broadcast:
            return None
        hop = iface.next_hop(remote)
        entry = None if hop is None else iface.arp.entry(hop, now)
        if entry is None:
            return None  # unresolved (ARP queues it) or no route: the general path
        mac, expires = entry
        ip_header = _IP_TEMPLATE.pack(
            0x45, 0, 0, 0, 0x4000, iface.config.ttl, IpProto.TCP, 0,
            socket.inet_aton(iface.ip), socket.inet_aton(remote),
        )  # fmt: skip
        ip_sum = sum(struct.unpack("!10H", ip_header))
        prefix = mac_to_bytes(mac) + mac_to_bytes(iface.mac) + b"\x08\x00" + ip_header
        pseudo = pseudo_header_sum(iface.ip, remote, IpProto.TCP, 0)
        # _FRAME's pieces of the prefix: up to the IPv4 length, between the identifier
        # and the checksum, the addresses
        return (
            prefix[:16], prefix[20:24], prefix[26:34], ip_sum, pseudo,
            iface.arp.generation, expires,
        )  # fmt: skip

    def _transmit_conn(self, conn: NativeConnection, seg: Segment, now: float, mss: int) -> None:
        iface = self.interface
        remote, rport, lport = conn.key
        tx = self._hops.get(remote)
        if tx is None or tx[5] != iface.arp.generation or now >= tx[6]:
            tx = self._template(remote, now)
            if tx is None:
                self._transmit(remote, lport, rport, seg, now, mss)
                return
            if len(self._hops) >= MAX_TEMPLATES:
                self._hops.clear()  # many peers come and go: rebuilt as they send again
            self._hops[remote] = tx
        self.stats["segments_out"] += 1
        head, mid, addrs, ip_sum, pseudo, _, _ = tx
        payload = seg.payload
        plen = len(payload)
        ts = seg.timestamps
        opts = b""
        if (
            seg.mss is None
            and seg.wscale is None
            and not seg.sack_permitted
            and not seg.sack_blocks
        ):
            hlen = 20 if ts is None else 32
        else:
            opts = build_options(
                seg.mss, seg.wscale, seg.sack_permitted, seg.timestamps, seg.sack_blocks
            )
            hlen = 20 + len(opts)
        total = 20 + hlen + plen  # the IPv4 datagram
        gso = mss if mss and plen > mss else 0
        if gso:
            ident = iface.take_ident(-(-plen // gso))
        else:
            if total > iface.config.mtu:
                iface.tx_drops["too_big"] += 1
                return
            ident = iface._ident  # take_ident(), written out
            iface._ident = (ident + 1) & 0xFFFF
        s = ip_sum + total + ident
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        partial = bool(gso) or "csum" in iface.offloads
        tcp_len = total - 20
        # With "csum" (or TSO) the checksum field holds the pseudo-header sum for the
        # device to finish; without, it is summed below, over the frame built with 0.
        csum = ((pseudo + tcp_len) % 0xFFFF or 0xFFFF) if partial else 0
        seq, ack, flags, window = (
            seg.seq & 0xFFFFFFFF,
            seg.ack & 0xFFFFFFFF,
            int(seg.flags),
            seg.window,
        )
        # The whole header in one pack; the payload goes behind it (send_frame's tail).
        if ts is not None and not opts:
            header = _FRAME_TS.pack(
                head, total, ident, mid, ~s & 0xFFFF, addrs, lport, rport,
                seq, ack, 0x80, flags, window, csum, 0, 0x0101, 0x080A, ts[0], ts[1],
            )  # fmt: skip
        else:
            header = _FRAME.pack(
                head, total, ident, mid, ~s & 0xFFFF, addrs, lport, rport,
                seq, ack, hlen << 2, flags, window, csum, 0,
            )  # fmt: skip
            if opts:
                header += opts
        if partial:
            iface.send_frame(header, gso, True, payload)  # the payload behind it, uncopied
            return
        frame = bytearray(header)
        frame += payload
        # internet_checksum(frame[34:], pseudo + tcp_len), in one C call or two
        c = int.from_bytes(frame[34:], "big")
        if tcp_len & 1:
            c <<= 8
        c += pseudo + tcp_len
        _CSUM.pack_into(frame, 50, ~(c % 0xFFFF or 0xFFFF) & 0xFFFF if c else 0xFFFF)
        iface.send_frame(frame, 0, False)

    # ------------------------------------------------------------- app calls

    def listen(self, address: SocketAddress, options: ListenOptions) -> NativeServerSocket:
        port = address.port
        if port in self.listeners:
            raise BindError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        if not options.reuse_address and self.time_wait_on(port):
            raise BindError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        server = NativeServerSocket(self, SocketAddress(self.interface.ip, port), options)
        self.listeners[port] = server
        return server

    def time_wait_on(self, port: int) -> int:
        """TIME_WAIT connections with local port ``port``: ours, and the last run's."""
        ours = sum(
            1 for c in self.conns.values() if c.key[2] == port and c.tcp.state is State.TIME_WAIT
        )
        wall = time.time()
        previous = sum(
            1 for e in self.previous_time_wait if e["local_port"] == port and e["until"] > wall
        )
        return ours + previous

    async def connect(self, address: SocketAddress) -> NativeConnection:
        remote = address
        for _ in range(len(EPHEMERAL)):
            self._next_port = (self._next_port + 1) % len(EPHEMERAL)
            port = EPHEMERAL[self._next_port]
            if port % self.shards == self.shard_id and (remote.host, remote.port, port) not in (
                self.conns
            ):
                break
        else:
            raise OSError(errno.EADDRNOTAVAIL, "no free local port")
        local = SocketAddress(self.interface.ip, port)
        now = self.now()
        iss = self.isn.isn((local.host, local.port), (remote.host, remote.port), now)
        tsoff = self.cookies.ts_offset((local.host, local.port), (remote.host, remote.port))
        tcp = Connection.connect(iss, now, self.config, self.reassembly, ts_offset=tsoff)
        conn = NativeConnection(self, tcp, local, remote)
        self._register(conn)
        self.kick(conn)
        await conn.wait_established()
        return conn

    # -------------------------------------------------------------- admin

    def live(self) -> list[NativeConnection]:
        return [
            c for c in self.conns.values() if c.tcp.state not in (State.TIME_WAIT, State.CLOSED)
        ]

    def time_wait(self) -> list[NativeConnection]:
        return [c for c in self.conns.values() if c.tcp.state is State.TIME_WAIT]
