"""The ESTABLISHED fast path (header prediction) against the general machine.

Two connections, identical but for ``fast_path``, get the same randomized
sequence of events: peer segments built from the connection's own state (in
order, pure ACKs, duplicate ACKs, out of order, old, beyond the window, old
timestamps, SACK blocks, window changes, FIN, RST), application writes and
reads, and time passing with its timers.  After every event both must have
emitted the same segments and be in the same state, attribute by attribute.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seashard.tcp import Connection, Flags, Segment, TcpConfig
from seashard.tcp.seq import seq_add, seq_diff

from .helpers import PEER_ISS, Peer

A, P, F, R = Flags.ACK, Flags.PSH, Flags.FIN, Flags.RST
ISS = 77_000
SIZES = (0, 1, 100, 536, 1000, 1448, 1460, 2896, 4000)
WINDOWS = (0, 1, 100, 1000, 8192, 29200, 65535)


def _snap(obj: Any, depth: int = 0) -> Any:
    """``obj`` as plain data: objects become dicts of their attributes, recursively."""
    if obj is None or isinstance(obj, int | float | str | bytes | tuple | frozenset):
        return obj
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, list | deque):
        return [_snap(x, depth + 1) for x in obj]
    if isinstance(obj, dict):
        return {k: _snap(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, set):
        return sorted(obj)
    if hasattr(obj, "name") and hasattr(obj, "value") and type(obj).__module__ != "builtins":
        return obj  # an enum
    if depth > 4:
        return repr(obj)
    names: list[str] = []
    for cls in type(obj).__mro__:
        names += [n for n in getattr(cls, "__slots__", ()) if n not in names]
    names += [n for n in getattr(obj, "__dict__", {}) if n not in names]
    skip = {"fast_path", "config", "budget", "_budget"}
    return {
        n: _snap(getattr(obj, n), depth + 1)
        for n in names
        if n not in skip and not n.startswith("__") and hasattr(obj, n)
    }


def _pair(cfg: TcpConfig, peer_wscale: int | None, ts: bool, sack: bool) -> tuple[Any, ...]:
    """Two ESTABLISHED passive connections from the same handshake, and the peer."""
    conns = []
    peer = Peer(isn=PEER_ISS, window=29200, wscale=peer_wscale)
    for fast in (True, False):
        p = Peer(isn=PEER_ISS, window=29200, wscale=peer_wscale)
        syn = p.syn(sack_permitted=sack, timestamps=(1000, 0) if ts else None)
        c = Connection.accept(syn, ISS, 0.0, cfg, ts_offset=12345)
        c.fast_path = fast
        (synack,) = p.absorb(c.segments_out())
        tsecr = synack.timestamps[0] if synack.timestamps else 0
        ack = p.ack()
        if ts:
            ack.timestamps = (1001, tsecr)
        c.on_segment(ack, 0.0)
        assert c.segments_out() == []
        conns.append(c)
        peer = p
    return conns[0], conns[1], peer


class Driver:
    """Plays the peer against both connections, from the fast one's state."""

    def __init__(self, fast: Connection, slow: Connection, peer: Peer) -> None:
        self.fast, self.slow, self.peer = fast, slow, peer
        self.now = 0.0
        self.peer_ts = 1001

    def segment(self, kind: int, a: int, b: int, c: int) -> Segment:
        conn = self.fast
        peer = self.peer
        flight = seq_diff(conn.snd_max, conn.snd_una)
        ack = seq_add(conn.snd_una, (b % (flight + 1)) if flight else 0)
        window = WINDOWS[c % len(WINDOWS)] if c % 3 == 0 else peer.window
        size = SIZES[a % len(SIZES)]
        seq = conn.rcv_nxt
        flags = A | (P if size and b & 1 else 0)
        sack: tuple[tuple[int, int], ...] = ()
        self.peer_ts += c % 3
        tsval = self.peer_ts
        if kind == 1:  # out of order
            seq = seq_add(seq, 1 + (a % 3000))
        elif kind == 2:  # old data
            seq = seq_add(seq, -(1 + (a % 2000)))
        elif kind == 3:  # an old timestamp (PAWS)
            tsval = (self.peer_ts - 1 - (b % 5)) & 0xFFFFFFFF
        elif kind == 4 and flight:  # SACK blocks above the ACK
            left = seq_add(conn.snd_una, 1 + (a % flight))
            sack = ((left, seq_add(left, 1 + (b % 1448))),)
        elif kind == 5:  # FIN
            flags |= F
        elif kind == 6:  # RST at or near RCV.NXT
            flags = R | A if b & 1 else R
            seq = seq_add(seq, a % 2)
            size = 0
        elif kind == 7:  # ACK beyond what was sent, or far below
            ack = seq_add(conn.snd_max, 1 + (a % 100)) if b & 1 else seq_add(conn.snd_una, -70000)
        elif kind == 8:  # beyond the window
            size = 70000 if a & 1 else 4000
        payload = bytes((seq + i) & 0xFF for i in range(size))
        seg = Segment(seq, ack, flags, window, payload, sack_blocks=sack)
        if conn.ts_ok:
            tsecr = (int(self.now * 1000) + conn.ts_offset) & 0xFFFFFFFF if b % 7 else 0
            seg.timestamps = (tsval & 0xFFFFFFFF, tsecr)
        return seg

    def step(self, op: int, a: int, b: int, c: int) -> None:
        fast, slow = self.fast, self.slow
        if op < 10:
            kind = 0 if op < 5 else op - 4
            seg = self.segment(kind, a, b, c)
            before = fast.stats.segments_in
            fast.on_segment(seg, self.now)
            slow.on_segment(
                Segment(
                    seg.seq,
                    seg.ack,
                    seg.flags,
                    seg.window,
                    seg.payload,
                    timestamps=seg.timestamps,
                    sack_blocks=seg.sack_blocks,
                ),
                self.now,
            )
            assert fast.stats.segments_in == before + 1
        elif op == 10:
            data = bytes(i & 0xFF for i in range(SIZES[a % len(SIZES)] * (1 + b % 4)))
            if fast.send_space:
                n1 = fast.send(data, self.now)
                n2 = slow.send(data, self.now)
                assert n1 == n2
        elif op == 11:
            assert fast.recv(None if a & 1 else 1 + a % 3000, self.now) == slow.recv(
                None if a & 1 else 1 + a % 3000, self.now
            )
        elif op == 12:
            self.now += (0.001, 0.01, 0.05, 0.2, 1.0)[a % 5]
            self.peer_ts += 1
            for conn in (fast, slow):
                deadline = conn.next_deadline()
                if deadline is not None and deadline <= self.now:
                    conn.on_timer(self.now)
        else:
            self.now += 0.0005
        out_fast = fast.segments_out()
        out_slow = slow.segments_out()
        assert out_fast == out_slow
        self.peer.absorb(out_fast)
        assert _snap(fast) == _snap(slow)
        for conn in (fast, slow):  # the send buffer's length, kept beside it
            assert conn._sbuf_len == len(conn._sbuf)


