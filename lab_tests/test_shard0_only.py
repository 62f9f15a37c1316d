"""Suite 4 -- the shard-0-only listener (the tutorial's `-c1` remark), both stacks.

With the services listening on shard 0 only, a connection steered to shard 1
(posix: by the load balancer; native: by the TAP's flow hash) is not left
hanging: it is closed (posix) or reset (native), and shard 1 logs why, naming
the client's address and port.  With `-c 1` every connection is served.  The
steps are those of `scripts/lab scenario shard0-only-listener`.

The clients' background load is paused: the posix balancer sends each new
connection to the shard with the fewest live connections, and with long-lived
background connections on shard 0 (those on shard 1 are closed at once) that
is shard 1 every time -- nothing of the test's would be served."""

from __future__ import annotations

import pytest

from seashard_lab.plan import SERVERS
from seashard_lab.steps import steer_step

COUNT = 24


@pytest.mark.parametrize("server", SERVERS, ids=["posix", "native"])
def test_steered_connections_are_closed_or_reset_and_logged(quiet_clients, restore_servers, server):
    lab = restore_servers
    result = steer_step(lab, server, client="client-1", count=COUNT)
    assert "(shard 0 only)" in result.log, result.log[-2000:]
    outcomes = result.outcomes()
    assert "hang" not in outcomes, result.results
    served = [r for r in result.results if r["outcome"] == "served"]
    turned_away = [r for r in result.results if r["outcome"] != "served"]
    assert served, f"nothing served: {outcomes}"
    assert turned_away, f"nothing steered to shard 1 in {COUNT} connections: {outcomes}"
    if server == "posix-server":
        # the kernel completed the handshake; shard 1 closes the socket it was handed
        assert {r["outcome"] for r in turned_away} <= {"closed", "reset"}, outcomes
        verb, counter = "closed", "seashard_connections_refused_no_listener_total"
    else:
        # the native stack answers the SYN on shard 1 with a RST
        assert {r["outcome"] for r in turned_away} <= {"refused", "reset"}, outcomes
        verb, counter = "reset", "seashard_tcp_syn_no_listener_total"
    for r in turned_away:
        lines = result.logged(r["port"])
        assert len(lines) == 1, f"port {r['port']} ({r['outcome']}): {lines}"
        assert lines[0].startswith("shard 1: "), lines[0]
        assert f"no listener on port 1234 on this shard: {verb} connection from" in lines[0]
    for r in served:
        assert not result.logged(r["port"]), result.logged(r["port"])
    rise = result.metrics_delta[counter]
    assert rise.get(1, 0) >= len(turned_away), rise
    assert rise.get(0, 0) == 0, rise
    assert result.metrics_delta["seashard_connections_total"].get(0, 0) >= len(served)


@pytest.mark.parametrize("server", SERVERS, ids=["posix", "native"])
def test_with_one_shard_every_connection_is_served(quiet_clients, restore_servers, server):
    lab = restore_servers
    result = steer_step(lab, server, smp=1, client="client-1", count=COUNT)
    assert result.outcomes() == {"served": COUNT}, result.results
    assert [s["shard"] for s in lab.shards(server)] == [0]
    assert not any(result.logged(r["port"]) for r in result.results)
