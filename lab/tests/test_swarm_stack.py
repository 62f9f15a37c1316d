"""deploy/swarm/lab-stack.yml: the rules a swarm imposes, checked without an engine.

Swarm has no static IPs and no ``devices:``; the suites' ownership checks need
each server to see the clients' real addresses (DNS round robin, not a VIP);
the native server must take the task's own address.  `docker stack config`
(the docker CLI, no daemon) renders the file as `docker stack deploy` reads it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "swarm" / "lab-stack.yml"


def stack() -> dict:
    return yaml.safe_load(STACK.read_text())


def test_every_service_uses_dns_round_robin_on_the_overlays():
    doc = stack()
    assert set(doc["services"]) == {
        "posix-server",
        "native-server",
        "client",
        "probe",
        "prometheus",
    }
    for name, svc in doc["services"].items():
        assert svc["deploy"]["endpoint_mode"] == "dnsrr", name
        # the lab's traffic on `lab`; what watches it on `mgmt`; Prometheus off `lab`
        want = ["mgmt", "web"] if name == "prometheus" else ["lab", "mgmt"]
        assert svc["networks"] == want, name
        # what a stack cannot have
        assert "devices" not in svc and "build" not in svc, name
        assert "ports" not in svc, name  # published ports need the VIP's ingress
        # swarm replaces an unhealthy task (a new netns): the lab checks health itself
        assert "healthcheck" not in svc, name
    for net in ("lab", "mgmt"):
        lab = doc["networks"][net]
        assert lab["driver"] == "overlay"
        assert lab["internal"] is True and lab["attachable"] is True
    # the host's way to Prometheus (docker_gwbridge) needs one non-internal overlay
    assert doc["networks"]["web"]["driver"] == "overlay"
    assert not doc["networks"]["web"].get("internal")


def test_prometheus_finds_every_server_and_client_by_name_on_mgmt():
    prom = yaml.safe_load(
        (ROOT / "images" / "lab" / "prometheus" / "prometheus-swarm.yml").read_text()
    )
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    sd = {
        (name, c["port"])
        for job in jobs.values()
        for c in job["dns_sd_configs"]
        for name in c["names"]
    }
    assert sd == {
        ("tasks.posix-server", 9100),
        ("tasks.native-server", 9100),
        ("tasks.client", 9200),
        ("tasks.client", 9201),
    }
    env = stack()["services"]["prometheus"]["environment"]
    assert env["LAB_PROMETHEUS_CONFIG"].endswith("/prometheus-swarm.yml")
    # the clients load the servers over the lab overlay, not mgmt (lab-load)
    client = stack()["services"]["client"]["environment"]
    assert client["LAB_LOAD_NETWORK"] == "${LAB_STACK:-seashard-lab}_lab"


def test_servers_are_placed_by_node_labels_and_clients_are_replicated():
    services = stack()["services"]
    for server in ("posix-server", "native-server"):
        deploy = services[server]["deploy"]
        assert deploy["replicas"] == 1
        assert deploy["placement"]["constraints"] == [f"node.labels.seashard.{server} == true"]
    client = services["client"]
    assert client["deploy"]["replicas"] == "${LAB_CLIENTS:-2}"
    assert client["hostname"] == "client-{{.Task.Slot}}"
    assert client["command"] == ["client", "posix=posix-server", "native=native-server"]


def test_the_native_server_uses_af_packet_with_the_tasks_own_address():
    native = stack()["services"]["native-server"]
    assert set(native["cap_add"]) == {"NET_ADMIN", "NET_RAW"}
    assert native["environment"]["NATIVE_DEVICE"] == "packet"
    assert native["environment"]["NATIVE_ADDRESS"] == "uplink"
    assert not {"--host-ipv4-addr", "--packet-device", "--tap-device"} & set(native["command"])
    for server in ("posix-server", "native-server"):
        svc = stack()["services"][server]
        # the admin endpoint binds every address (lab-entrypoint appends these) ...
        assert "--admin-address 0.0.0.0" in svc["environment"]["LAB_SERVE_ADMIN_ARGS"]
        # ... health is checked inside the container, on loopback
        assert svc["environment"]["LAB_ADMIN_URL"] == "http://127.0.0.1:9100/metrics"
    # the native stack takes the lab overlay's interface; the kernel keeps mgmt's
    assert native["environment"]["LAB_UPLINK_SUBNET"] == "${LAB_SUBNET:-10.231.0.0/24}"


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (no daemon)")
def test_docker_stack_config_renders_it_with_the_labs_variables():
    env = dict(
        os.environ,
        LAB_IMAGE="seashard/lab:test",
        LAB_SUBNET="10.231.9.0/24",
        LAB_MGMT_SUBNET="10.231.10.0/24",
        LAB_CLIENTS="3",
        DOCKER_HOST="unix:///nonexistent.sock",  # rendering needs no daemon
    )
    res = subprocess.run(
        ["docker", "stack", "config", "-c", str(STACK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    rendered = yaml.safe_load(res.stdout)
    assert rendered["services"]["client"]["deploy"]["replicas"] == 3
    assert rendered["networks"]["lab"]["ipam"]["config"] == [{"subnet": "10.231.9.0/24"}]
    assert rendered["networks"]["mgmt"]["ipam"]["config"] == [{"subnet": "10.231.10.0/24"}]
    assert {s["image"] for s in rendered["services"].values()} == {"seashard/lab:test"}
