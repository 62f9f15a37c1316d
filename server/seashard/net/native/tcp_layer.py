"""One shard's TCP endpoints on the native stack: demultiplexing, listeners, timers, output.

Segments arrive from the Interface (already IPv4-checked), are parsed with
seashard.wire.tcp and handed to the owning sans-IO Connection; what it emits is
built and sent back through the Interface. Each connection has one loop timer
at the machine's next deadline; the clock is the loop's.

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
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from seashard import smp
from seashard.net.api import AcceptResult, BindError, ListenOptions, SocketAddress
from seashard.net.native.limits import NativeLimits
from seashard.net.native.streams import FlowKey, NativeConnection
from seashard.tcp.connection import Connection, State, TcpConfig
from seashard.tcp.isn import IsnGenerator
from seashard.tcp.listener import ListenVerdict, classify_listen, rst_for
from seashard.tcp.reassembly import ReassemblyBudget
from seashard.tcp.segment import Flags, Segment
from seashard.tcp.seq import seq_add
from seashard.tcp.syncookies import MAX_AGE, PERIOD, SynCookies, cookie_synack
from seashard.wire.errors import MalformedError
from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.tcp import TcpPacket

if TYPE_CHECKING:
    from seashard.net.native.ipv4 import Interface

EPHEMERAL = range(32768, 61000)
# Cookie ACKs are only looked for while a listener sent cookies this recently
# (Linux: tcp_synq_no_recent_overflow), so a blind ACK flood meets no hash at all.
COOKIE_WINDOW = MAX_AGE * PERIOD
TW_OVERFLOW_LOG_INTERVAL = 60.0  # seconds between "time wait bucket table overflow" lines


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
        return AcceptResult(conn, conn.remote_address)

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

    def now(self) -> float:
        return self.loop.time()

    # ---------------------------------------------------------------- input

    def on_packet(self, ip: IPv4Packet, data: bytes, now: float) -> None:
        """The Interface's TCP handler. MalformedError propagates: it counts the drop."""
        pkt = TcpPacket.parse(data, ip.src, ip.dst)
        key = (ip.src, pkt.src_port, pkt.dst_port)
        if key not in self.conns and self.forward is not None:
            owner = self._owner(key)
            if owner != self.shard_id:
                self.stats["segments_forwarded"] += 1
                self.forward(owner, ip.src, data)
                return
        self._segment_in(ip.src, pkt, now)

    def on_forwarded(self, src_ip: str, data: bytes) -> None:
        """A segment another shard received for a flow we own (software RSS).

        That shard checked the checksum already; a damaged one is counted, not raised.
        """
        try:
            pkt = TcpPacket.parse(data, src_ip, self.interface.ip, verify=False)
        except MalformedError:
            self.stats["segments_malformed"] += 1
            return
        self._segment_in(src_ip, pkt, self.now())

    def _segment_in(self, src_ip: str, pkt: TcpPacket, now: float) -> None:
        """A segment this shard owns: to its connection, else to a listener or a reset."""
        key = (src_ip, pkt.src_port, pkt.dst_port)
        conn = self.conns.get(key)
        self.stats["segments_in"] += 1
        seg = Segment(
            seq=pkt.seq,
            ack=pkt.ack,
            flags=pkt.flags,
            window=pkt.window,
            payload=pkt.payload,
            mss=pkt.mss,
            wscale=pkt.wscale,
            sack_permitted=pkt.sack_permitted,
            timestamps=pkt.timestamps,
            sack_blocks=pkt.sack_blocks,
        )
        if conn is not None:
            if (
                conn.tcp.state is State.SYN_RECEIVED
                and conn.on_established is not None
                and self._accept_queue_full(pkt.dst_port)
                and (int(seg.flags) & 0x16) == 0x10  # ACK, no SYN or RST
            ):
                # Linux (tcp_abort_on_overflow=0): drop the ACK that would complete
                # the handshake; the SYN-ACK retransmission brings it back later.
                self.limit_drops["accept_queue_full"] += 1
                return
            conn.segments_in += 1
            conn.tcp.on_segment(seg, now)
            reopen = conn.tcp.reopen_syn
            self.kick(conn)
            if reopen is not None and key not in self.conns:
                # RFC 1122 4.2.2.13: the new ISS must be above the old incarnation's
                # sequence numbers; Linux uses the old SND.NXT + 65535 + 2.
                iss = seq_add(conn.tcp.snd_max, 65535 + 2)
                self._no_connection(src_ip, pkt, reopen, now, iss)
            return
        self._no_connection(src_ip, pkt, seg, now)

    def _owner(self, key: FlowKey) -> int:
        remote_ip, remote_port, local_port = key
        listened = local_port in self.listeners or local_port in self.listened_elsewhere
        if not listened and local_port in EPHEMERAL:  # replies to an active open: the opener's
            return local_port % self.shards
        if self.owner_of is not None:
            return self.owner_of(remote_ip, remote_port, local_port)
        return self.shard_id

    def _no_connection(
        self, src_ip: str, pkt: TcpPacket, seg: Segment, now: float, iss: int | None = None
    ) -> None:
        listener = self.listeners.get(pkt.dst_port)
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
                        self._send_cookie(listener, src_ip, pkt, seg, now)
                    else:
                        self.limit_drops["syn_queue_full"] += 1
                    return
                else:
                    self._accept(listener, src_ip, pkt, seg, now, iss)
                    return
            elif verdict is ListenVerdict.DROP:
                self.stats["segments_dropped_listen"] += 1
                return
            elif (
                listener.last_cookie is not None
                and now - listener.last_cookie <= COOKIE_WINDOW
                and not seg.flags & (Flags.SYN | Flags.RST)
                and self._cookie_ack(listener, src_ip, pkt, seg, now)
            ):
                return
        elif seg.flags & Flags.SYN and not seg.flags & Flags.ACK:
            self.stats["syn_no_listener"] += 1
            if pkt.dst_port in self.listened_elsewhere:
                self.log(
                    f"no listener on port {pkt.dst_port} on this shard: reset connection from "
                    f"{src_ip}:{pkt.src_port} (listen on every shard, or run with -c 1)"
                )
        else:
            self.stats["segments_no_connection"] += 1
        rst = rst_for(seg)
        if rst is not None:
            self.stats["rst_sent"] += 1
            self._transmit(src_ip, pkt.dst_port, pkt.src_port, rst, now)

    def _accept(
        self,
        listener: NativeServerSocket,
        src_ip: str,
        pkt: TcpPacket,
        seg: Segment,
        now: float,
        iss: int | None = None,
    ) -> None:
        local = listener.local_address  # one object for all its connections (memory)
        remote = SocketAddress(src_ip, pkt.src_port)
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
        self, listener: NativeServerSocket, src_ip: str, pkt: TcpPacket, seg: Segment, now: float
    ) -> None:
        """The SYN queue is full: answer with a SYN cookie and keep nothing.  With
        timestamps the cookie's TSval carries the peer's window scale and
        SACK-permitted (as Linux); without, the SYN-ACK offers neither and the
        connection runs without them, as Linux's cookie connections do."""
        cfg = self.config
        local, remote = (self.interface.ip, pkt.dst_port), (src_ip, pkt.src_port)
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
        self._transmit(src_ip, pkt.dst_port, pkt.src_port, synack, now)

    def _cookie_ack(
        self, listener: NativeServerSocket, src_ip: str, pkt: TcpPacket, seg: Segment, now: float
    ) -> bool:
        """An ACK to a listener that sent cookies lately: if it echoes a valid cookie,
        the connection is created from it.  False: answer it as any unknown ACK."""
        local, remote = (self.interface.ip, pkt.dst_port), (src_ip, pkt.src_port)
        tsecr = seg.timestamps[1] if seg.timestamps is not None and self.config.timestamps else None
        grant = self.cookies.check(local, remote, seg.seq, seg.ack, now, tsecr)
        if grant is None:
            self.stats["syncookies_rejected"] += 1
            return False
        if self.live_count() >= self.limits.max_connections:
            self.limit_drops["max_connections"] += 1
            return False
        if self._accept_queue_full(pkt.dst_port):
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
            SocketAddress(*remote),
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

    def kick(self, conn: NativeConnection) -> None:
        """After any event: send what the machine queued, re-arm its timer, wake the app."""
        now = self.now()
        tcp = conn.tcp
        remote, rport, lport = conn.key
        if conn.app_closed:
            if tcp.orphan_retries is None:
                tcp.orphan(now, self.limits.fin_timeout, self.limits.orphan_retries)
            if tcp.unread:
                tcp.recv(now=now)  # nobody will read it; the window update goes out below
        for seg in tcp.segments_out():
            self._transmit(remote, lport, rport, seg, now)
        if tcp.state is State.TIME_WAIT and conn.key not in self._time_wait:
            self._admit_time_wait(conn, now)
        if tcp.is_closed:
            self._forget(conn)
        else:
            deadline = tcp.next_deadline()
            if deadline != conn.timer_when:
                if conn.timer is not None:
                    conn.timer.cancel()
                conn.timer = (
                    None if deadline is None else self.loop.call_at(deadline, self._on_timer, conn)
                )
                conn.timer_when = deadline
        conn.wake()

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

    def _on_timer(self, conn: NativeConnection) -> None:
        conn.timer = None
        conn.timer_when = None
        if self.drain is not None and conn.tcp.bytes_in_flight:
            # A loss timer (RTO, TLP, RACK) decides from the ACKs seen so far.  The
            # loop runs due timers before the frames still queued on the device (a
            # busy shard reads 64 per wakeup), so the ACK that makes a probe
            # pointless may be waiting there: take it in first, as Linux's softirq
            # has long done.  (A spurious probe's answer may reach a connection
            # already freed: a RST and a "no connection" count.)
            self.drain()
            if self.conns.get(conn.key) is not conn or conn.timer is not None:
                return  # closed by what came in, or re-armed by it (kick ran)
        conn.tcp.on_timer(self.now())
        self.kick(conn)

    def _forget(self, conn: NativeConnection) -> None:
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
            self._time_wait.discard(conn.key)
            self.stats["retransmits_closed"] += conn.tcp.stats.retransmits
            if conn.tcp.gave_up is not None:
                self.gave_up[conn.tcp.gave_up.value] += 1
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
            conn.timer_when = None
        if conn.on_established is not None and not conn.tcp.was_established:
            listener = self.listeners.get(conn.key[2])
            if listener is not None:  # a half-open connection that never made it
                listener.half_open -= 1
            conn.on_established = None

    def _transmit(self, remote: str, lport: int, rport: int, seg: Segment, now: float) -> None:
        pkt = TcpPacket(
            lport,
            rport,
            seg.seq,
            seg.ack,
            seg.flags,
            seg.window,
            seg.payload,
            mss=seg.mss,
            wscale=seg.wscale,
            sack_permitted=seg.sack_permitted,
            timestamps=seg.timestamps,
            sack_blocks=seg.sack_blocks,
        )
        self.stats["segments_out"] += 1
        self.interface.send_ipv4(remote, IpProto.TCP, pkt.build(self.interface.ip, remote), now)

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