OPS = st.lists(
    st.tuples(
        st.integers(0, 13),
        st.integers(0, 1 << 16),
        st.integers(0, 1 << 16),
        st.integers(0, 1 << 16),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=OPS,
    ts=st.booleans(),
    sack=st.booleans(),
    peer_wscale=st.sampled_from([None, 0, 7]),
    recv_buffer=st.sampled_from([4096, 65536, 256 * 1024]),
)
def test_fast_path_equals_general_machine(
    ops: list[tuple[int, int, int, int]],
    ts: bool,
    sack: bool,
    peer_wscale: int | None,
    recv_buffer: int,
) -> None:
    cfg = TcpConfig(recv_buffer=recv_buffer, timestamps=ts, sack=sack)
    fast, slow, peer = _pair(cfg, peer_wscale, ts, sack)
    assert _snap(fast) == _snap(slow)
    driver = Driver(fast, slow, peer)
    for op in ops:
        driver.step(*op)


def test_fast_path_is_taken_for_in_order_data_and_acks() -> None:
    """The prediction hits on the plain echo pattern (so the test above compares it)."""
    cfg = TcpConfig(timestamps=True, sack=True)
    fast, slow, peer = _pair(cfg, 7, True, True)
    hits = 0
    original = Connection._on_synchronized

    def counting(self: Connection, seg: Segment, now: float) -> None:
        nonlocal hits
        hits += self is fast
        original(self, seg, now)

    Connection._on_synchronized = counting  # type: ignore[method-assign]
    try:
        driver = Driver(fast, slow, peer)
        for i in range(50):
            driver.step(0, 4, i, 1)  # 1000 bytes in order, PSH
            driver.step(10, 4, 0, 0)  # the echo
            driver.step(11, 1, 0, 0)
    finally:
        Connection._on_synchronized = original  # type: ignore[method-assign]
    assert fast.stats.segments_in == 52 and hits == 0  # SYN, ACK, 50 by the fast path
