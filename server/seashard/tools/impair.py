"""A lossy, reordering L2 link in userspace: relays frames between two interfaces.

    python -m seashard.tools.impair IF_A IF_B [--loss 0.05] [--reorder 0.25]
        [--duplicate 0.0] [--seed N] [--duration SECONDS] [--all-frames]

Where the kernel has no netem (CONFIG_NET_SCH_NETEM unset, as on our machines),
this stands in for ``tc qdisc ... netem loss 5% reorder 25%``: put it between
two veth ends and every IPv4 frame crossing has the given chance to be dropped,
held back behind the next frame (reordered), or sent twice. ARP and other
non-IPv4 frames pass untouched unless --all-frames: the experiment is about the
transport, and a neighbour table that gave up would only blur it. Seeded (a
random seed unless given; it is printed), so a run can be replayed; bounded by
--duration. Counts go to stderr at exit.
"""

from __future__ import annotations

import argparse
import random
import select
import signal
import socket
import struct
import sys
import time
from collections import Counter

ETH_P_ALL = 0x0003
ETH_P_IP = b"\x08\x00"
SO_RCVBUFFORCE = 33
SOL_PACKET, PACKET_STATISTICS = 263, 6
HOLD_TIMEOUT = 0.005  # a held frame goes out after this long even if nothing follows it


def _open(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # Room for a burst (a 64 KB TSO frame cut by the kernel is 45 frames at once): the
    # relay's losses should be the ones it draws, not its socket's.
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)  # past rmem_max (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((ifname, ETH_P_ALL))
    s.setblocking(False)
    return s


def _send(sock: socket.socket, frame: bytes, counts: Counter[str]) -> None:
    """Send one frame; a full queue gets 10 ms to drain before the frame counts as lost."""
    for attempt in range(2):
        try:
            sock.send(frame)
            return
        except BlockingIOError:
            if attempt == 0:
                select.select([], [sock], [], 0.01)
        except OSError:  # e.g. ENOBUFS, or a frame the interface refuses
            break
    counts["send_failed"] += 1


def relay(
    a: str,
    b: str,
    loss: float,
    reorder: float,
    duplicate: float,
    seed: int,
    duration: float,
    all_frames: bool = False,
) -> Counter[str]:
    rng = random.Random(seed)
    socks = {a: _open(a), b: _open(b)}
    peer = {a: socks[b], b: socks[a]}
    held: dict[str, tuple[bytes, float] | None] = {a: None, b: None}
    counts: Counter[str] = Counter()
    stop_at = time.monotonic() + duration if duration > 0 else float("inf")
    by_fd = {s.fileno(): name for name, s in socks.items()}
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stopping and time.monotonic() < stop_at:
        ready, _, _ = select.select(list(by_fd), [], [], HOLD_TIMEOUT)
        now = time.monotonic()
        for fd in ready:
            src = by_fd[fd]
            while True:
                try:
                    frame, addr = socks[src].recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue  # our own transmission on this interface
                counts["frames"] += 1
                out = peer[src]
                if not all_frames and frame[12:14] != ETH_P_IP:
                    _send(out, frame, counts)  # ARP and the like cross untouched
                    continue
                if rng.random() < loss:
                    counts["dropped"] += 1
                    continue
                if held[src] is None and rng.random() < reorder:
                    held[src] = (frame, now)
                    counts["reordered"] += 1
                    continue
                _send(out, frame, counts)
                if rng.random() < duplicate:
                    _send(out, frame, counts)
                    counts["duplicated"] += 1
                pending = held[src]
                if pending is not None:
                    _send(out, pending[0], counts)
                    held[src] = None
        for src, h in held.items():
            if h is not None and now - h[1] >= HOLD_TIMEOUT:
                _send(peer[src], h[0], counts)
                held[src] = None
    for s in socks.values():
        try:  # frames the kernel dropped because the relay was behind (struct tpacket_stats)
            _packets, drops = struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            if drops:
                counts["socket_overruns"] += drops
        except OSError:
            pass
        s.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seashard-impair", description=__doc__.split("\n\n")[0])
    p.add_argument("if_a")
    p.add_argument("if_b")
    p.add_argument("--loss", type=float, default=0.05)
    p.add_argument("--reorder", type=float, default=0.25)
    p.add_argument("--duplicate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    p.add_argument("--all-frames", action="store_true", help="impair ARP and non-IPv4 too")
    p.add_argument("--duration", type=float, default=300.0, help="seconds; 0: until stopped")
    args = p.parse_args(argv)
    for name in ("loss", "reorder", "duplicate"):
        if not 0.0 <= getattr(args, name) < 1.0:
            p.error(f"--{name} must be in [0, 1)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    try:
        counts = relay(
            args.if_a,
            args.if_b,
            args.loss,
            args.reorder,
            args.duplicate,
            seed,
            args.duration,
            args.all_frames,
        )
    except OSError as exc:
        print(f"seashard-impair: {exc}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"impair: {summary} (seed {seed})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
