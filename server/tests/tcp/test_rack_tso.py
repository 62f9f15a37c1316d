"""RACK under TSO: one entry per TSO frame (cut into its wire segments only when an
ACK ends inside it, a SACK arrives or part of it is sent again) judges exactly as one
entry per wire segment does.  A randomized differential test: the same sends, ACKs
(anywhere, with or without SACK blocks), retransmissions, loss checks and clears go
to a Rack fed wire segment by wire segment and to one fed whole frames; after every
step both hold the same wire segments and the same RACK state and give the same
answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seashard.tcp.rack import Rack
from seashard.tcp.sack import Scoreboard
from seashard.tcp.seq import seq_add, seq_diff

MSS = 100
ISS = 0xFFFFF000  # the sequence space wraps during the run


def _wire(rack: Rack) -> list[tuple[int, int, float, bool, bool, bool]]:
    out = []
    for s in rack.segs:
        for p in s.pieces() if s.step else [s]:
            out.append((p.start, p.end, p.ts, p.rexmit, p.delivered, p.lost))
    return out


def _state(rack: Rack) -> tuple[object, ...]:
    return (
        rack.xmit_ts,
        rack.end_seq,
        rack.rtt,
        rack.min_rtt,
        rack.fack,
        rack.reord_seen,
        rack.lost_to,
        rack.relost_ranges(),
        _wire(rack),
    )


def _send_per_segment(rack: Rack, start: int, n: int, now: float) -> None:
    """What the connection did before: one entry per wire segment."""
    end = seq_add(start, n)
    last = seq_add(start, (n - 1) // MSS * MSS)
    s = start
    while s != last:
        rack.sent(s, seq_add(s, MSS), now)
        s = seq_add(s, MSS)
    rack.sent(last, end, now)


_op = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 6 * MSS)),
    st.tuples(
        st.just("ack"),
        st.floats(0, 1),
        st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=3),
    ),
    st.tuples(st.just("rexmit"), st.floats(0, 1), st.integers(1, MSS)),
    st.tuples(st.just("detect"), st.sampled_from([0.0, 0.002, 0.01])),
    st.tuples(st.just("clear")),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.tuples(_op, st.integers(0, 20)), min_size=1, max_size=40))
def test_tso_entries_judge_as_wire_segments_do(ops: list) -> None:
    ref, tso = Rack(), Rack()
    una = snd_max = ISS
    now = 1.0
    for op, dt_ms in ops:
        now += dt_ms / 1000
        kind = op[0]
        flight = seq_diff(snd_max, una)
        if kind == "send":
            n = op[1]
            _send_per_segment(ref, snd_max, n, now)
            tso.sent(snd_max, seq_add(snd_max, n), now, MSS if n > MSS else 0)
            snd_max = seq_add(snd_max, n)
        elif kind == "ack":
            una = seq_add(una, int(op[1] * flight))
            left = seq_diff(snd_max, una)
            board = Scoreboard()
            for a, b in sorted((min(x, y), max(x, y)) for x, y in op[2]):
                lo, hi = int(a * left), int(b * left)
                if hi > lo and (
                    not board.ranges or seq_diff(seq_add(una, lo), board.ranges[-1][1]) > 0
                ):
                    board.ranges.append([seq_add(una, lo), seq_add(una, hi)])
            ref.on_ack(una, board, now)
            tso.on_ack(una, board, now)
        elif kind == "rexmit" and flight:
            start = seq_add(una, int(op[1] * (flight - 1)))
            end = seq_add(start, min(op[2], seq_diff(snd_max, start)))
            ref.retransmitted(start, end, now, una)
            tso.retransmitted(start, end, now, una)
        elif kind == "detect":
            assert ref.detect(una, now, op[1]) == tso.detect(una, now, op[1])
        elif kind == "clear":
            ref.clear()
            tso.clear()
        assert _state(ref) == _state(tso)
        first_ref, first_tso = ref.relost(), tso.relost()
        assert (first_ref and (first_ref.start, first_ref.end)) == (
            first_tso and (first_tso.start, first_tso.end)
        )


def test_a_tso_frame_is_one_entry_until_an_ack_ends_inside_it() -> None:
    rack = Rack()
    rack.sent(1000, 1000 + 10 * MSS, 0.0, MSS)
    rack.sent(2000, 2000 + 10 * MSS, 0.001, MSS)
    assert len(rack.segs) == 2
    rack.on_ack(2000, None, 0.01)  # the first frame whole: delivered as one
    assert len(rack.segs) == 1 and rack.end_seq == 2000 and rack.rtt == pytest.approx(0.01)
    rack.on_ack(2350, None, 0.012)  # inside the second: its wire segments, three delivered
    assert [(s.start, s.end) for s in rack.segs][:2] == [(2300, 2400), (2400, 2500)]
    assert len(rack.segs) == 7 and rack.end_seq == 2300
