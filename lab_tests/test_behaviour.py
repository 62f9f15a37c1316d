"""Suite 1 -- the tutorial's services behave, on both stacks, seen from the client
containers: the accept log names the client's address and port; the canned
response is exact and the server closes first; echo is byte-exact from 1 byte
to 1 MiB and for many concurrent connections; a client that shuts down its
write side still gets the rest of its echo, then EOF.

The clients run seashard_lab/incontainer/traffic.py inside client-1/client-2, so
all traffic is container to container."""

from __future__ import annotations

import pytest

from seashard_lab.plan import CLIENTS, PORTS, SERVERS

SIZES = [1, 2, 100, 1460, 1461, 4096, 65535, 65536, 262144, 1048576]


@pytest.fixture(params=SERVERS, ids=["posix", "native"])
def server(request) -> str:
    return request.param


def test_accept_log_names_the_client_address_and_port(lab, server):
    ip = lab.service_ip(server)
    expected = []
    for client in CLIENTS:
        summary = lab.traffic(client, "accept", "--host", ip, "--count", "3")
        assert summary["ok"], summary["errors"]
        assert summary["local_ip"] == lab.ips[client]
        expected += [
            f"Accepted connection from {lab.ips[client]}:{r['port']}" for r in summary["results"]
        ]
    lines = set(lab.labctl(server, "logs", "out").stdout.splitlines())
    missing = [line for line in expected if line not in lines]
    assert not missing, f"not in {server}'s stdout: {missing}"


def test_canned_response_is_exact_and_the_server_closes_first(lab, server):
    client = "client-1"
    summary = lab.traffic(
        client,
        "canned",
        "--host",
        lab.service_ip(server),
        "--count",
        "20",
        "--concurrency",
        "5",
    )
    assert summary["ok"], summary["errors"]
    assert all(r["exact"] and r["server_closed_first"] for r in summary["results"])
    ours = {f"{lab.ips[client]}:{r['port']}" for r in summary["results"]}
    # TIME_WAIT stays with the side that closed first: on the server, never on the client
    on_server = lab.time_wait_remotes(server, PORTS["canned"])
    assert ours <= on_server, f"not in TIME_WAIT on {server}: {sorted(ours - on_server)}"
    client_tw = lab.run(client, "ss -tanH state time-wait '( dport = :%s )'", str(PORTS["canned"]))
    ports = {r["port"] for r in summary["results"]}
    in_client_tw = [
        line
        for line in client_tw.stdout.splitlines()
        if int(line.split()[-2].rsplit(":", 1)[1]) in ports
    ]
    assert not in_client_tw, f"the client closed first for: {in_client_tw}"


def test_echo_is_byte_exact_from_1_byte_to_1_mib(lab, server):
    summary = lab.traffic(
        "client-1",
        "echo",
        "--host",
        lab.service_ip(server),
        "--sizes",
        ",".join(map(str, SIZES)),
        timeout=180,
    )
    bad = [r for r in summary["results"] if not r["ok"]]
    assert not bad, bad
    assert [r["size"] for r in summary["results"]] == SIZES


def test_echo_many_concurrent_connections_from_both_clients(lab, server):
    ip = lab.service_ip(server)
    args = ["echo", "--host", ip, "--sizes", "1,16384", "--concurrency", "100", "--timeout", "60"]
    other = lab.traffic_background("client-2", *args, "--seed", "2")
    first = lab.traffic("client-1", *args, "--seed", "1", timeout=180)
    second = other.finish(timeout=180)
    for client, summary in (("client-1", first), ("client-2", second)):
        assert len(summary["results"]) == 200
        assert summary["ok"], f"{client}: {summary['errors'][:10]}"
        assert len({r["port"] for r in summary["results"]}) == 200


def test_half_close_gets_the_rest_of_the_echo_then_eof(lab, server):
    summary = lab.traffic(
        "client-2",
        "echo",
        "--host",
        lab.service_ip(server),
        "--sizes",
        "1,1000,100000,1048576",
        "--half-close",
        timeout=180,
    )
    for r in summary["results"]:
        assert r["ok"], r
        assert r["exact"] and r["eof"]
        # shut down right after the last write: the echo of (at least) the last
        # bytes could only arrive after the shutdown
        assert r["after_shutdown"] > 0, r
