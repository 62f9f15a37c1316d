"""An idle connection is lean: slots, and the helpers it does not need are made only when
needed (the SACK scoreboard, the out-of-order queue, the forced-push marks, the buffers'
containers) and let go again.  These tests check the structure and, above all, that a
connection which started lean still recovers from loss and reordering exactly as before.
Memory itself is measured by scripts/bench_scale, never here."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seashard.tcp import Connection, Segment, TcpConfig
from seashard.tcp.buffers import RecvBuffer, SendBuffer
from seashard.tcp.cc import Cubic, Reno
from seashard.tcp.congestion import NewReno
from seashard.tcp.connection import TcpStats
from seashard.tcp.rack import Rack
from seashard.tcp.reassembly import Reassembler, ReassemblyBudget
from seashard.tcp.rtt import RttEstimator
from seashard.tcp.sack import ReceiverSack, Scoreboard
from seashard.tcp.seq import seq_add

from .helpers import ISS, PEER_ISS, A, Peer, config, only

MSS = 1000


def sack_conn(
    cfg: TcpConfig | None = None, budget: ReassemblyBudget | None = None
) -> tuple[Connection, Peer]:
    peer = Peer(mss=MSS)
    conn = Connection.accept(peer.syn(sack_permitted=True), ISS, 0.0, cfg or TcpConfig(), budget)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.01)
    assert conn.sack_ok
    conn.segments_out()
    return conn, peer


def echo_once(conn: Connection, peer: Peer, t: float, n: int = 64) -> None:
    """The peer sends ``n`` bytes, the app reads them and writes them back, the peer ACKs."""
    conn.on_segment(peer.data(b"q" * n), t)
    peer.absorb(conn.segments_out())
    assert conn.recv(now=t) == b"q" * n
    assert conn.send(b"r" * n, t) == n
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), t + 0.01)
    conn.segments_out()


def assert_lean(conn: Connection) -> None:
    assert conn._board is None
    assert conn._reasm is None
    assert conn._push_marks == ()
    assert conn._out == ()
    assert conn._rbuf._chunks == ()
    assert conn._sbuf._chunks == ()
    assert conn._rsack.blocks == ()
    assert conn._rack is not None and conn._rack.segs == ()


def _sack_ack(peer: Peer, conn: Connection, got: list[tuple[int, int]], t: float) -> list[Segment]:
    """The peer ACKs its in-order point with SACK blocks (offsets from ISS+1)."""
    s = peer.seg(A)
    s.sack_blocks = tuple((seq_add(ISS + 1, a), seq_add(ISS + 1, b)) for a, b in got)
    conn.on_segment(s, t)
    return conn.segments_out()


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize(
    "obj",
    [
        Connection.connect(ISS, 0.0),
        TcpStats(),
        Cubic(MSS),
        Reno(MSS),
        NewReno(MSS),
        RttEstimator(),
        SendBuffer(10),
        RecvBuffer(),
        Reassembler(),
        Rack(),
        ReceiverSack(),
        Scoreboard(),
    ],
    ids=lambda o: type(o).__name__,
)
def test_per_connection_objects_have_no_instance_dict(obj: object) -> None:
    assert not hasattr(obj, "__dict__")


def test_an_idle_established_connection_holds_no_helpers_and_no_timer() -> None:
    conn, peer = sack_conn()
    assert_lean(conn)
    echo_once(conn, peer, 0.1)
    assert conn.stats.bytes_out == 64 and peer.received == b"r" * 64
    assert_lean(conn)  # everything it made for the exchange is gone again
    assert conn.next_deadline() is None  # an idle ESTABLISHED connection holds no timer
    assert conn.reassembly.held == 0 and conn.reassembly.ranges() == []


# ------------------------------------------------------------------ sender: SACK


def _lose_and_sack(
    conn: Connection, peer: Peer, lost: set[int], t: float
) -> tuple[list[int], list[bytes], int, float]:
    """Send 10 segments (as many go as cwnd allows); those at ``lost`` indexes are lost,
    the peer SACKs the others one by one, one RTT later.  Returns the offsets (from this
    burst) and first bytes of what went out meanwhile, the burst's start, and the time."""
    base = conn.snd_nxt
    conn.send(b"".join(bytes([65 + i]) * MSS for i in range(10)), t)
    segs = conn.segments_out()
    n = len(segs)
    assert n >= 4
    first = min(lost)
    peer.absorb(segs[:first])
    off = (base - ISS - 1) & 0xFFFFFFFF
    got: list[tuple[int, int]] = []
    out: list[Segment] = []
    t += 0.01  # the ACKs come back one RTT later
    for i in range(first + 1, n):
        if i in lost:
            continue
        start = off + i * MSS
        if got and got[-1][1] == start:
            got[-1] = (got[-1][0], start + MSS)
        else:
            got.append((start, start + MSS))
        out += _sack_ack(peer, conn, sorted(got, reverse=True)[:3], t)
        assert conn._board is not None and conn._board.sacked > 0
        t += 0.001
    rtx = [((s.seq - ISS - 1) & 0xFFFFFFFF) - off for s in out]
    peer.rcv_nxt = seq_add(base, n * MSS)  # the retransmissions arrive
    return rtx, [bytes(s.payload[:1]) for s in out], n, t


