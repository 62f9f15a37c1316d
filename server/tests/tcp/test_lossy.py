"""Randomized end-to-end: two Connections through a lossy, duplicating,
reordering in-memory network; every byte must arrive, both must close cleanly."""

from __future__ import annotations

import pytest

from seashard.tcp import State

from .sim import run_transfer


def _check(r) -> None:
    assert r.b_got == r.a_sent, "a -> b stream corrupted"
    assert r.a_got == r.b_sent, "b -> a stream corrupted"
    assert r.a.error is None and r.b.error is None
    assert r.a.state is State.CLOSED and r.b.state is State.CLOSED
    assert r.a.at_eof and r.b.at_eof


@pytest.mark.parametrize("seed", range(100))
def test_transfer_random_network(seed: int) -> None:
    r = run_transfer(seed, 200_000, 150_000)
    _check(r)


@pytest.mark.parametrize(("seed", "loss"), [(101, 0.0), (102, 0.02), (103, 0.05), (104, 0.1)])
def test_transfer_1mb_each_way(seed: int, loss: float) -> None:
    r = run_transfer(seed, 1 << 20, 1 << 20, loss=loss)
    _check(r)
    if loss:
        assert r.dropped > 0
        assert r.a.stats.retransmits + r.b.stats.retransmits > 0


@pytest.mark.parametrize("seed", range(200, 210))
def test_transfer_heavy_loss(seed: int) -> None:
    # A quarter of all segments lost: a segment and its ACK both get through only
    # 56% of the time, so allow more retries than the default before "timed out".
    r = run_transfer(seed, 50_000, 50_000, loss=0.25, max_retries=30)
    _check(r)


@pytest.mark.parametrize("seed", range(300, 310))
def test_transfer_one_way_and_empty(seed: int) -> None:
    r = run_transfer(seed, 80_000, 0)
    _check(r)
    r = run_transfer(seed, 0, 0)
    _check(r)
