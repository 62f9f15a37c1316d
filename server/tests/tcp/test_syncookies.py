"""SYN cookies on their own (sans-IO): what a cookie encodes, how long it lives, and
that nothing but the real thing passes."""

import random

import pytest

from seashard.tcp.connection import Connection, State
from seashard.tcp.segment import Flags, Segment
from seashard.tcp.syncookies import MSS_TABLE, PERIOD, SynCookies, cookie_synack, mss_index

LOCAL, REMOTE = ("10.0.0.2", 1234), ("10.0.0.7", 40000)
SEQ = 123456789


@pytest.mark.parametrize(
    ("peer_mss", "expected"),
    [(None, 536), (100, 536), (536, 536), (1299, 536), (1300, 1300), (1459, 1440), (9000, 1460)],
)
def test_mss_is_rounded_down_to_the_table(peer_mss: int | None, expected: int) -> None:
    assert MSS_TABLE[mss_index(peer_mss)] == expected
    jar = SynCookies(b"k" * 32)
    cookie = jar.make(LOCAL, REMOTE, SEQ, peer_mss, 1000.0)
    assert cookie.mss == expected
    grant = jar.check(LOCAL, REMOTE, SEQ + 1, cookie.isn + 1, 1000.0)
    assert grant is not None and grant.mss == expected
    assert grant.wscale is None and not grant.sack_permitted  # no timestamps: no room


def test_cookie_lives_at_least_one_tick_at_most_two() -> None:
    jar = SynCookies(b"k" * 32)
    made = 10 * PERIOD + 0.5  # early in a tick
    cookie = jar.make(LOCAL, REMOTE, SEQ, 1460, made)
    for now, ok in [
        (made, True),
        (made + PERIOD, True),  # next tick
        (12 * PERIOD - 0.001, True),  # end of the next tick
        (12 * PERIOD, False),  # two ticks later: expired
        (made + 200 * PERIOD, False),
        (made - PERIOD, False),  # from the future
    ]:
        assert (jar.check(LOCAL, REMOTE, SEQ + 1, cookie.isn + 1, now) is not None) is ok, now


def test_forgeries_fail() -> None:
    jar = SynCookies(b"k" * 32)
    now = 5000.0
    cookie = jar.make(LOCAL, REMOTE, SEQ, 1460, now)
    ack = cookie.isn + 1
    assert jar.check(LOCAL, REMOTE, SEQ + 1, ack, now) is not None
    assert jar.check(LOCAL, ("10.0.0.8", 40000), SEQ + 1, ack, now) is None  # other peer
    assert jar.check(LOCAL, ("10.0.0.7", 40001), SEQ + 1, ack, now) is None  # other port
    assert jar.check(LOCAL, REMOTE, SEQ + 1000, ack, now) is None  # other sequence number
    assert SynCookies(b"x" * 32).check(LOCAL, REMOTE, SEQ + 1, ack, now) is None  # other secret
    rng = random.Random(1)
    hits = sum(
        jar.check(LOCAL, REMOTE, SEQ + 1, rng.getrandbits(32), now) is not None
        for _ in range(20000)
    )
    assert hits <= 2  # 4 in 2**24 per guess with the right tick: ~0.005 expected


def test_a_connection_is_built_from_the_cookie_ack() -> None:
    jar = SynCookies()
    syn = Segment(SEQ, 0, Flags.SYN, 29200, mss=1400, wscale=7, sack_permitted=True)
    cookie = jar.make(LOCAL, REMOTE, syn.seq, syn.mss, 1.0)
    synack = cookie_synack(syn, cookie, 1460, 256 * 1024)
    assert synack.flags == Flags.SYN | Flags.ACK and synack.ack == SEQ + 1
    assert synack.window == 0xFFFF and synack.wscale is None and not synack.sack_permitted
    ack = Segment(SEQ + 1, synack.seq + 1, Flags.ACK | Flags.PSH, 229, b"hi")
    grant = jar.check(LOCAL, REMOTE, ack.seq, ack.ack, 2.0)
    assert grant is not None
    conn = Connection.from_cookie(ack, synack.seq, grant.mss, 2.0)
    assert conn.state is State.ESTABLISHED and conn.mss == 1300
    assert conn.recv() == b"hi" and conn.snd_wnd == 229  # unscaled: no wscale agreed
    with pytest.raises(ValueError):
        Connection.from_cookie(ack, synack.seq + 5, grant.mss, 2.0)


@pytest.mark.parametrize(
    ("wscale", "sack"), [(7, True), (0, False), (14, True), (None, True), (None, False)]
)
def test_tsval_carries_wscale_and_sack_and_check_decodes_them(
    wscale: int | None, sack: bool
) -> None:
    sc = SynCookies(b"k" * 32)
    now = 1000.123
    c = sc.make(LOCAL, REMOTE, 5000, 1460, now, timestamps=True, wscale=wscale, sack_permitted=sack)
    assert c.tsval is not None
    # Linux cookie_init_timestamp: the low 6 bits, never ahead of our clock.
    clock = (int(now * 1000) + sc.ts_offset(LOCAL, REMOTE)) & 0xFFFFFFFF
    assert c.tsval & 0xF == (0xF if wscale is None else wscale)
    assert bool(c.tsval & 0x10) == sack and not c.tsval & 0x20
    assert 0 <= (clock - c.tsval) & 0xFFFFFFFF < 64
    grant = sc.check(LOCAL, REMOTE, 5001, (c.isn + 1) & 0xFFFFFFFF, now + 1, tsecr=c.tsval)
    assert grant is not None and grant.mss == 1460
    assert grant.wscale == wscale and grant.sack_permitted == sack
    # Without the TSecr nothing is carried, as without timestamps.
    plain = sc.check(LOCAL, REMOTE, 5001, (c.isn + 1) & 0xFFFFFFFF, now + 1)
    assert plain is not None and plain.wscale is None and not plain.sack_permitted


def test_cookie_synack_with_timestamps_offers_what_the_tsval_encodes() -> None:
    sc = SynCookies(b"k" * 32)
    syn = Segment(5000, 0, Flags.SYN, 64240, mss=1460, wscale=7, sack_permitted=True)
    syn.timestamps = (99, 0)
    c = sc.make(LOCAL, REMOTE, 5000, 1460, 10.0, timestamps=True, wscale=7, sack_permitted=True)
    sa = cookie_synack(syn, c, 1460, 65535, our_wscale=3)
    assert sa.timestamps == (c.tsval, 99) and sa.sack_permitted and sa.wscale == 3
    # Without a TS in the SYN: neither, as before.
    syn.timestamps = None
    c2 = sc.make(LOCAL, REMOTE, 5000, 1460, 10.0)
    sa2 = cookie_synack(syn, c2, 1460, 65535, our_wscale=3)
    assert sa2.timestamps is None and not sa2.sack_permitted and sa2.wscale is None
