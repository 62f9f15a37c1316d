"""Frame-level tests of the per-shard L3: scapy frames in, scapy-dissected frames out."""

import pytest
from native_helpers import GW_IP, GW_MAC, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, Stack
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from seashard.net.native.devices import MemoryDevice
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.wire import TcpPacket

BCAST = "ff:ff:ff:ff:ff:ff"


def from_peer(*layers: object, dst_mac: str = OUR_MAC) -> Ether:
    pkt = Ether(dst=dst_mac, src=PEER_MAC)
    for layer in layers:
        pkt = pkt / layer  # type: ignore[operator]
    return pkt


def arp_request(stack: Stack) -> None:
    stack.rx(from_peer(ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP), dst_mac=BCAST))


def test_arp_request_gets_exact_reply(stack: Stack) -> None:
    out = stack.rx(
        from_peer(ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP), dst_mac=BCAST)
        / (b"\0" * 18)
    )
    assert len(out) == 1
    eth = Ether(out[0])
    assert (eth.dst, eth.src, eth.type) == (PEER_MAC, OUR_MAC, 0x0806)
    arp = eth[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 2)
    assert (arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (OUR_MAC, OUR_IP, PEER_MAC, PEER_IP)
    assert len(out[0]) == 42
    assert stack.iface.arp.lookup(PEER_IP, 0.0) == PEER_MAC
    c = stack.iface.counters
    assert (c["arp_requests_received"], c["arp_replies_sent"], c["frames_sent"]) == (1, 1, 1)


def test_arp_request_for_another_address_is_ignored(stack: Stack) -> None:
    out = stack.rx(
        from_peer(ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst="10.0.0.3"), dst_mac=BCAST)
    )
    assert out == []
    assert stack.iface.arp.lookup(PEER_IP, 0.0) is None
    assert stack.iface.counters["frames_accepted"] == 1


def test_arp_probe_is_answered_but_not_learned(stack: Stack) -> None:
    out = stack.rx(from_peer(ARP(op=1, hwsrc=PEER_MAC, psrc="0.0.0.0", pdst=OUR_IP), dst_mac=BCAST))
    arp = Ether(out[0])[ARP]
    assert (arp.op, arp.hwdst, arp.pdst) == (2, PEER_MAC, "0.0.0.0")
    assert stack.iface.arp.entries(0.0) == {}


def test_ping_is_answered(stack: Stack) -> None:
    arp_request(stack)
    payload = bytes(range(56))
    request = from_peer(
        IP(src=PEER_IP, dst=OUR_IP, ttl=3) / ICMP(type=8, id=0x4242, seq=9) / payload
    )
    out = stack.rx(request, now=1.0)
    assert len(out) == 1
    eth = Ether(out[0])
    assert (eth.dst, eth.src) == (PEER_MAC, OUR_MAC)
    ip, icmp = eth[IP], eth[ICMP]
    assert (ip.src, ip.dst, ip.proto, ip.ttl) == (OUR_IP, PEER_IP, 1, 64)
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (0, 0, 0x4242, 9)
    assert bytes(icmp.payload) == payload
    # Checksums as scapy computes them.
    fresh = ip.copy()
    del fresh.chksum, fresh[ICMP].chksum
    assert bytes(fresh) == bytes(ip)
    c = stack.iface.counters
    assert (c["icmp_echo_requests"], c["icmp_echo_replies"]) == (1, 1)


