"""Per-shard ARP cache and resolver (RFC 826), sans-IO.

Frames go out through the ``transmit`` callable the owner supplies; time comes in
as ``now`` (seconds, any monotonic origin). Entries learned from the wire are
offered to the other shards through ``on_learn``; entries they learned arrive
through :meth:`ArpCache.learn`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from seashard.wire.arp import ArpOp, ArpPacket
from seashard.wire.checksum import Buffer
from seashard.wire.ethernet import (
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IPV4,
    EthernetFrame,
    is_multicast_mac,
    mac_to_str,
)

Transmit = Callable[[Buffer], object]  # a frame: bytes, or the bytearray or view TCP built
LearnHook = Callable[[str, str], None]
WakeupHook = Callable[[float], None]

_UNSPECIFIED = "0.0.0.0"


@dataclass(slots=True)
class _Pending:
    """A resolution in progress: IPv4 packets waiting for the MAC, and the retry clock."""

    next_retry: float
    requests_sent: int = 0
    packets: deque[bytes] = field(default_factory=deque)


class ArpCache:
    """Answers ARP for our address, learns neighbours and resolves next hops.

    A next hop without an entry gets a broadcast request at once and again every
    ``retry_interval`` seconds, ``max_requests`` requests in all; one interval
    after the last, the packets queued for it are dropped and counted in
    ``tx_drops["arp_failed"]``. Entries live ``entry_ttl`` seconds from their
    last confirmation.

    Bounded against spoofed traffic: at most ``max_entries`` entries (the oldest
    makes room, counted in ``arp_cache_evictions``; Linux's gc_thresh3 is 1024)
    and as many resolutions in progress (past that the packet is dropped,
    ``tx_drops["arp_pending_full"]``). Only a request for our address, or an
    answer to a resolution of ours, creates an entry: a reply nobody asked for
    only refreshes a known one (Linux, arp_accept=0), else it is counted in
    ``arp_unsolicited_replies`` and handed to ``on_reply_elsewhere``: on an
    AF_PACKET fanout the kernel hashes every ARP reply between two hosts to one
    and the same shard, whichever shard asked, so the stack passes such a reply
    to the other shards, and one that is resolving that address takes it
    (`answer`).
    """

    def __init__(
        self,
        ip: str,
        mac: str,
        transmit: Transmit,
        *,
        on_learn: LearnHook | None = None,
        on_reply_elsewhere: LearnHook | None = None,
        counters: dict[str, int] | None = None,
        drops: Counter[str] | None = None,
        tx_drops: Counter[str] | None = None,
        entry_ttl: float = 60.0,
        retry_interval: float = 1.0,
        max_requests: int = 3,
        max_queued: int = 64,
        max_entries: int = 1024,
    ) -> None:
        self.ip = ip
        self.mac = mac_to_str(mac)
        self.transmit = transmit
        self.on_learn = on_learn
        self.on_reply_elsewhere = on_reply_elsewhere
        # Called with a deadline whenever a new one is created, so an event-loop
        # owner can arm a timer without polling.
        self.wakeup: WakeupHook | None = None
        self.counters: dict[str, int] = counters if counters is not None else {}
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self.tx_drops: Counter[str] = tx_drops if tx_drops is not None else Counter()
        for name in (
            "arp_requests_received",
            "arp_replies_received",
            "arp_requests_sent",
            "arp_replies_sent",
            "arp_entries_learned",
            "arp_resolution_failures",
            "arp_cache_evictions",
            "arp_unsolicited_replies",
        ):
            self.counters.setdefault(name, 0)
        self.entry_ttl = entry_ttl
        self.retry_interval = retry_interval
        self.max_requests = max_requests
        self.max_queued = max_queued
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, float]] = {}  # ip -> (mac, expires_at)
        # Bumped whenever an entry changes its MAC or goes before its expiry, so a
        # copy of (mac, expires_at) (TCP's per-connection header templates) stays
        # valid while the generation is the same and the expiry has not passed.
        self.generation = 0
        self._pending: dict[str, _Pending] = {}

    # -- lookups ---------------------------------------------------------------------

    def lookup(self, ip: str, now: float) -> str | None:
        """The cached MAC of ``ip``, or None (expired entries are forgotten)."""
        entry = self._entries.get(ip)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[ip]
            return None
        return entry[0]

    def entry(self, ip: str, now: float) -> tuple[str, float] | None:
        """(mac, expires_at) of ``ip``'s live entry, or None; see ``generation``."""
        if self.lookup(ip, now) is None:
            return None
        return self._entries[ip]

    def entries(self, now: float) -> dict[str, str]:
        """A snapshot of the live entries, ip -> mac (for the admin endpoint)."""
        return {ip: mac for ip, (mac, exp) in self._entries.items() if exp > now}

    def forget(self, ip: str) -> None:
        """Drop the entry for ``ip`` (the next packet to it resolves afresh)."""
        if self._entries.pop(ip, None) is not None:
            self.generation += 1

    def pending(self) -> list[str]:
        """The addresses being resolved."""
        return list(self._pending)

    def resolve(self, ip: str, now: float) -> str | None:
        """The MAC of ``ip`` if known; otherwise start resolving it and return None."""
        mac = self.lookup(ip, now)
        if mac is None and ip not in self._pending and len(self._pending) < self.max_entries:
            self._start(ip, now)
        return mac

    # -- output ----------------------------------------------------------------------

    def send_ipv4(self, next_hop: str, packet: bytes, now: float) -> None:
        """Send an IPv4 ``packet`` to the on-link ``next_hop``, queueing it while unresolved."""
        mac = self.lookup(next_hop, now)
        if mac is not None:
            self.transmit(EthernetFrame(mac, self.mac, ETH_P_IPV4, packet).build())
            return
        pending = self._pending.get(next_hop)
        if pending is None:
            if len(self._pending) >= self.max_entries:
                self.tx_drops["arp_pending_full"] += 1
                return
            pending = self._start(next_hop, now)
        if len(pending.packets) >= self.max_queued:
            pending.packets.popleft()
            self.tx_drops["arp_queue_full"] += 1
        pending.packets.append(packet)

    def _start(self, ip: str, now: float) -> _Pending:
        pending = self._pending[ip] = _Pending(next_retry=now)
        self._request(ip, pending, now)
        return pending

    def _request(self, ip: str, pending: _Pending, now: float) -> None:
        request = ArpPacket(ArpOp.REQUEST, self.mac, self.ip, target_ip=ip)
        self.transmit(EthernetFrame(BROADCAST_MAC, self.mac, ETH_P_ARP, request.build()).build())
        self.counters["arp_requests_sent"] += 1
        pending.requests_sent += 1
        pending.next_retry = now + self.retry_interval
        if self.wakeup is not None:
            self.wakeup(pending.next_retry)

    # -- input -----------------------------------------------------------------------

    def handle(self, pkt: ArpPacket, now: float) -> str | None:
        """Process a received ARP packet; returns a drop reason, or None when accepted."""
        if pkt.op == ArpOp.REQUEST:
            self.counters["arp_requests_received"] += 1
        elif pkt.op == ArpOp.REPLY:
            self.counters["arp_replies_received"] += 1
        else:
            return "arp_unsupported_op"
        if is_multicast_mac(pkt.sender_mac):
            return "arp_bad_sender"
        if pkt.sender_ip == self.ip:
            # Someone else claims our address (or a reflection of our own frame).
            return "arp_address_conflict"
        for_us = pkt.target_ip == self.ip
        known = pkt.sender_ip in self._entries or pkt.sender_ip in self._pending
        if pkt.op == ArpOp.REPLY and for_us and not known:
            self.counters["arp_unsolicited_replies"] += 1  # creates no entry (arp_accept=0)
            if self.on_reply_elsewhere is not None:  # ... unless another shard asked
                self.on_reply_elsewhere(pkt.sender_ip, mac_to_str(pkt.sender_mac))
        elif pkt.sender_ip != _UNSPECIFIED and (known or (for_us and pkt.op == ArpOp.REQUEST)):
            # RFC 826 merge: refresh a known sender; add it when the packet is for us.
            self._learn(pkt.sender_ip, pkt.sender_mac, now)
            if self.on_learn is not None:
                self.on_learn(pkt.sender_ip, pkt.sender_mac)
        if for_us and pkt.op == ArpOp.REQUEST:
            # A probe (sender 0.0.0.0, RFC 5227) is answered too: it detects our address.
            reply = ArpPacket(ArpOp.REPLY, self.mac, self.ip, pkt.sender_mac, pkt.sender_ip)
            self.transmit(EthernetFrame(pkt.sender_mac, self.mac, ETH_P_ARP, reply.build()).build())
            self.counters["arp_replies_sent"] += 1
        return None

    def answer(self, ip: str, mac: str, now: float) -> bool:
        """A reply for our address that another shard received: taken only while
        this shard is resolving ``ip`` (so no entry comes of a reply nobody asked for)."""
        if ip not in self._pending or is_multicast_mac(mac):
            return False
        self._learn(ip, mac_to_str(mac), now)
        return True

    def learn(self, ip: str, mac: str, now: float) -> None:
        """Accept an entry another shard learned (does not call ``on_learn`` back)."""
        if ip in (self.ip, _UNSPECIFIED) or is_multicast_mac(mac):
            return
        self._learn(ip, mac_to_str(mac), now)

    def _learn(self, ip: str, mac: str, now: float) -> None:
        if ip not in self._entries:
            self.counters["arp_entries_learned"] += 1
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest insertion
                self.counters["arp_cache_evictions"] += 1
                self.generation += 1
        elif self._entries[ip][0] != mac:
            self.generation += 1  # the neighbour moved
        self._entries[ip] = (mac, now + self.entry_ttl)
        pending = self._pending.pop(ip, None)
        if pending is not None:
            for packet in pending.packets:
                self.transmit(EthernetFrame(mac, self.mac, ETH_P_IPV4, packet).build())

    # -- timers ----------------------------------------------------------------------

    def poll(self, now: float) -> None:
        """Run due retries and give-ups, and forget expired entries."""
        for ip, pending in list(self._pending.items()):
            if now < pending.next_retry:
                continue
            if pending.requests_sent >= self.max_requests:
                del self._pending[ip]
                self.counters["arp_resolution_failures"] += 1
                if pending.packets:
                    self.tx_drops["arp_failed"] += len(pending.packets)
            else:
                self._request(ip, pending, now)
        for ip in [ip for ip, (_, exp) in self._entries.items() if exp <= now]:
            del self._entries[ip]

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has work to do (expiry is lazy and needs no timer)."""
        return min((p.next_retry for p in self._pending.values()), default=None)