def test_first_loss_after_a_clean_start_builds_the_scoreboard_and_recovers_twice() -> None:
    conn, peer = sack_conn(config(cc="newreno"))
    echo_once(conn, peer, 0.05)
    assert conn._board is None  # no loss so far: no scoreboard
    # Segments 2 and 5 (offsets 1000 and 4000 from this burst) are lost.
    rtx, first_bytes, n, t = _lose_and_sack(conn, peer, {1, 4}, 0.2)
    assert n == 10
    assert rtx[:2] == [1000, 4000] and first_bytes[:2] == [b"B", b"E"]  # both holes, in order
    assert conn.stats.sack_recoveries == 1 and conn.stats.timeouts == 0
    conn.on_segment(peer.ack(), t + 0.01)
    conn.segments_out()
    assert not conn.in_recovery
    assert conn._board is None  # SND.UNA passed every SACKed byte: let go again
    # A second loss: the scoreboard is made again and recovery runs as the first time.
    conn.send(b"", t)  # (nothing: the rest of the write went out with the ACK)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), t + 0.02)
    conn.segments_out()
    assert conn.snd_una == conn.snd_max and conn._board is None
    rtx, first_bytes, n, t = _lose_and_sack(conn, peer, {0}, t + 0.1)
    assert rtx[:1] == [0] and first_bytes[:1] == [b"A"]
    assert conn.stats.sack_recoveries == 2 and conn.stats.timeouts == 0
    conn.on_segment(peer.ack(), t + 0.01)
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), t + 0.02)
    conn.segments_out()
    assert not conn.in_recovery and conn.stats.timeouts == 0
    assert conn._board is None


def test_a_dsack_only_ack_on_a_lean_connection_is_harmless() -> None:
    conn, peer = sack_conn()
    echo_once(conn, peer, 0.05)
    dup = peer.seg(A)
    una = conn.snd_una
    dup.sack_blocks = ((seq_add(una, -64), una),)  # D-SACK below SND.UNA (RFC 2883)
    conn.on_segment(dup, 0.2)
    assert conn.stats.dsacks_received == 1
    assert conn.segments_out() == [] and not conn.in_recovery
    assert conn.next_deadline() is None


# ------------------------------------------------------------------ receiver: reordering