def test_ping_from_an_unknown_host_resolves_it_first(stack: Stack) -> None:
    out = stack.rx(from_peer(IP(src=PEER_IP, dst=OUR_IP) / ICMP(id=1, seq=1) / b"abc"), now=5.0)
    assert len(out) == 1
    who_has = Ether(out[0])
    assert who_has.dst == BCAST and who_has[ARP].op == 1 and who_has[ARP].pdst == PEER_IP
    out = stack.rx(from_peer(ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=OUR_MAC, pdst=OUR_IP)))
    assert len(out) == 1 and Ether(out[0])[ICMP].type == 0 and Ether(out[0]).dst == PEER_MAC


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (from_peer(IP(src=PEER_IP, dst=OUR_IP, chksum=0x1234) / ICMP()), "ipv4_bad_checksum"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP) / ICMP(chksum=1)), "icmp_bad_checksum"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP, flags="MF") / ICMP()), "fragment"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP, frag=100) / ICMP()), "fragment"),
        (from_peer(IP(src=PEER_IP, dst="10.0.0.9") / ICMP()), "not_for_us"),
        (from_peer(IP(src=PEER_IP, dst="10.0.0.255") / ICMP(), dst_mac=BCAST), "broadcast"),
        (from_peer(IP(src=PEER_IP, dst="255.255.255.255") / ICMP(), dst_mac=BCAST), "broadcast"),
        (from_peer(IP(src=PEER_IP, dst="224.0.0.1") / ICMP(), dst_mac=BCAST), "multicast"),
        (from_peer(IP(src=OUR_IP, dst=OUR_IP) / ICMP()), "bad_source"),
        (from_peer(IP(src="127.0.0.1", dst=OUR_IP) / ICMP()), "bad_source"),
        (from_peer(IP(src="10.0.0.255", dst=OUR_IP) / ICMP()), "bad_source"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP, ttl=0) / ICMP()), "ttl_zero"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP) / UDP(dport=53)), "unsupported_protocol"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=0)), "icmp_unsupported_type"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=8, code=1)), "icmp_bad_code"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP, proto=1) / b"\x08"), "icmp_truncated"),
        (from_peer(IP(src=PEER_IP, dst=OUR_IP), dst_mac="02:00:00:00:00:99"), "not_our_mac"),
        (from_peer(IPv6(), dst_mac="33:33:00:00:00:01"), "multicast"),
        (from_peer(IPv6()), "unsupported_ethertype"),
        (from_peer(ARP(op=3, psrc=PEER_IP, pdst=OUR_IP)), "arp_unsupported_op"),
        (from_peer(ARP(op=1, psrc=OUR_IP, pdst=OUR_IP, hwsrc=PEER_MAC)), "arp_address_conflict"),
        (from_peer(ARP(op=2, hwsrc=BCAST, psrc=PEER_IP, pdst=OUR_IP)), "arp_bad_sender"),
        (bytes(from_peer(ARP()))[:30], "arp_truncated"),
        (bytes(from_peer(IP(src=PEER_IP, dst=OUR_IP)))[:30], "ipv4_truncated"),
        (bytes(from_peer(IP(src=PEER_IP, dst=OUR_IP, version=6))), "ipv4_bad_version"),
        (b"\x02\x00\x00\x00", "ethernet_truncated"),
    ],
)
def test_dropped_and_counted_without_output(stack: Stack, frame: object, reason: str) -> None:
    arp_request(stack)
    stack.dev.take_sent()
    assert stack.rx(frame) == []
    assert stack.iface.drops == {reason: 1}
    assert stack.iface.counters["frames_dropped"] == 1
    assert stack.tcp == []


def test_tcp_goes_to_the_handler(stack: Stack) -> None:
    seg = TCP(sport=40000, dport=1234, flags="S", seq=77) / b"hi"
    out = stack.rx(from_peer(IP(src=PEER_IP, dst=OUR_IP) / seg), now=2.5)
    assert out == []
    (ip, data, now) = stack.tcp[0]
    assert (ip.src, ip.dst, ip.proto, now) == (PEER_IP, OUR_IP, 6, 2.5)
    parsed = TcpPacket.parse(data, ip.src, ip.dst)
    assert (parsed.src_port, parsed.dst_port, parsed.seq, parsed.payload) == (
        40000,
        1234,
        77,
        b"hi",
    )
    assert stack.iface.counters["tcp_segments_received"] == 1


def test_handler_malformed_error_is_counted() -> None:
    dev = MemoryDevice()

    def handler(ip: object, seg: bytes, now: float) -> None:
        TcpPacket.parse(seg, PEER_IP, OUR_IP)

    iface = Interface(InterfaceConfig(OUR_IP, mac=OUR_MAC), dev.send, tcp_handler=handler)
    iface.receive(bytes(from_peer(IP(src=PEER_IP, dst=OUR_IP) / TCP(chksum=7))), 0.0)
    iface.receive(bytes(from_peer(IP(src=PEER_IP, dst=OUR_IP) / TCP())), 0.0)
    assert iface.drops == {"tcp_bad_checksum": 1}
    assert iface.counters["frames_accepted"] == 1


