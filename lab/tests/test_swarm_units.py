"""The swarm deployment's pure parts: task names, image resolution, what the
stack gets from the one address plan and contract source (plan.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from seashard_lab import plan
from seashard_lab.swarm import resolve_image
from seashard_lab.swarm_deployment import STACK_FILE, SwarmDeployment, lab_service


def task(service: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(
        labels={"com.docker.swarm.service.name": service, "com.docker.swarm.task.name": name}
    )


def test_tasks_get_the_labs_service_names_clients_by_slot():
    stack = "seashard-lab-swarm-1a2b3c"
    assert lab_service(stack, task(f"{stack}_posix-server", f"{stack}_posix-server.1.x")) == (
        "posix-server"
    )
    assert lab_service(stack, task(f"{stack}_client", f"{stack}_client.2.k3j")) == "client-2"
    assert lab_service(stack, task(f"{stack}_client", f"{stack}_client.12.k3j")) == "client-12"
    assert lab_service(stack, SimpleNamespace(labels={})) is None


@pytest.mark.parametrize(
    ("image", "mode"),
    [
        ("seashard/lab:latest", "never"),
        ("seashard/lab:issue-9s", "never"),
        ("lab", "never"),
        ("registry.example.com/seashard/lab:1", "always"),
        ("localhost:5000/seashard/lab", "always"),
        ("localhost/seashard/lab", "always"),
    ],
)
def test_only_an_image_in_a_registry_is_resolved_by_the_manager(image, mode):
    assert resolve_image(image) == mode


def test_the_stack_gets_the_load_and_admin_args_from_plan(monkeypatch):
    monkeypatch.delenv("LOAD_ARGS", raising=False)
    d = SwarmDeployment.__new__(SwarmDeployment)
    d.image, d.clients = "seashard/lab:x", 3
    d.subnet, d.mgmt_subnet, d.project = "10.231.5.0/24", "10.231.6.0/24", "st"
    env = SwarmDeployment.env(d)
    assert env["LOAD_ARGS"] == plan.LOAD_ARGS
    assert env["LAB_LOAD_METRICS_ARGS"] == plan.LOAD_METRICS_ARGS
    assert env["LAB_SERVE_ADMIN_ARGS"] == plan.SERVE_ADMIN_ARGS
    assert env["LAB_CLIENTS"] == "3" and env["LAB_SUBNET"] == "10.231.5.0/24"
    assert env["LAB_MGMT_SUBNET"] == "10.231.6.0/24" and env["LAB_STACK"] == "st"
    # ... and the stack file's own defaults are the same (a plain `docker stack deploy`)
    services = yaml.safe_load(STACK_FILE.read_text())["services"]
    for server in plan.SERVERS:
        default = services[server]["environment"]["LAB_SERVE_ADMIN_ARGS"]
        assert default == "${LAB_SERVE_ADMIN_ARGS:-" + plan.SERVE_ADMIN_ARGS + "}", server
    client_env = services["client"]["environment"]
    assert client_env["LOAD_ARGS"] == "${LOAD_ARGS:-" + plan.LOAD_ARGS + "}"
    assert (
        client_env["LAB_LOAD_METRICS_ARGS"]
        == "${LAB_LOAD_METRICS_ARGS:-" + plan.LOAD_METRICS_ARGS + "}"
    )
