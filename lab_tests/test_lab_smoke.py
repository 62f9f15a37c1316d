"""The lab itself: every service up, the servers healthy and reachable from
inside the lab, the native container's bridge and TAP in place, labctl's
contract, and a lab network that leads nowhere else."""

import io

import pytest

from seashard_lab.plan import PORTS, SERVERS, SERVICES


def test_every_service_runs(lab):
    missing = [s for s in SERVICES if s not in lab.deployment.services()]
    assert not missing, f"services without a container: {missing}"
    states = {s: lab.health(s) for s in SERVICES}
    assert all(state in ("healthy", "none") for state in states.values()), states


@pytest.mark.parametrize("server", SERVERS)
def test_server_is_healthy(lab, server):
    status = lab.labctl(server, "status")
    assert status.rc == 0, f"{server}: {status.stdout}{status.stderr}"
    assert lab.health(server) == "healthy"


@pytest.mark.parametrize("client", ["client-1", "client-2"])
def test_client_load_generator_runs(lab, client):
    status = lab.labctl(client, "status")
    assert status.rc == 0, status.stdout
    assert "lab-load" in status.stdout


@pytest.mark.parametrize("server", SERVERS)
def test_admin_metrics_answer_from_the_probe(lab, server):
    text = lab.admin_get(server, "/metrics", tries=1)
    assert "# TYPE" in text  # Prometheus text format
    assert lab.metrics(server).shard_info().keys() == {0, 1}


@pytest.mark.parametrize("server", SERVERS)
def test_servers_run_the_compiled_accelerator(lab, server):
    # the image compiles it in its builder stage (images/lab/Dockerfile, Debian's mypyc)
    samples = lab.metrics(server).samples.get("seashard_build_info", [])
    assert {int(lb["shard"]): lb["code"] for lb, _ in samples} == {0: "compiled", 1: "compiled"}


@pytest.mark.parametrize("server", SERVERS)
def test_addresses_are_the_static_ones(lab, server):
    base = lab.subnet.network_address
    expected = {"posix-server": base + 10, "native-server": base + 20}[server]
    assert lab.ips[server] == str(expected)


@pytest.mark.parametrize(
    "target",
    ["posix-server", "native-server", "native-stack", "client-1", "gateway"],
)
def test_probe_pings(lab, target):
    address = {
        "native-stack": lab.native_stack_ip,
        "gateway": lab.gateway,
    }.get(target) or lab.ips[target]
    result = lab.run("probe", "ping -c 2 -W 2 %s", address)
    assert result.rc == 0, f"{target} {address}: {result.stdout}{result.stderr}"


@pytest.mark.parametrize("server", SERVERS)
def test_canned_service_answers_from_the_probe(lab, server):
    address = lab.service_ip(server)
    result = lab.run("probe", "nc -w 5 %s %s < /dev/null", address, str(PORTS["canned"]))
    assert result.stdout == "Seastar is the future!\n", result.stderr


def test_native_container_has_bridge_and_tap(lab):
    native = lab.hosts["native-server"]
    br0 = native.interface("br0")
    assert br0.exists
    assert lab.ips["native-server"] in br0.addresses
    assert not native.interface("eth0").addresses, "eth0's address should have moved to br0"
    links = native.run("ip -o link show master br0").stdout
    assert "eth0" in links
    device = native.run("labctl args").stdout.split()
    if "--tap-device" in device:
        assert "tap0" in links
        assert "multi_queue" in native.run("ip -d link show tap0").stdout
        assert native.run("ip tuntap show").stdout.startswith("tap0: tap")
    else:
        assert "--packet-device" in device and "vbr0" in links
    offloads = native.run("ethtool -k eth0").stdout
    for feature in ("tcp-segmentation-offload", "generic-receive-offload", "tx-checksumming"):
        assert f"{feature}: off" in offloads, feature


def test_lab_network_is_internal(lab):
    assert lab.deployment.is_internal()


def test_capture_sees_traffic_in_a_server_namespace(lab):
    from scapy.all import TCP, rdpcap

    port = PORTS["canned"]
    with lab.capture("posix-server", bpf=f"tcp port {port}") as capture:
        lab.run("probe", "nc -w 5 %s %s < /dev/null", lab.ips["posix-server"], str(port))
    packets = rdpcap(io.BytesIO(capture.pcap))
    assert any(p.haslayer(TCP) and p[TCP].dport == port for p in packets)


def test_labctl_restart_reports_a_failed_start_and_recovers(lab):
    # an option seashard does not know: it must fail at once, with a one-line error
    failed = lab.labctl("posix-server", "restart", "serve", "--no-such-option")
    assert failed.rc != 0
    first_line = failed.stderr.splitlines()[0]
    assert "--no-such-option" in first_line, failed.stderr
    assert lab.labctl("posix-server", "status").rc == 3

    restored = lab.labctl("posix-server", "restart", "--defaults")
    assert restored.rc == 0, restored.stderr
    assert "# TYPE" in lab.admin_get("posix-server", "/metrics", tries=1)
