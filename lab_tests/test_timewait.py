"""Suite 2 -- TIME_WAIT restarts, both stacks.

After the canned server has closed connections first, they sit in TIME_WAIT on
the server: in the kernel (posix; `ss` through testinfra) or in the native
stack's own table (its admin endpoint).  Restarting seashard in the same
container (`labctl restart`, so the network namespace and its TIME_WAIT
survive) without --reuse-address fails exactly as the tutorial says; with
it, the restart succeeds and serves at once.  The steps are the ones
`scripts/lab scenario timewait-restart` replays (scenarios.timewait_step)."""

from __future__ import annotations

import pytest

from seashard_lab.plan import ADDRESS_IN_USE, PORTS, SERVERS
from seashard_lab.steps import timewait_step


@pytest.mark.parametrize("server", SERVERS, ids=["posix", "native"])
def test_restart_needs_reuse_address_while_connections_are_in_time_wait(restore_servers, server):
    lab = restore_servers
    client_ip = lab.ips["client-1"]
    result = timewait_step(lab, server, client="client-1", count=10)

    assert result.canned["ok"], result.canned["errors"]
    assert all(r["server_closed_first"] for r in result.canned["results"])
    assert result.ours <= result.time_wait, sorted(result.ours - result.time_wait)
    if server == "posix-server":
        # the same, read by testinfra's own docker:// connection
        ss = lab.hosts[server].run(
            "ss -tanH state time-wait '( sport = :%s )'", str(PORTS["canned"])
        )
        assert ss.rc == 0
        peers = {line.split()[-1] for line in ss.stdout.splitlines()}
        assert result.ours <= peers
    else:
        # the native stack's connections are its own: the container's kernel has none of them
        ss = lab.hosts[server].run(
            "ss -tanH state time-wait '( sport = :%s )'", str(PORTS["canned"])
        )
        assert not any(client_ip in line for line in ss.stdout.splitlines()), ss.stdout

    # without --reuse-address: the tutorial's error, a non-zero exit, nothing else started
    assert result.refused.rc != 0, result.refused.describe()
    assert result.refused_line.startswith(ADDRESS_IN_USE), result.refused.stderr
    assert any(f":{p}," in result.refused_line for p in PORTS.values()), result.refused_line
    assert result.admin_down_after_refusal, "the admin endpoint answered after a failed start"

    # with it: starts and serves at once
    assert result.accepted.ok, result.accepted.describe()
    assert result.served_after["ok"], result.served_after["errors"]
    assert result.first_served_seconds < 5
    if server == "native-server":
        # the restarted stack still honours (and shows) the last run's TIME_WAIT
        assert result.ours <= result.previous_run_rows, sorted(
            result.ours - result.previous_run_rows
        )
    else:
        still = time_wait_now(lab, server)
        assert result.ours <= still, "the kernel's TIME_WAIT should outlive the restart"


def time_wait_now(lab, server: str) -> set[str]:
    ss = lab.hosts[server].run("ss -tanH state time-wait '( sport = :%s )'", str(PORTS["canned"]))
    return {line.split()[-1] for line in ss.stdout.splitlines()}
