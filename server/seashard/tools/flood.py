"""Attack traffic and a victim's-eye probe, for the native stack's flood tests and bench.

``send`` writes spoofed TCP segments straight onto an interface (AF_PACKET), in a
network namespace of the caller's own; bounded in count and in time::

    python -m seashard.tools.flood send IFACE DST_IP DST_MAC DPORT --kind syn \\
        --count 50000 --rate 5000 [--seed 1] [--max-seconds 60]

- ``syn``: SYNs (MSS 1460) from random source addresses and ports (hping3
  ``-S --rand-source``);
- ``ack``: ACKs with random sequence and acknowledgment numbers from random
  sources (a blind ACK flood: each meets the listener, and the SYN-cookie check
  when cookies went out lately);
- ``data``: 100-byte data segments for established flows (``--src-ip`` and
  ``--flows SPORT:RCV_NXT:SND_UNA,...``: the victim client's address, ports and
  the server's sequence state, as its /connections table shows them) whose
  sequence numbers lie half the sequence space away from the receive window
  and whose acknowledgment numbers are as far from anything sent: every one is
  out of window (a random one could land in the window and corrupt the stream,
  which no TCP can refuse: that is RFC 5961's residual risk, not this test's).

``probe`` is the client whose service the flood must not take away:
``--connections`` long-lived connections echo random messages and check every
byte, and a new connection is opened (connect, one echo, close) every
``--new-every`` seconds; one JSON line reports echo rate, latency percentiles,
mismatches, errors and connect times::

    python -m seashard.tools.flood probe HOST PORT --connections 20 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from pathlib import Path

from seashard.wire.ethernet import ETH_P_IPV4, EthernetFrame
from seashard.wire.ipv4 import IpProto, IPv4Packet
from seashard.wire.tcp import TcpFlags, TcpPacket

_OUT_OF_WINDOW = 1 << 31  # half the sequence space away from the window: outside it


def _random_source(rng: random.Random) -> str:
    """A random unicast address outside 0/8, 127/8 and multicast/reserved space."""
    while True:
        a = rng.randrange(1, 224)
        if a not in (10, 127, 192):
            return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def build(
    kind: str, rng: random.Random, dst_ip: str, dport: int, args: argparse.Namespace
) -> bytes:
    """One attack segment as an IPv4 packet."""
    if kind == "data":
        src = args.src_ip
        sport, rcv_nxt, snd_una = rng.choice(args.flows)
        seq = (rcv_nxt + _OUT_OF_WINDOW + rng.getrandbits(28)) & 0xFFFFFFFF
        ack = (snd_una + _OUT_OF_WINDOW + rng.getrandbits(28)) & 0xFFFFFFFF
        payload = rng.randbytes(100)
        tcp = TcpPacket(sport, dport, seq, ack, TcpFlags.ACK | TcpFlags.PSH, 65535, payload)
    else:
        src = _random_source(rng)
        sport = rng.randrange(1024, 65536)
        if kind == "syn":
            tcp = TcpPacket(sport, dport, rng.getrandbits(32), 0, TcpFlags.SYN, 64240, mss=1460)
        else:
            tcp = TcpPacket(
                sport, dport, rng.getrandbits(32), rng.getrandbits(32), TcpFlags.ACK, 502
            )
    ident = rng.getrandbits(16)
    return IPv4Packet(src, dst_ip, IpProto.TCP, tcp.build(src, dst_ip), ident=ident).build()


def send(args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    src_mac = Path(f"/sys/class/net/{args.iface}/address").read_text().strip()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.iface, 0))
    start = time.monotonic()
    deadline = start + args.max_seconds
    sent = 0
    batch = 50
    try:
        while sent < args.count and time.monotonic() < deadline:
            for _ in range(min(batch, args.count - sent)):
                packet = build(args.kind, rng, args.dst_ip, args.dport, args)
                frame = EthernetFrame(args.dst_mac, src_mac, ETH_P_IPV4, packet).build()
                try:
                    sock.send(frame)
                except OSError:
                    continue  # a full device queue drops it, as a wire would
                sent += 1
            # Pace to the rate: sleep until this many should have left.
            due = start + sent / args.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        sock.close()
    return {"sent": sent, "seconds": round(time.monotonic() - start, 3)}


# -------------------------------------------------------------------- the probe


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def probe(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    latencies: list[float] = []
    connects: list[float] = []
    result: dict[str, object] = {"echoes": 0, "mismatched": 0, "errors": []}
    errors: list[str] = result["errors"]  # type: ignore[assignment]
    new_ok = new_failed = 0
    stop_at = time.monotonic() + args.duration

    async def echo_once(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
    ) -> bool:
        t0 = time.monotonic()
        writer.write(payload)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(payload)), args.timeout)
        latencies.append(time.monotonic() - t0)
        result["echoes"] = int(result["echoes"]) + 1  # type: ignore[call-overload]
        if got != payload:
            result["mismatched"] = int(result["mismatched"]) + 1  # type: ignore[call-overload]
            return False
        return True

    async def long_lived(i: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), args.timeout
            )
        except (OSError, TimeoutError) as exc:
            errors.append(f"connect {i}: {exc!r}")
            return
        try:
            while time.monotonic() < stop_at:
                await echo_once(reader, writer, rng.randbytes(rng.randint(1, args.size)))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            errors.append(f"connection {i}: {exc!r}")
        finally:
            writer.close()

    async def newcomer() -> None:
        nonlocal new_ok, new_failed
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), args.timeout
            )
            connects.append(time.monotonic() - t0)
            ok = await echo_once(reader, writer, b"newcomer")
            writer.close()
            new_ok += ok
            new_failed += not ok
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            new_failed += 1
            errors.append(f"new connection: {exc!r}")

    async def newcomers() -> None:
        tasks = []
        while time.monotonic() < stop_at:
            tasks.append(asyncio.create_task(newcomer()))
            await asyncio.sleep(args.new_every)
        await asyncio.gather(*tasks)

    began = time.monotonic()
    await asyncio.gather(*(long_lived(i) for i in range(args.connections)), newcomers())
    elapsed = time.monotonic() - began
    latencies.sort()
    connects.sort()
    result.update(
        seconds=round(elapsed, 3),
        rate=round(int(result["echoes"]) / elapsed, 1),  # type: ignore[call-overload]
        p50_ms=round(_percentile(latencies, 0.50) * 1000, 3),
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 3),
        max_ms=round((latencies[-1] if latencies else 0.0) * 1000, 3),
        new_ok=new_ok,
        new_failed=new_failed,
        connect_max_ms=round((connects[-1] if connects else 0.0) * 1000, 3),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seashard.tools.flood")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="spoofed segments onto an interface (AF_PACKET, root)")
    s.add_argument("iface")
    s.add_argument("dst_ip")
    s.add_argument("dst_mac")
    s.add_argument("dport", type=int)
    s.add_argument("--kind", choices=["syn", "ack", "data"], default="syn")
    s.add_argument("--count", type=int, default=50_000)
    s.add_argument("--rate", type=float, default=5_000.0, help="segments per second")
    s.add_argument("--max-seconds", type=float, default=120.0, help="stop by then regardless")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--src-ip", help="data: the victim flows' source address")
    s.add_argument(
        "--flows",
        type=lambda t: [tuple(int(x) for x in f.split(":")) for f in t.split(",")],
        default=[],
        help="data: SPORT:RCV_NXT:SND_UNA of each victim flow, comma-separated",
    )
    p = sub.add_parser("probe", help="echo connections that must keep working")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--size", type=int, default=1024, help="largest message")
    p.add_argument("--new-every", type=float, default=0.25, help="seconds between newcomers")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.cmd == "send":
        if args.kind == "data" and not (args.src_ip and args.flows):
            parser.error("--kind data needs --src-ip and --flows")
        out: dict[str, object] = dict(send(args))
    else:
        out = asyncio.run(probe(args))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