def test_reordering_builds_the_queue_and_lets_it_go_once_the_gap_fills() -> None:
    budget = ReassemblyBudget(1 << 20)
    conn, peer = sack_conn(budget=budget)
    echo_once(conn, peer, 0.05)
    t = 0.2
    for _ in range(2):  # twice: the queue made again works as the first one did
        expect = conn.rcv_nxt
        a, b, c = (peer.data(bytes([x]) * 100) for x in b"abc")
        conn.on_segment(c, t)  # out of order: held, SACKed at once
        ack = only(conn.segments_out())
        assert conn._reasm is not None and conn.reassembly.held == 100
        assert budget.used > 0
        assert ack.ack == expect and len(ack.sack_blocks) == 1
        assert ack.sack_blocks[0][1] - ack.sack_blocks[0][0] == 100
        conn.on_segment(b, t)
        assert only(conn.segments_out()).sack_blocks  # still a gap before b
        conn.on_segment(a, t)  # fills it: all of it is delivered in order
        ack = conn.segments_out()[-1]
        assert ack.sack_blocks == ()
        assert conn.recv(now=t) == b"a" * 100 + b"b" * 100 + b"c" * 100
        assert conn._reasm is None and budget.used == 0
        assert conn._rsack.blocks == ()
        t += 0.1


def test_an_out_of_order_fin_on_a_lean_connection_waits_for_the_gap() -> None:
    conn, peer = sack_conn()
    a = peer.data(b"a" * 100)
    fin = peer.fin(b"z" * 50)
    conn.on_segment(fin, 0.1)
    conn.segments_out()
    assert not conn.fin_received and conn._reasm is not None
    conn.on_segment(a, 0.1)
    conn.segments_out()
    assert conn.fin_received and conn.recv(now=0.1) == b"a" * 100 + b"z" * 50
    assert conn._reasm is None


def test_closing_with_held_data_gives_the_budget_back() -> None:
    budget = ReassemblyBudget(1 << 20)
    conn, peer = sack_conn(budget=budget)
    peer.data(b"a" * 100)  # lost
    conn.on_segment(peer.data(b"b" * 300), 0.1)
    assert budget.used > 0
    conn.abort(0.2)
    assert budget.used == 0 and conn._reasm is None and conn._board is None


# ------------------------------------------------------------------ forced push marks


def test_push_marks_are_made_by_a_large_write_and_let_go_on_close() -> None:
    peer = Peer(mss=MSS, window=4000)
    conn = Connection.accept(peer.syn(), ISS, 0.0, TcpConfig())
    peer.absorb(conn.segments_out())
    conn.on_segment(peer.ack(), 0.01)
    conn.segments_out()
    assert conn._push_marks == ()
    conn.send(b"x" * 20 * MSS, 0.1)  # more than half the peer's window: forced pushes
    assert len(conn._push_marks) > 0  # the marks beyond what the window let out
    pushed = [s for s in conn.segments_out() if s.flags & 0x08]
    assert pushed  # and the segments that went out carry the forced push
    conn.abort(0.2)
    assert conn._push_marks == ()


# ------------------------------------------------------------------ the buffers


def test_send_buffer_goes_back_to_empty_and_serves_again() -> None:
    buf = SendBuffer(10)
    assert buf.write(memoryview(b"abcdefghijkl")) == 10  # capacity
    assert buf.peek(2, 3) == b"cde" and buf.space == 0
    buf.consume(4)
    assert buf.peek(0, 6) == b"efghij" and len(buf) == 6
    assert buf.write(b"XY") == 2 and buf.peek(4, 4) == b"ijXY"
    buf.consume(8)
    assert len(buf) == 0 and buf._chunks == ()
    assert buf.write(bytearray(b"mn")) == 2 and buf.peek(0, 2) == b"mn"
    buf.clear()
    assert len(buf) == 0 and buf.space == 10


