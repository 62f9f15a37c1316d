"""Two Connections back to back through an in-memory network that loses,
duplicates, delays and reorders segments, on a virtual clock."""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

from seashard.tcp import Connection, Segment, State, TcpConfig

TOP = 2**32 - 1


@dataclass
class Endpoint:
    name: str
    payload: bytes
    conn: Connection | None = None
    written: int = 0
    closed: bool = False
    got: bytearray = field(default_factory=bytearray)
    eof: bool = False


@dataclass
class Result:
    a: Connection
    b: Connection
    a_sent: bytes
    b_sent: bytes
    a_got: bytes
    b_got: bytes
    now: float
    steps: int
    delivered: int
    dropped: int
    duplicated: int


class LossyNet:
    def __init__(
        self, rng: random.Random, loss: float, dup: float, latency: float, jitter: float
    ) -> None:
        self.rng = rng
        self.loss = loss
        self.dup = dup
        self.latency = latency
        self.jitter = jitter
        self.queue: list[tuple[float, int, str, Segment]] = []
        self.counter = itertools.count()
        self.dropped = self.duplicated = self.delivered = 0

    def send(self, now: float, dest: str, seg: Segment) -> None:
        rng = self.rng
        if rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 1
        if rng.random() < self.dup:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            t = now + self.latency + rng.random() * self.jitter
            heapq.heappush(self.queue, (t, next(self.counter), dest, seg))

    def next_time(self) -> float | None:
        return self.queue[0][0] if self.queue else None

    def due(self, now: float) -> list[tuple[str, Segment]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, dest, seg = heapq.heappop(self.queue)
            out.append((dest, seg))
        self.delivered += len(out)
        return out


def random_config(rng: random.Random, **overrides: object) -> TcpConfig:
    cfg = TcpConfig(
        mss=rng.choice([536, 1000, 1460]),
        recv_buffer=rng.choice([4096, 16384, 65535, 256 * 1024]),
        send_buffer=rng.choice([8192, 65536, 256 * 1024]),
        wscale=rng.choice([None, 0, 2, 7, 14]),
        rto_initial=1.0,
        rto_min=0.2,
        delayed_ack=rng.choice([0.0, 0.04, 0.2]),
        nagle=rng.random() < 0.3,
        max_retries=12,
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def run_transfer(
    seed: int,
    size_a: int,
    size_b: int,
    loss: float | None = None,
    max_steps: int = 200_000,
    **overrides: object,
) -> Result:
    rng = random.Random(seed)
    if loss is None:
        loss = rng.choice([0.0, 0.01, 0.05, 0.1])
    net = LossyNet(
        rng,
        loss=loss,
        dup=rng.choice([0.0, 0.02, 0.05]),
        latency=rng.uniform(0.001, 0.05),
        jitter=rng.choice([0.0, 0.005, 0.05]),
    )
    cfg_a = random_config(rng, **overrides)
    cfg_b = random_config(rng, **overrides)
    # ISNs anywhere, often right below the wrap
    iss_a = rng.choice([rng.randrange(2**32), TOP - rng.randrange(100_000)])
    iss_b = rng.choice([rng.randrange(2**32), TOP - rng.randrange(100_000)])
    pa = rng.randbytes(size_a)
    pb = rng.randbytes(size_b)
    ends = {"a": Endpoint("a", pa), "b": Endpoint("b", pb)}
    now = 0.0
    ends["a"].conn = Connection.connect(iss_a, now, cfg_a)

    def app(e: Endpoint) -> None:
        c = e.conn
        if c is None or c.state in (State.SYN_SENT, State.SYN_RECEIVED):
            return
        if c.is_closed:
            return
        # read in random-sized gulps (sometimes not at all: a slow reader)
        if rng.random() < 0.8:
            data = c.recv(rng.choice([None, 100, 4096]), now)
            e.got += data
        if c.at_eof:
            e.eof = True
        if e.written < len(e.payload) and c.send_space:
            chunk = rng.choice([50, 1000, 20_000, 300_000])
            e.written += c.send(e.payload[e.written : e.written + chunk], now)
        if e.written == len(e.payload) and not e.closed:
            c.close(now)
            e.closed = True

    def flush(e: Endpoint) -> None:
        c = e.conn
        if c is None:
            return
        other = "b" if e.name == "a" else "a"
        for seg in c.segments_out():
            # invariants of everything that goes on the wire
            assert 0 <= seg.seq <= TOP and 0 <= seg.ack <= TOP, seg
            assert 0 <= seg.window <= 0xFFFF, seg
            assert len(seg.payload) <= c.mss, seg
            net.send(now, other, seg)
        # the receiver never holds more than it offered
        assert c.unread <= c.config.recv_buffer

    steps = 0
    for steps in range(1, max_steps + 1):  # noqa: B007
        for e in ends.values():
            app(e)
            flush(e)
        a, b = ends["a"].conn, ends["b"].conn
        if (
            a is not None
            and b is not None
            and a.is_closed
            and b.is_closed
            and not net.queue
            and ends["a"].eof
            and ends["b"].eof
        ):
            break
        times = [t for t in (net.next_time(),) if t is not None]
        for e in ends.values():
            if e.conn is not None:
                d = e.conn.next_deadline()
                if d is not None:
                    times.append(d)
        if not times:
            break  # nothing can ever happen again: stuck
        now = max(now, min(times))
        for dest, seg in net.due(now):
            e = ends[dest]
            if e.conn is None:
                if seg.flags == seg.flags.SYN:
                    e.conn = Connection.accept(seg, iss_b, now, cfg_b)
            else:
                e.conn.on_segment(seg, now)
            flush(e)
        for e in ends.values():
            if e.conn is not None:
                d = e.conn.next_deadline()
                if d is not None and d <= now:
                    e.conn.on_timer(now)
                    flush(e)
    a, b = ends["a"].conn, ends["b"].conn
    assert a is not None and b is not None
    for e in ends.values():
        assert e.conn is not None
        e.got += e.conn.recv(None, now)
    return Result(
        a,
        b,
        pa,
        pb,
        bytes(ends["a"].got),
        bytes(ends["b"].got),
        now,
        steps,
        net.delivered,
        net.dropped,
        net.duplicated,
    )
