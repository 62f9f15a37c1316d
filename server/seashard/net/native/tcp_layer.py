"""One shard's TCP endpoints on the native stack: demultiplexing, listeners, timers, output.

Segments arrive from the Interface (already IPv4-checked), are parsed with
seashard.wire.tcp and handed to the owning sans-IO Connection; what it emits is
built and sent back through the Interface. Each connection has one loop timer
at the machine's next deadline; the clock is the loop's.

Which shard owns a flow: the device queue it arrived on (the kernel's flow
hash), except for connections this shard opened itself (their local port is
≡ shard id mod N, so any shard can route replies to the opener) and, when the
device has fewer queues than shards, the Toeplitz hash of the 4-tuple.
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
from seashard.net.native.streams import FlowKey, NativeConnection
from seashard.tcp.connection import Connection, State, TcpConfig
from seashard.tcp.isn import IsnGenerator
from seashard.tcp.listener import ListenVerdict, classify_listen, rst_for
from seashard.tcp.segment import Flags, Segment
from seashard.tcp.seq import seq_add
from seashard.wire.errors import MalformedError
from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.tcp import TcpPacket

if TYPE_CHECKING:
    from seashard.net.native.ipv4 import Interface

EPHEMERAL = range(32768, 61000)
BACKLOG = 1024


class NativeServerSocket:
    def __init__(self, layer: TcpLayer, address: SocketAddress, options: ListenOptions) -> None:
        self.layer = layer
        self.local_address = address
        self.options = options
        self.pending: deque[NativeConnection] = deque()
        self.half_open = 0
        self._waiter: asyncio.Future[None] | None = None
        self.aborted = False

    def deliver(self, conn: NativeConnection) -> None:
        self.half_open -= 1
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
        owner_of: Callable[[str, int, int], int] | None = None,
        forward: Callable[[int, str, bytes], None] | None = None,
        log: Callable[[str], None] = smp.log,
    ) -> None:
        self.interface = interface
        self.loop = loop
        self.shard_id = shard_id
        self.shards = shards
        self.config = config or TcpConfig(mss=interface.config.mtu - 40)
        self.owner_of = owner_of  # software RSS: (remote ip, remote port, local port) -> shard
        self.forward = forward  # hand a segment to its owning shard
        self.log = log
        self.conns: dict[FlowKey, NativeConnection] = {}
        self.listeners: dict[int, NativeServerSocket] = {}
        self.listened_elsewhere: set[int] = set()  # ports other shards listen on
        self.previous_time_wait: list[dict[str, Any]] = []  # from the last run (stack.py)
        self.isn = IsnGenerator()
        self.stats: Counter[str] = Counter()
        self.connections_total = 0
        self.segment_counts: Counter[FlowKey] = Counter()  # per live flow, for the admin table
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
        )
        if conn is not None:
            self.segment_counts[key] += 1
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
            if verdict is ListenVerdict.ACCEPT:
                if listener.half_open + len(listener.pending) >= BACKLOG:
                    self.stats["syn_backlog_full"] += 1
                    return
                self._accept(listener, src_ip, pkt, seg, now, iss)
                return
            if verdict is ListenVerdict.DROP:
                self.stats["segments_dropped_listen"] += 1
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
        local = SocketAddress(self.interface.ip, pkt.dst_port)
        remote = SocketAddress(src_ip, pkt.src_port)
        if iss is None:
            iss = self.isn.isn((local.host, local.port), (remote.host, remote.port), now)
        tcp = Connection.accept(seg, iss, now, self.config)
        conn = NativeConnection(self, tcp, local, remote, on_established=listener.deliver)
        listener.half_open += 1
        self._register(conn)
        self.segment_counts[conn.key] += 1
        self.kick(conn)

    def _register(self, conn: NativeConnection) -> None:
        self.conns[conn.key] = conn
        self.connections_total += 1

    # --------------------------------------------------------------- output

    def kick(self, conn: NativeConnection) -> None:
        """After any event: send what the machine queued, re-arm its timer, wake the app."""
        now = self.now()
        tcp = conn.tcp
        remote, rport, lport = conn.key
        if conn.app_closed and tcp.unread:
            tcp.recv(now=now)  # nobody will read it; the window update goes out below
        for seg in tcp.segments_out():
            self._transmit(remote, lport, rport, seg, now)
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

    def _on_timer(self, conn: NativeConnection) -> None:
        conn.timer = None
        conn.timer_when = None
        conn.tcp.on_timer(self.now())
        self.kick(conn)

    def _forget(self, conn: NativeConnection) -> None:
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
            self.stats["retransmits_closed"] += conn.tcp.stats.retransmits
            self.segment_counts.pop(conn.key, None)
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
        conn = NativeConnection(self, Connection.connect(iss, now, self.config), local, remote)
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