def test_handlers_other_errors_propagate() -> None:
    def handler(ip: object, seg: bytes, now: float) -> None:
        raise RuntimeError("bug")

    iface = Interface(InterfaceConfig(OUR_IP), MemoryDevice().send, tcp_handler=handler)
    with pytest.raises(RuntimeError):
        iface.receive(bytes(from_peer(IP(src=PEER_IP, dst=iface.ip) / TCP(), dst_mac=iface.mac)), 0)


def test_no_tcp_handler_drops(stack: Stack) -> None:
    stack.iface.tcp_handler = None
    stack.rx(from_peer(IP(src=PEER_IP, dst=OUR_IP) / TCP()))
    assert stack.iface.drops == {"no_tcp_handler": 1}


def test_off_link_destination_resolves_the_gateway(stack: Stack) -> None:
    assert stack.iface.send_ipv4("8.8.8.8", 6, b"segment", now=10.0)
    out = stack.dev.take_sent()
    assert len(out) == 1
    who_has = Ether(out[0])
    assert (who_has.dst, who_has.src, who_has.type) == (BCAST, OUR_MAC, 0x0806)
    a = who_has[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (
        1,
        OUR_MAC,
        OUR_IP,
        "00:00:00:00:00:00",
        GW_IP,
    )
    assert stack.iface.send_ipv4("8.8.4.4", 6, b"second", now=10.1)
    assert stack.dev.take_sent() == []  # queued behind the same resolution
    out = stack.rx(
        Ether(dst=OUR_MAC, src=GW_MAC) / ARP(op=2, hwsrc=GW_MAC, psrc=GW_IP, pdst=OUR_IP)
    )
    assert len(out) == 2
    for frame, dst, data in zip(out, ("8.8.8.8", "8.8.4.4"), (b"segment", b"second"), strict=True):
        eth = Ether(frame)
        assert (eth.dst, eth.src, eth.type) == (GW_MAC, OUR_MAC, 0x0800)
        assert (eth[IP].src, eth[IP].dst, eth[IP].proto) == (OUR_IP, dst, 6)
        assert bytes(eth[IP].payload) == data
    assert Ether(out[0])[IP].id + 1 == Ether(out[1])[IP].id
    # Now cached: the next packet leaves at once.
    stack.iface.send_ipv4("1.1.1.1", 1, b"x", now=11.0)
    assert Ether(stack.dev.take_sent()[0]).dst == GW_MAC


def test_on_link_destination_is_resolved_directly(stack: Stack) -> None:
    stack.iface.send_ipv4("10.0.0.9", 6, b"x", now=0.0)
    assert Ether(stack.dev.take_sent()[0])[ARP].pdst == "10.0.0.9"


def test_arp_gives_up_after_three_requests(stack: Stack) -> None:
    iface = stack.iface
    iface.send_ipv4("10.0.0.99", 6, b"a", now=0.0)
    iface.send_ipv4("10.0.0.99", 6, b"b", now=0.2)
    requests = [len(stack.dev.take_sent())]
    assert iface.next_deadline() == 1.0
    for t in (0.5, 1.0, 1.5, 2.0, 2.5):
        iface.poll(t)
        requests.append(len(stack.dev.take_sent()))
    assert requests == [1, 0, 1, 0, 1, 0]
    assert iface.tx_drops == {}
    iface.poll(3.0)
    assert stack.dev.take_sent() == []
    assert iface.tx_drops == {"arp_failed": 2}
    assert iface.counters["arp_requests_sent"] == 3
    assert iface.counters["arp_resolution_failures"] == 1
    assert iface.next_deadline() is None
    # A later packet starts over.
    iface.send_ipv4("10.0.0.99", 6, b"c", now=10.0)
    assert Ether(stack.dev.take_sent()[0])[ARP].pdst == "10.0.0.99"


def test_entries_expire(stack: Stack) -> None:
    arp_request(stack)  # learned at t=0
    arp = stack.iface.arp
    assert arp.lookup(PEER_IP, 59.9) == PEER_MAC
    assert arp.lookup(PEER_IP, 60.0) is None
    stack.iface.send_ipv4(PEER_IP, 6, b"x", now=61.0)
    assert Ether(stack.dev.take_sent()[0])[ARP].op == 1


def test_gratuitous_arp_updates_known_entry(stack: Stack) -> None:
    arp_request(stack)
    new_mac = "02:00:00:00:00:77"
    stack.rx(from_peer(ARP(op=2, hwsrc=new_mac, psrc=PEER_IP, pdst=PEER_IP), dst_mac=BCAST))
    assert stack.iface.arp.lookup(PEER_IP, 1.0) == new_mac
    # ...but does not add strangers.
    stack.rx(from_peer(ARP(op=2, hwsrc=new_mac, psrc="10.0.0.50", pdst="10.0.0.50"), dst_mac=BCAST))
    assert stack.iface.arp.lookup("10.0.0.50", 1.0) is None


def test_sharing_hooks() -> None:
    learned: list[tuple[str, str]] = []
    dev = MemoryDevice()
    iface = Interface(
        InterfaceConfig(OUR_IP, mac=OUR_MAC),
        dev.send,
        on_arp_learn=lambda ip, mac: learned.append((ip, mac)),
    )
    iface.receive(bytes(from_peer(ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP))), 0.0)
    assert learned == [(PEER_IP, PEER_MAC)]
    # An entry from another shard releases queued packets and is not echoed back.
    iface.send_ipv4("10.0.0.8", 17, b"queued", now=1.0)
    dev.take_sent()
    iface.arp.learn("10.0.0.8", "02:00:00:00:00:08", now=1.2)
    out = dev.take_sent()
    assert len(out) == 1 and Ether(out[0]).dst == "02:00:00:00:00:08"
    assert learned == [(PEER_IP, PEER_MAC)]
    assert iface.arp.entries(2.0) == {PEER_IP: PEER_MAC, "10.0.0.8": "02:00:00:00:00:08"}


