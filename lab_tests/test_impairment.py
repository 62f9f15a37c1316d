"""Suite 6 -- impairment: with loss and reordering on a client's link, echo
stays byte-exact on both stacks.

`lab-impair` (images/lab/bin) impairs client-2's link: `tc netem` where the
kernel has it; here, where CONFIG_NET_SCH_NETEM is not set, the userspace relay
`seashard.tools.impair` between the lab and client-2's own address, which
drops and reorders frames in both directions -- so both servers see the
impaired traffic.  The steps are those of `scripts/lab scenario lossy-link-echo`."""

from __future__ import annotations

import pytest

from seashard_lab.plan import SERVERS
from seashard_lab.steps import lossy_echo_step

CLIENT = "client-2"


@pytest.mark.parametrize("server", SERVERS, ids=["posix", "native"])
def test_echo_stays_byte_exact_with_loss_and_reordering(lab, server):
    seed = 20 if server == "posix-server" else 21
    with lab.impaired(CLIENT, loss=0.05, reorder=0.25, seed=seed, duration=150) as link:
        result = lossy_echo_step(lab, server, CLIENT, sizes="1,1460,65536,262144")
    assert lab.exec(CLIENT, ["lab-impair", "status"]).rc == 3, "impairment still on"
    assert not result.errors, result.errors
    assert all(r["exact"] and r["eof"] for r in result.sizes["results"])
    assert len(result.concurrent["results"]) == 8 and result.concurrent["ok"]
    # the impairment did bite: frames were dropped and reordered, the client's
    # kernel (and the native stack) had to retransmit
    if "netem_dropped" in link:
        assert link["netem_dropped"] > 0, link
    else:
        assert link["dropped"] > 0 and link["reordered"] > 0, link
    assert result.retransmits_client > 0
    if server == "native-server":
        assert result.retransmits_server and result.retransmits_server > 0


def test_the_link_is_plain_again_afterwards(lab):
    """After the impairment: the client's address is back on eth0, nothing lost."""
    host = lab.hosts[CLIENT]
    assert lab.ips[CLIENT] in host.interface("eth0").addresses
    assert not host.interface("vr0").exists
    summary = lab.traffic(
        CLIENT, "echo", "--host", lab.service_ip("native-server"), "--sizes", "65536"
    )
    assert summary["ok"]
