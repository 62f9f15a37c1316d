"""The ARP cache on its own: queue limits, table limits, what is never learned."""

from native_helpers import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC
from scapy.layers.l2 import ARP, Ether

from seashard.net.native.arp import ArpCache
from seashard.wire.arp import ArpOp, ArpPacket


def make(**options: float) -> tuple[ArpCache, list[bytes]]:
    sent: list[bytes] = []
    return ArpCache(OUR_IP, OUR_MAC, sent.append, **options), sent  # type: ignore[arg-type]


def test_queue_is_bounded_oldest_dropped() -> None:
    arp, sent = make(max_queued=2)
    for i in range(4):
        arp.send_ipv4(PEER_IP, bytes([i]) * 20, now=0.0)
    assert arp.tx_drops == {"arp_queue_full": 2}
    arp.learn(PEER_IP, PEER_MAC, now=0.1)
    released = [Ether(f) for f in sent[1:]]
    assert [bytes(p.payload)[:1] for p in released] == [b"\x02", b"\x03"]


def test_table_is_bounded() -> None:
    arp, _ = make(max_entries=3)
    for i in range(5):
        arp.learn(f"10.0.0.{10 + i}", PEER_MAC, now=0.0)
    assert sorted(arp.entries(0.0)) == ["10.0.0.12", "10.0.0.13", "10.0.0.14"]


def test_never_learns_our_address_or_group_macs() -> None:
    arp, _ = make()
    arp.learn(OUR_IP, PEER_MAC, 0.0)
    arp.learn("0.0.0.0", PEER_MAC, 0.0)
    arp.learn(PEER_IP, "01:00:5e:00:00:01", 0.0)
    assert arp.entries(0.0) == {}


def test_resolve_starts_one_resolution() -> None:
    arp, sent = make()
    assert arp.resolve(PEER_IP, 0.0) is None
    assert arp.resolve(PEER_IP, 0.1) is None
    assert len(sent) == 1 and Ether(sent[0])[ARP].pdst == PEER_IP
    assert arp.pending() == [PEER_IP]
    reply = ArpPacket(ArpOp.REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP)
    assert arp.handle(reply, 0.2) is None
    assert arp.resolve(PEER_IP, 0.3) == PEER_MAC and arp.pending() == []


def test_unsolicited_reply_creates_no_entry_but_refreshes_a_known_one() -> None:
    shared: list[tuple[str, str]] = []
    arp, _ = make(entry_ttl=10.0)
    arp.on_learn = lambda ip, mac: shared.append((ip, mac))
    # Nobody asked: no entry (Linux, arp_accept=0), counted.
    assert arp.handle(ArpPacket(ArpOp.REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), 0.0) is None
    assert arp.entries(0.0) == {} and shared == []
    assert arp.counters["arp_unsolicited_replies"] == 1
    # A request for us creates one; a later reply refreshes it (and is shared).
    arp.handle(ArpPacket(ArpOp.REQUEST, PEER_MAC, PEER_IP, target_ip=OUR_IP), 1.0)
    arp.handle(ArpPacket(ArpOp.REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), 8.0)
    assert arp.lookup(PEER_IP, 17.0) == PEER_MAC  # 8 + 10 > 17
    assert shared == [(PEER_IP, PEER_MAC)] * 2
    assert arp.counters["arp_unsolicited_replies"] == 1


def test_spoofed_requests_keep_the_table_bounded_oldest_out() -> None:
    arp, _ = make(max_entries=100)
    for i in range(1000):
        sender = f"10.9.{i // 250}.{i % 250 + 1}"
        arp.handle(ArpPacket(ArpOp.REQUEST, PEER_MAC, sender, target_ip=OUR_IP), i * 0.001)
    table = arp.entries(1.0)
    assert len(table) == 100
    assert sorted(table) == sorted(f"10.9.3.{i % 250 + 1}" for i in range(900, 1000))
    assert arp.counters["arp_cache_evictions"] == 900


def test_resolutions_in_progress_are_bounded() -> None:
    arp, sent = make(max_entries=10)
    for i in range(50):
        arp.send_ipv4(f"10.0.1.{i + 1}", b"x" * 20, now=0.0)
    assert len(arp.pending()) == 10 and len(sent) == 10  # one request each, no more
    assert arp.tx_drops["arp_pending_full"] == 40
    assert arp.resolve("10.0.2.1", 0.0) is None and len(arp.pending()) == 10


def test_wakeup_hook_gets_each_retry_deadline() -> None:
    arp, _ = make(retry_interval=0.5)
    deadlines: list[float] = []
    arp.wakeup = deadlines.append
    arp.resolve(PEER_IP, 10.0)
    arp.poll(10.5)
    arp.poll(11.0)
    arp.poll(11.5)
    assert deadlines == [10.5, 11.0, 11.5]
    assert arp.next_deadline() is None


def test_a_reply_that_lands_on_another_shard_reaches_the_shard_that_asked() -> None:
    # AF_PACKET fanout hashes every ARP frame between two hosts to one shard: the
    # reply to shard 0's request comes in on shard 1, which did not ask.
    asker, asker_sent = make()
    other, _ = make()
    passed: list[tuple[str, str]] = []
    other.on_reply_elsewhere = lambda ip, mac: passed.append((ip, mac))
    asker.send_ipv4(PEER_IP, b"\x45" + bytes(19), now=0.0)  # queued behind a request
    reply = ArpPacket(ArpOp.REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP)
    assert other.handle(reply, 0.1) is None
    assert other.entries(0.1) == {}  # still no entry where nobody asked (arp_accept=0)
    assert passed == [(PEER_IP, PEER_MAC)]
    # the stack hands it to the other shards; the one resolving it takes it
    assert asker.answer(*passed[0], now=0.1) is True
    assert asker.lookup(PEER_IP, 0.2) == PEER_MAC and asker.pending() == []
    released = Ether(asker_sent[-1])
    assert released.dst == PEER_MAC and bytes(released.payload)[:1] == b"\x45"
    # a shard that is not resolving the address takes nothing from it
    bystander, _ = make()
    assert bystander.answer(PEER_IP, PEER_MAC, 0.1) is False
    assert bystander.entries(0.1) == {}