def test_send_buffer_keeps_written_bytes_and_peeks_views_of_them() -> None:
    """A bulk writer's bytes are not copied in, and a segment's worth is a view of them."""
    buf = SendBuffer(1 << 20)
    big = bytes(range(256)) * 256  # 64 KiB
    assert buf.write(big) == len(big)
    assert buf.peek(0, len(big)) is big
    part = buf.peek(1000, 1448)
    assert isinstance(part, memoryview) and part.obj is big and part == big[1000:2448]
    mutable = bytearray(b"q" * 2000)
    buf.write(mutable)
    mutable[:] = b"z" * 2000  # the writer may change what it wrote: the buffer copied it
    assert buf.peek(len(big), 2000) == b"q" * 2000
    assert buf.peek(len(big) - 10, 20) == big[-10:] + b"q" * 10  # across two chunks


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("write"),
                st.binary(max_size=3000),
                st.sampled_from([bytes, bytearray, memoryview]),
            ),
            st.tuples(st.just("peek"), st.integers(0, 9000), st.integers(0, 5000)),
            st.tuples(st.just("consume"), st.integers(0, 4000)),
        ),
        max_size=60,
    )
)
def test_send_buffer_matches_one_flat_bytearray(ops: list[tuple]) -> None:
    """Chunks, a bytearray tail and a head offset: the same bytes as the flat model."""
    cap = 8000
    buf, model = SendBuffer(cap), bytearray()
    for op in ops:
        if op[0] == "write":
            taken = buf.write(op[2](op[1]))
            assert taken == min(len(op[1]), cap - len(model))
            model += op[1][:taken]
        elif op[0] == "peek":
            assert buf.peek(op[1], op[2]) == model[op[1] : op[1] + op[2]]
        else:
            buf.consume(op[1])
            del model[: op[1]]
        assert len(buf) == len(model) and buf.space == cap - len(model)
    assert buf.peek(0, cap) == model
    buf.consume(len(model))
    assert buf._chunks == ()  # empty again: an idle connection's buffer holds nothing


def test_recv_buffer_read_some_hands_large_chunks_over_whole() -> None:
    """A stream read (Connection.recv_some) joins small chunks but never copies a big one."""
    buf = RecvBuffer()
    small = [b"a" * 100, b"b" * 200]
    for c in small:
        buf.append(c)
    assert buf.read_some(1000) == b"a" * 100 + b"b" * 200 and len(buf) == 0
    big = [bytes([i]) * 60_000 for i in range(3)]
    for c in big:
        buf.append(c)
    buf.append(b"tail")
    assert buf.read_some(65536) is big[0]  # alone: not copied
    assert len(buf) == 2 * 60_000 + 4
    assert buf.read_some(200_000) == big[1] + big[2] + b"tail"  # all fit: joined
    buf.append(b"x" * 10)
    buf.append(b"y" * 70_000)
    assert buf.read_some(65536) == b"x" * 10  # the next chunk would pass the limit
    assert buf.read_some(65536) == b"y" * 70_000 and buf.read_some(10) == b""


def test_recv_buffer_partial_reads_across_chunks_then_empty() -> None:
    buf = RecvBuffer()
    assert buf.read() == b""
    for part in (b"abc", b"de", b"fghi"):
        buf.append(part)
    buf.append(b"")
    assert buf.read(4) == b"abcd" and buf.size == 5
    assert buf.read(1) == b"e"
    assert buf.read(10) == b"fghi" and buf._chunks == ()
    buf.append(b"jk")
    assert buf.read(1) == b"j" and buf.read() == b"k" and buf.size == 0


def test_rack_lets_its_segment_list_go_when_everything_is_delivered() -> None:
    rack = Rack()
    rack.on_ack(100, None, 0.0)  # nothing out: nothing to do
    rack.sent(100, 200, 0.0)
    rack.sent(200, 300, 0.001)
    rack.on_ack(200, None, 0.01)
    assert len(rack.segs) == 1 and rack.rtt == pytest.approx(0.01)
    rack.on_ack(300, None, 0.02)
    assert rack.segs == ()
    # the flight's RACK state goes with it; what outlives flights stays
    assert rack.xmit_ts is None and rack.fack is None and (rack.end_seq, rack.rtt) == (0, 0.0)
    assert rack.min_rtt == pytest.approx(0.01)


def test_seq_space_is_unchanged_by_the_lean_layout() -> None:
    conn, peer = sack_conn()
    for i in range(3):
        echo_once(conn, peer, 0.1 * (i + 1), n=10 + i)
    assert conn.rcv_nxt == seq_add(PEER_ISS + 1, 33)
    assert conn.snd_una == conn.snd_max == seq_add(ISS + 1, 33)
