"""Unit tests for the small modules: seq, segment, isn, listener, buffers,
reassembly, rtt, congestion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seashard.tcp import Flags, IsnGenerator, ListenVerdict, Segment, classify_listen, rst_for
from seashard.tcp.buffers import RecvBuffer, SendBuffer
from seashard.tcp.congestion import NewReno, initial_window
from seashard.tcp.reassembly import Reassembler
from seashard.tcp.rtt import RttEstimator
from seashard.tcp.seq import (
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
)

TOP = 2**32 - 1
u32 = st.integers(0, TOP)

# ----------------------------------------------------------------------- seq


def test_seq_add_wraps():
    assert seq_add(TOP, 1) == 0
    assert seq_add(TOP - 5, 10) == 4
    assert seq_add(3, -5) == TOP - 1


def test_seq_compare_across_wrap():
    assert seq_lt(TOP, 0)
    assert seq_lt(TOP - 100, 50)
    assert seq_gt(50, TOP - 100)
    assert seq_le(TOP, TOP) and seq_ge(TOP, TOP)
    assert not seq_lt(0, TOP)
    assert seq_diff(5, TOP - 4) == 10
    assert seq_diff(TOP - 4, 5) == -10
    assert seq_max(TOP, 3) == 3
    assert seq_min(TOP, 3) == TOP
    assert seq_in_window(2, TOP - 1, 10)
    assert not seq_in_window(TOP - 2, TOP - 1, 10)
    assert not seq_in_window(5, 5, 0)


@given(u32, st.integers(-(2**31) + 1, 2**31 - 1))
def test_seq_properties(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_diff(b, a) == n
    assert seq_lt(a, b) == (n > 0)
    assert seq_gt(a, b) == (n < 0)
    assert seq_le(a, b) == (n >= 0)
    assert seq_ge(a, b) == (n <= 0)
    # exactly one of <, ==, > holds
    assert [seq_lt(a, b), a == b, seq_gt(a, b)].count(True) == 1


# ------------------------------------------------------------------- segment


def test_segment_len_and_str():
    syn = Segment(1000, 0, Flags.SYN, 65535, mss=1460, wscale=7)
    assert syn.seg_len == 1
    assert str(syn) == "S 1000:1000(0) win 65535 <mss 1460,wscale 7>"
    d = Segment(TOP - 1, 7, Flags.ACK | Flags.PSH | Flags.FIN, 100, b"abcd")
    assert d.seg_len == 5
    assert str(d) == f"FP. {TOP - 1}:2(4) ack 7 win 100"
    assert str(Segment(5, 9, Flags.ACK, 0)) == ". 5:5(0) ack 9 win 0"
    assert str(Segment(5, 0, Flags.RST, 0)) == "R 5:5(0) win 0"


# ----------------------------------------------------------------------- isn


def test_isn_depends_on_tuple_and_key():
    g = IsnGenerator(b"k" * 16)
    local = ("10.0.0.1", 1234)
    a = g.isn(local, ("10.0.0.7", 40000), 100.0)
    assert a == g.isn(local, ("10.0.0.7", 40000), 100.0)  # deterministic
    assert a != g.isn(local, ("10.0.0.7", 40001), 100.0)  # port changes it
    assert a != g.isn(local, ("10.0.0.8", 40000), 100.0)  # address changes it
    assert a != g.isn(("10.0.0.1", 1235), ("10.0.0.7", 40000), 100.0)
    assert a != IsnGenerator(b"j" * 16).isn(local, ("10.0.0.7", 40000), 100.0)
    # address spellings are equivalent
    assert g.isn((b"\x0a\x00\x00\x01", 1234), (0x0A000007, 40000), 100.0) == a
    # offsets of different tuples look unrelated (spread over the space)
    offs = {g.offset(local, ("10.0.0.7", p)) >> 28 for p in range(200)}
    assert len(offs) >= 12


def test_isn_increases_with_time_at_4us():
    g = IsnGenerator(b"secret")
    lo, re = ("10.0.0.1", 80), ("10.0.0.2", 5555)
    a = g.isn(lo, re, 10.0)
    assert seq_diff(g.isn(lo, re, 10.000004), a) == 1
    assert seq_diff(g.isn(lo, re, 11.0), a) == 250_000
    assert seq_gt(g.isn(lo, re, 10.5), a)
    # wraps modulo 2**32 after ~4.77 hours and stays a valid 32-bit number
    assert 0 <= g.isn(lo, re, 1e6) <= TOP


def test_isn_long_key_and_default_key():
    ends = (("1.2.3.4", 1), ("5.6.7.8", 2))
    assert 0 <= IsnGenerator(b"x" * 100).isn(*ends, 0.0) <= TOP
    # without a secret each generator draws its own random key
    assert len({IsnGenerator().offset(*ends) for _ in range(5)}) > 1
    with pytest.raises(ValueError):
        IsnGenerator(b"")


# ------------------------------------------------------------------ listener


def test_rst_for_segment_with_ack():
    seg = Segment(700, 12345, Flags.ACK | Flags.PSH, 100, b"hello")
    r = rst_for(seg)
    assert r is not None
    assert r.flags == Flags.RST and r.seq == 12345 and r.ack == 0 and r.payload == b""


def test_rst_for_segment_without_ack():
    r = rst_for(Segment(700, 0, Flags.SYN, 100))
    assert r is not None
    assert r.flags == Flags.RST | Flags.ACK and r.seq == 0 and r.ack == 701
    r = rst_for(Segment(TOP, 0, Flags.FIN, 100, b"ab"))  # SEG.LEN = 3 crossing the wrap
    assert r is not None and r.ack == 2
    r = rst_for(Segment(700, 0, Flags(0), 100, b"abc"))
    assert r is not None and r.ack == 703


def test_rst_for_never_answers_rst():
    assert rst_for(Segment(1, 0, Flags.RST, 0)) is None
    assert rst_for(Segment(1, 5, Flags.RST | Flags.ACK, 0)) is None


def test_classify_listen():
    assert classify_listen(Segment(1, 0, Flags.SYN, 100)) is ListenVerdict.ACCEPT
    assert classify_listen(Segment(1, 0, Flags.RST, 0)) is ListenVerdict.DROP
    assert classify_listen(Segment(1, 9, Flags.ACK, 0)) is ListenVerdict.RESET
    assert classify_listen(Segment(1, 9, Flags.SYN | Flags.ACK, 0)) is ListenVerdict.RESET
    assert classify_listen(Segment(1, 0, Flags.FIN, 0)) is ListenVerdict.DROP
    assert classify_listen(Segment(1, 0, Flags.SYN | Flags.FIN, 0)) is ListenVerdict.DROP


# ------------------------------------------------------------------- buffers


def test_send_buffer_limit_peek_consume():
    b = SendBuffer(10)
    assert b.write(b"abcdef") == 6
    assert b.write(b"ghijkl") == 4
    assert b.write(b"x") == 0 and b.space == 0
    assert b.peek(2, 5) == b"cdefg"
    b.consume(3)
    assert len(b) == 7 and b.peek(0, 100) == b"defghij"
    assert b.write(memoryview(b"XYZW")) == 3
    assert b.peek(5, 5) == b"ijXYZ"


def test_recv_buffer_chunks():
    r = RecvBuffer()
    r.append(b"hello ")
    r.append(b"world")
    assert r.read(3) == b"hel"
    assert r.read(5) == b"lo wo"
    assert len(r) == 3
    assert r.read() == b"rld"
    assert r.read() == b""
    chunk = b"z" * 100
    r.append(chunk)
    assert r.read() is chunk  # whole-chunk reads do not copy


# ---------------------------------------------------------------- reassembly


def test_reassembly_in_order_release_and_overlaps():
    q = Reassembler()
    assert q.insert(10, b"KLMNO") == 5  # [10, 15)
    assert q.insert(20, b"UVW") == 3  # [20, 23)
    assert q.insert(12, b"MNOPQRSTUVWXY") == 7  # fills 15..20 and 23..25 only
    assert q.ranges() == [(10, 25)]
    assert q.insert(11, b"LMN") == 0  # pure duplicate
    assert q.held == 15
    assert q.pop_ready(5) == []  # gap before 10
    out = q.pop_ready(12)  # data up to 12 already delivered: trimmed
    assert b"".join(out) == b"MNOPQRSTUVWXY"
    assert q.held == 0 and not q


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 40)), max_size=40))
def test_reassembly_random(pieces: list[tuple[int, int]]) -> None:
    stream = bytes((i * 7 + 3) % 256 for i in range(300))
    q = Reassembler()
    covered: set[int] = set()
    for off, n in pieces:
        q.insert(off + 1, stream[off + 1 : off + 1 + n])
        covered.update(range(off + 1, min(off + 1 + n, 300)))
    assert q.held == len(covered)
    # fill from 0 one byte at a time; whatever comes out must be the stream
    got = bytearray()
    pos = 0
    while pos < 300:
        got += stream[pos : pos + 1]
        pos += 1
        for c in q.pop_ready(pos):
            got += c
            pos += len(c)
    assert bytes(got) == stream


# ----------------------------------------------------------------------- rtt


def test_rtt_rfc6298_formulas():
    r = RttEstimator(rto_initial=1.0, rto_min=0.2, rto_max=60.0)
    assert r.rto == 1.0 and r.srtt is None
    r.sample(0.1)
    assert r.srtt == pytest.approx(0.1) and r.rttvar == pytest.approx(0.05)
    assert r.rto == pytest.approx(0.3)
    r.sample(0.3)
    assert r.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert r.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert r.rto == pytest.approx(r.srtt + 4 * r.rttvar)


def test_rtt_clamp_and_backoff():
    r = RttEstimator(rto_initial=1.0, rto_min=1.0, rto_max=60.0)
    r.sample(0.01)
    assert r.rto == 1.0  # clamped to rto_min
    for _ in range(10):
        r.backoff()
    assert r.rto == 60.0  # clamped to rto_max


# ---------------------------------------------------------------- congestion


def test_initial_window():
    assert initial_window(1460) == 14600
    assert initial_window(536) == 5360
    assert initial_window(9000) == 18000


def test_newreno_slow_start_and_avoidance():
    cc = NewReno(1000, iw=3000)
    cc.on_new_ack(1000, 0, 0)
    assert cc.cwnd == 4000
    cc.ssthresh = 5000
    cc.on_new_ack(3000, 0, 0)  # a stretch ACK counts whole (Linux), up to ssthresh:
    assert cc.cwnd == 5000  # the other 2000 bytes go to congestion avoidance
    for _ in range(2):
        cc.on_new_ack(1000, 0, 0)
    assert cc.cwnd == 5000
    cc.on_new_ack(1000, 0, 0)  # 5000 acknowledged in avoidance: +1 MSS
    assert cc.cwnd == 6000
    cc = NewReno(1000, iw=5000)
    cc.ssthresh = 5000  # now in congestion avoidance
    for _ in range(4):
        cc.on_new_ack(1000, 0, 0)
    assert cc.cwnd == 5000
    cc.on_new_ack(1000, 0, 0)  # a full cwnd acknowledged: +1 MSS
    assert cc.cwnd == 6000


def test_newreno_timeout():
    cc = NewReno(1000, iw=10000)
    cc.on_timeout(flight=8000, snd_max=500)
    assert cc.cwnd == 1000 and cc.ssthresh == 4000 and cc.recover == 500
    cc.on_timeout(flight=1000, snd_max=500, repeated=True)
    assert cc.ssthresh == 4000  # held constant on a repeated timeout
    cc.on_timeout(flight=1000, snd_max=500)
    assert cc.ssthresh == 2000  # never below 2*MSS
