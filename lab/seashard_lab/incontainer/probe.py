"""Packet-level checks with scapy, run INSIDE the probe container (NET_RAW, NET_ADMIN).

    python3 /tmp/seashard-lab/probe.py CHECK --ip IP [OPTIONS]   (copied in by seashard_lab.lab)

Each check prints one JSON line with what it sent and what came back; the
lab tests decide what is right.  Checks:
  arp        who-has IP (broadcast): every is-at answer within --timeout
  ping       --count N echo requests with distinct ids and payloads
  syn        a SYN to --port: the answer's flags, seq and ack
  handshake  SYN, ACK, a data segment, FIN to --port (the echo service): every
             segment that came back; the probe kernel's own RSTs are held back
             by an iptables rule for the duration (removed afterwards)
  malformed  --mac MAC: frames a stack must drop (bad IPv4/TCP checksums,
             truncated headers, a bogus IHL, a runt ARP), and any answers
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.all import (  # noqa: E402
    ARP,
    ICMP,
    IP,
    TCP,
    AsyncSniffer,
    Ether,
    Raw,
    conf,
    get_if_hwaddr,
    send,
    sendp,
    sr1,
    srp,
)

conf.verb = 0
IFACE = "eth0"


def tcp_info(p: Any) -> dict[str, Any]:
    t = p[TCP]
    return {
        "flags": str(t.flags),
        "seq": int(t.seq),
        "ack": int(t.ack),
        "sport": int(t.sport),
        "dport": int(t.dport),
        "window": int(t.window),
        "payload": bytes(t.payload).decode("latin-1"),
        "options": [o[0] for o in t.options],
    }


def check_arp(args: argparse.Namespace) -> dict[str, Any]:
    answered, _ = srp(
        Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst=args.ip),
        iface=IFACE,
        timeout=args.timeout,
        multi=True,
    )
    answers = [
        {"op": int(r[ARP].op), "psrc": r[ARP].psrc, "hwsrc": r[ARP].hwsrc, "eth_src": r[Ether].src}
        for _, r in answered
    ]
    return {"answers": answers, "probe_mac": get_if_hwaddr(IFACE)}


def check_ping(args: argparse.Namespace) -> dict[str, Any]:
    replies = []
    ident = random.randrange(1, 0xFFFF)
    for seq in range(args.count):
        payload = f"seashard-lab-probe-{seq}-".encode() * 3
        r = sr1(IP(dst=args.ip) / ICMP(id=ident, seq=seq) / Raw(payload), timeout=args.timeout)
        if r is not None and r.haslayer(ICMP):
            replies.append(
                {
                    "type": int(r[ICMP].type),
                    "id": int(r[ICMP].id),
                    "seq": int(r[ICMP].seq),
                    "payload_ok": bytes(r[ICMP].payload) == payload,
                    "src": r[IP].src,
                }
            )
    return {"sent": args.count, "id": ident, "replies": replies}


def check_syn(args: argparse.Namespace) -> dict[str, Any]:
    sport = random.randrange(40000, 60000)
    isn = random.randrange(1 << 32)
    r = sr1(
        IP(dst=args.ip) / TCP(sport=sport, dport=args.port, flags="S", seq=isn),
        timeout=args.timeout,
    )
    return {
        "sport": sport,
        "isn": isn,
        "reply": tcp_info(r) if r is not None and r.haslayer(TCP) else None,
    }


def first_copy_payload(packets: list[Any], start: int) -> bytes:
    """The byte stream from sequence number ``start`` on (retransmissions counted once)."""
    by_seq: dict[int, bytes] = {}
    for p in list(packets):
        payload = bytes(p[TCP].payload)
        if payload:
            by_seq.setdefault(int(p[TCP].seq), payload)
    stream, seq = b"", start
    while seq in by_seq:
        stream += by_seq[seq]
        seq = (seq + len(by_seq[seq])) & 0xFFFFFFFF
    return stream


@contextmanager
def kernel_rst_held(ip: str) -> Iterator[None]:
    """The probe's kernel knows nothing of scapy's connection and would reset it."""
    rule = ["OUTPUT", "-p", "tcp", "-d", ip, "--tcp-flags", "RST", "RST", "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=False)


def check_handshake(args: argparse.Namespace) -> dict[str, Any]:
    sport = random.randrange(40000, 60000)
    isn = random.randrange(1 << 32)
    data = b"hello from the lab probe\n"
    out: dict[str, Any] = {"sport": sport, "isn": isn, "data_len": len(data)}
    ip = IP(dst=args.ip)
    with kernel_rst_held(args.ip):
        seen: list[Any] = []
        sniffer = AsyncSniffer(
            iface=IFACE,
            filter=f"tcp and src host {args.ip} and src port {args.port} and dst port {sport}",
            prn=seen.append,
            store=False,
        )
        sniffer.start()
        time.sleep(0.3)
        synack = sr1(
            ip / TCP(sport=sport, dport=args.port, flags="S", seq=isn, options=[("MSS", 1460)]),
            timeout=args.timeout,
        )
        if synack is None or not synack.haslayer(TCP):
            sniffer.stop()
            out["synack"] = None
            return out
        out["synack"] = tcp_info(synack)
        srv = int(synack[TCP].seq)
        seq = (isn + 1) & 0xFFFFFFFF
        ack = (srv + 1) & 0xFFFFFFFF
        send(ip / TCP(sport=sport, dport=args.port, flags="A", seq=seq, ack=ack))
        send(ip / TCP(sport=sport, dport=args.port, flags="PA", seq=seq, ack=ack) / Raw(data))
        seq = (seq + len(data)) & 0xFFFFFFFF
        # wait for the echo, ACK it, then close our side
        deadline = time.time() + args.timeout
        echoed = b""
        while time.time() < deadline and len(echoed) < len(data):
            time.sleep(0.1)
            echoed = first_copy_payload(seen, (srv + 1) & 0xFFFFFFFF)
        ack = (ack + len(echoed)) & 0xFFFFFFFF
        send(ip / TCP(sport=sport, dport=args.port, flags="FA", seq=seq, ack=ack))
        seq = (seq + 1) & 0xFFFFFFFF
        deadline = time.time() + args.timeout
        fin = None
        while time.time() < deadline and fin is None:
            time.sleep(0.1)
            fin = next((p for p in list(seen) if p[TCP].flags.F), None)
        if fin is not None:
            send(
                ip
                / TCP(
                    sport=sport,
                    dport=args.port,
                    flags="A",
                    seq=seq,
                    ack=(int(fin[TCP].seq) + 1) & 0xFFFFFFFF,
                )
            )
        time.sleep(0.3)
        sniffer.stop()
    out["segments"] = [tcp_info(p) for p in seen if p.haslayer(TCP)]
    out["echoed"] = echoed.decode("latin-1")
    return out


def check_malformed(args: argparse.Namespace) -> dict[str, Any]:
    src_mac = get_if_hwaddr(IFACE)
    src_ip = conf.route.route(args.ip)[1]
    sport = random.randrange(40000, 60000)

    def l2(ethertype: int) -> bytes:
        return bytes(Ether(dst=args.mac, src=src_mac, type=ethertype))

    def syn(port: int, **fields: Any) -> Any:
        return TCP(sport=port, dport=args.port, flags="S", seq=1, **fields)

    good = bytes(IP(src=src_ip, dst=args.ip) / syn(sport))
    tcp_bad_offset = bytearray(bytes(syn(sport + 4)))
    tcp_bad_offset[12] = 0xF0  # data offset 15: a 60-byte header in a 20-byte segment
    icmp = bytearray(bytes(ICMP(id=7, seq=7) / Raw(b"x" * 16)))
    icmp[2:4] = b"\xde\xad"
    frames = {
        # the TCP/ICMP/ARP layers are wrong, the IPv4 header is fine: these
        # cross the lab's bridges and reach the native stack
        "tcp_bad_checksum": l2(0x0800)
        + bytes(IP(src=src_ip, dst=args.ip) / syn(sport + 2, chksum=0xDEAD)),
        "tcp_truncated_header": l2(0x0800)
        + bytes(IP(src=src_ip, dst=args.ip, proto=6) / Raw(bytes(syn(sport + 3))[:8])),
        "tcp_bad_data_offset": l2(0x0800)
        + bytes(IP(src=src_ip, dst=args.ip, proto=6) / Raw(bytes(tcp_bad_offset))),
        "icmp_bad_checksum": l2(0x0800)
        + bytes(IP(src=src_ip, dst=args.ip, proto=1) / Raw(bytes(icmp))),
        "arp_bad_lengths": l2(0x0806)
        + bytes(ARP(op=1, hwlen=9, plen=4, psrc=src_ip, pdst=args.ip))[:28],
        # a broken IPv4 header: docker's bridges (br_netfilter, bridge-nf-call-iptables=1)
        # usually discard these before any port sees them
        "ipv4_bad_header_checksum": l2(0x0800)
        + bytes(IP(src=src_ip, dst=args.ip, chksum=0xBEEF) / syn(sport + 1)),
        "ipv4_truncated": l2(0x0800) + good[:12],
        "ipv4_bogus_ihl": l2(0x0800) + bytes([0x4F]) + good[1:],  # IHL 15: 60 bytes not there
    }
    sniffer = AsyncSniffer(
        iface=IFACE, filter=f"tcp and src host {args.ip} and dst portrange {sport}-{sport + 4}"
    )
    sniffer.start()
    time.sleep(0.3)
    for frame in frames.values():
        sendp(Raw(frame), iface=IFACE)
    time.sleep(1.0)
    sniffer.stop()
    answers = [tcp_info(p) for p in sniffer.results or [] if p.haslayer(TCP)]
    return {"sent": sorted(frames), "answers": answers}


CHECKS = {
    "arp": check_arp,
    "ping": check_ping,
    "syn": check_syn,
    "handshake": check_handshake,
    "malformed": check_malformed,
}


def main() -> int:
    p = argparse.ArgumentParser(prog="labprobe")
    p.add_argument("check", choices=sorted(CHECKS))
    p.add_argument("--ip", required=True)
    p.add_argument("--port", type=int, required=True)  # seashard_lab.lab passes plan's
    p.add_argument("--mac", default="")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args()
    result = CHECKS[args.check](args)
    result["check"] = args.check
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
