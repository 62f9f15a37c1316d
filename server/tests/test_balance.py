from __future__ import annotations

import os

import pytest

from seashard.net.api import LoadBalancing
from seashard.net.balance import Balancer
from seashard.shm import SharedCounters


def test_connection_distribution_picks_fewest_live() -> None:
    live = {0: 5, 1: 2, 2: 7}
    b = Balancer(LoadBalancing.CONNECTION_DISTRIBUTION, 3, live.__getitem__)
    assert b.pick(1000) == 1


def test_ties_are_broken_round_robin() -> None:
    b = Balancer(LoadBalancing.CONNECTION_DISTRIBUTION, 3, lambda s: 0)
    assert [b.pick(1) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_exact_counts_steer_new_connections_to_the_emptier_shard() -> None:
    counters = SharedCounters(2, slots=1)
    b = Balancer(LoadBalancing.CONNECTION_DISTRIBUTION, 2, lambda s: counters.live(0, s))
    for i in range(1000):
        before = (counters.live(0, 0), counters.live(0, 1))
        shard = b.pick(i)
        if before[0] != before[1]:
            assert shard == before.index(min(before))
        counters.add_assigned(0, shard)
        if i % 7 == 0:  # shard 0's connections close now and then: it must get more new ones
            while counters.live(0, 0):
                counters.add_closed(0, 0)
    assert counters.assigned(0, 0) > counters.assigned(0, 1)


def test_port_balancing_is_remote_port_mod_shards() -> None:
    b = Balancer(LoadBalancing.PORT, 2, lambda s: 0)
    assert [b.pick(p) for p in (40000, 40001, 40002, 65535)] == [0, 1, 0, 1]


def test_fixed_balancing() -> None:
    b = Balancer(LoadBalancing.FIXED, 4, lambda s: 0, fixed_cpu=3)
    assert {b.pick(p) for p in range(100)} == {3}
    with pytest.raises(ValueError, match="fixed shard 4 does not exist"):
        Balancer(LoadBalancing.FIXED, 4, lambda s: 0, fixed_cpu=4)


def test_shared_counters_are_seen_across_fork() -> None:
    counters = SharedCounters(2, slots=2)
    counters.add_assigned(1, 1)
    counters.add_assigned(1, 1)
    pid = os.fork()
    if pid == 0:
        counters.add_closed(1, 1)
        os._exit(0)
    os.waitpid(pid, 0)
    assert counters.live(1, 1) == 1
    assert counters.live(0, 0) == 0
