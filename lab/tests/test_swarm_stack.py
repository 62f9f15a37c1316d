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


def test_every_service_uses_dns_round_robin_on_the_overlay_only():
    doc = stack()
    assert set(doc["services"]) == {"posix-server", "native-server", "client", "probe"}
    for name, svc in doc["services"].items():
        assert svc["deploy"]["endpoint_mode"] == "dnsrr", name
        assert svc["networks"] == ["lab"], name
        # what a stack cannot have
        assert "devices" not in svc and "build" not in svc, name
        assert "ports" not in svc, name  # published ports need the VIP's ingress
        # swarm replaces an unhealthy task (a new netns): the lab checks health itself
        assert "healthcheck" not in svc, name
    lab = doc["networks"]["lab"]
    assert lab["driver"] == "overlay"
    assert lab["internal"] is True and lab["attachable"] is True


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
        # ... but the native kernel has no lab address: health is checked on loopback
        assert svc["environment"]["LAB_ADMIN_URL"] == "http://127.0.0.1:9100/metrics"


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (no daemon)")
def test_docker_stack_config_renders_it_with_the_labs_variables():
    env = dict(
        os.environ,
        LAB_IMAGE="seashard/lab:test",
        LAB_SUBNET="10.231.9.0/24",
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
    assert {s["image"] for s in rendered["services"].values()} == {"seashard/lab:test"}