def test_output_errors_are_counted() -> None:
    dev = MemoryDevice()
    iface = Interface(InterfaceConfig(OUR_IP, mac=OUR_MAC), dev.send)  # no gateway
    assert not iface.send_ipv4("8.8.8.8", 6, b"x", 0.0)
    assert not iface.send_ipv4(OUR_IP, 6, b"x", 0.0)
    assert not iface.send_ipv4(PEER_IP, 6, bytes(1481), 0.0)
    assert iface.send_ipv4(PEER_IP, 6, bytes(1480), 0.0)
    assert iface.tx_drops == {"no_route": 1, "loopback": 1, "too_big": 1}
    assert iface.send_ipv4("10.0.0.255", 17, b"all", 0.0)
    assert Ether(dev.sent[-1]).dst == BCAST


def test_device_refusal_is_counted() -> None:
    iface = Interface(InterfaceConfig(OUR_IP, mac=OUR_MAC), lambda frame: False)
    iface.send_ipv4(PEER_IP, 6, b"x", 0.0)
    assert iface.tx_drops == {"device": 1}
    assert iface.counters["frames_sent"] == 0


def test_config_defaults_and_validation() -> None:
    cfg = InterfaceConfig("192.168.7.20", "255.255.0.0", gateway="192.168.0.1")
    assert cfg.mac == "02:53:c0:a8:07:14"  # locally administered, derived from the address
    assert InterfaceConfig("10.1.2.3", "24").netmask == "255.255.255.0"
    with pytest.raises(ValueError):
        InterfaceConfig("10.0.0.2", gateway="10.0.1.1")
    with pytest.raises(ValueError):
        InterfaceConfig("10.0.0.300")
    with pytest.raises(ValueError):
        InterfaceConfig("10.0.0.2", mac="01:00:5e:00:00:01")
