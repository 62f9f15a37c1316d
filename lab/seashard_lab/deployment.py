"""A lab as an object: brought up, looked into, taken down.

`Deployment` is the interface the verbs, the scenarios and the lab suites
use; `ComposeDeployment` is the lab of docker-compose.yml on one engine (a
swarm stack is another implementation of the same interface).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from docker.models.containers import Container

from . import COMPOSE_FILE, DOCKERFILE, ROOT
from .plan import DEFAULT_BASE_IMAGE, DEFAULT_IMAGE, SERVICES, AddressPlan
from .runtime import Compose, Engine, EngineError, Result


class Deployment(Protocol):
    """What the verbs, the scenarios and the suites need of a deployed lab."""

    project: str
    plan: AddressPlan  # the addresses (the native stack's, the kernel's of each service)
    engine: Engine
    image: str  # the lab image (helper containers run it)

    def up(self, *, wait: bool = True, timeout: float = 120.0) -> dict[str, str]:
        """Deploy; with ``wait``, each service's health once settled (see wait_healthy)."""
        ...

    def down(self) -> list[str]:
        """Remove everything of the project; what had to be removed by force."""
        ...

    def wait_healthy(self, timeout: float) -> dict[str, str]: ...
    def running(self) -> bool: ...
    def services(self) -> list[str]: ...
    def container(self, service: str) -> Container:
        """The (local) container of a service: exec, archives, network namespace."""
        ...

    def exec(self, service: str, argv: Sequence[str], *, timeout: float = 60.0) -> Result: ...
    def program_running(self, service: str) -> bool: ...
    def ip_of(self, service: str) -> str: ...
    def admin_ip(self, service: str) -> str:
        """Where, seen from the probe, a server's admin endpoint (a client's
        /metrics) answers: its kernel's address on the network that watches the lab."""
        ...

    def prometheus_url(self) -> str:
        """The lab's Prometheus, as this host reaches it."""
        ...

    def prometheus_label(self, service: str) -> str:
        """The ``service`` label Prometheus gives the service's targets."""
        ...

    def logs(self, service: str, since: float | None = None) -> str: ...
    def health(self, service: str) -> str: ...
    def bridge(self) -> str:
        """The host interface where one capture sees the whole lab."""
        ...

    def is_internal(self) -> bool: ...
    def network_summary(self) -> str: ...


def lab_image() -> str:
    return os.environ.get("LAB_IMAGE") or DEFAULT_IMAGE


def build_image(engine: Engine, image: str | None = None) -> str:
    """Build the lab image from images/lab/Dockerfile on BASE_IMAGE (present locally)."""
    image = image or lab_image()
    base = os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE
    if not engine.image_exists(base):
        raise EngineError(
            f"base image {base} is not here: scripts/lab build pulls it or makes it "
            "with debootstrap (BASE_IMAGE=seashard/bookworm-base:latest)"
        )
    engine.build(ROOT, DOCKERFILE, image, {"BASE_IMAGE": base})
    return image


class InContainers:
    """What every deployment does the same once it has a service's container:
    run a command in it, ask labctl about its program, read its log."""

    engine: Engine

    def container(self, service: str) -> Container:
        raise NotImplementedError

    def exec(self, service: str, argv: Sequence[str], *, timeout: float = 60.0) -> Result:
        return self.engine.exec(self.container(service), argv, timeout=timeout)

    def program_running(self, service: str) -> bool:
        return self.exec(service, ["labctl", "status"], timeout=20).ok

    def logs(self, service: str, since: float | None = None) -> str:
        return self.engine.logs(self.container(service), since=since)


@dataclass
class ComposeDeployment(InContainers):
    """The lab of docker-compose.yml, as compose project ``project``."""

    project: str
    plan: AddressPlan
    engine: Engine = field(default_factory=Engine)
    compose: Compose | None = None
    image: str = field(default_factory=lab_image)
    _containers: dict[str, Container] = field(default_factory=dict)

    def _compose(self) -> Compose:
        if self.compose is None:
            self.compose = Compose.detect()
        return self.compose

    def env(self) -> dict[str, str]:
        return self.plan.env() | {
            "LAB_IMAGE": self.image,
            "BASE_IMAGE": os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE,
        }

    def compose_run(self, *args: str, capture: bool = True, timeout: float = 600.0) -> Result:
        return self._compose().run(
            self.project, COMPOSE_FILE, args, self.env(), capture=capture, timeout=timeout
        )

    # ------------------------------------------------------------ life cycle

    def up(self, *, wait: bool = True, timeout: float = 120.0) -> dict[str, str]:
        """compose up -d (the image must exist); with ``wait``, the health of each service."""
        if not self.engine.image_exists(self.image):
            raise EngineError(f"no image {self.image}: scripts/lab build")
        res = self.compose_run("up", "-d", "--no-build", "--remove-orphans")
        if not res.ok:
            raise EngineError(f"compose up failed ({self._compose()}):\n{res.stderr[-3000:]}")
        self.refresh()
        return self.wait_healthy(timeout) if wait else {}

    def down(self) -> list[str]:
        """compose down -v; then anything of the project still there, by force.
        Returns what had to be removed by force (nothing, normally)."""
        for helper in self.engine.helpers(self.project):
            helper.remove(force=True)
        res = self.compose_run("down", "-v", "--remove-orphans", "--timeout", "10")
        self._containers.clear()
        forced = self.engine.force_remove(self.project)
        if not res.ok and not forced:
            raise EngineError(f"compose down failed:\n{res.stderr[-2000:]}")
        return forced

    def wait_healthy(self, timeout: float) -> dict[str, str]:
        """Until every service with a healthcheck is healthy, or its program has
        exited (it will not get healthy then), or ``timeout``: each one's health."""
        deadline = time.monotonic() + timeout
        while True:
            states = {s: self.health(s) for s in self.services()}
            pending = [s for s, h in states.items() if h == "starting" and self.program_running(s)]
            if not pending or time.monotonic() > deadline:
                return states
            time.sleep(1)

    # ------------------------------------------------------------ looking in

    def refresh(self) -> None:
        self._containers.clear()
        for c in self.engine.containers(self.project):
            service = c.labels.get("com.docker.compose.service")
            if service:
                self._containers[service] = c

    def services(self) -> list[str]:
        if not self._containers:
            self.refresh()
        return [s for s in SERVICES if s in self._containers] + sorted(
            s for s in self._containers if s not in SERVICES
        )

    def running(self) -> bool:
        return bool(self.engine.containers(self.project, running=True))

    def container(self, service: str) -> Container:
        if service not in self._containers:
            self.refresh()
        if service not in self._containers:
            raise EngineError(f"no container for '{service}' in lab '{self.project}'")
        return self._containers[service]

    def ip_of(self, service: str) -> str:
        ip = self.engine.ip(self.container(service))
        if not ip:
            raise EngineError(f"{service} has no address in lab '{self.project}'")
        return ip

    def admin_ip(self, service: str) -> str:
        return self.ip_of(service)  # one network: the kernel's lab address (br0 on native)

    def prometheus_url(self) -> str:
        return self.plan.prometheus_url()

    def prometheus_label(self, service: str) -> str:
        return service  # lab-prometheus names every target after its service

    def health(self, service: str) -> str:
        return self.engine.health(self.container(service))

    def _network(self):  # noqa: ANN202 - a docker Network
        nets = self.engine.networks(self.project)
        if not nets:
            raise EngineError(f"lab '{self.project}' has no network (scripts/lab up)")
        nets[0].reload()
        return nets[0]

    def bridge(self) -> str:
        """The lab network's bridge on the host: where one capture sees the whole lab."""
        net = self._network()
        name = (net.attrs.get("Options") or {}).get("com.docker.network.bridge.name")
        return name or "br-" + net.id[:12]

    def is_internal(self) -> bool:
        return bool(self._network().attrs.get("Internal"))

    def network_summary(self) -> str:
        net = self._network()
        cfg = (net.attrs.get("IPAM") or {}).get("Config") or [{}]
        return (
            f"network {net.name} {cfg[0].get('Subnet')} gateway {cfg[0].get('Gateway')}, "
            f"host bridge {self.bridge()}"
        )


def current(project: str | None = None) -> ComposeDeployment:
    """The lab the environment names (SEASHARD_LAB_PROJECT, LAB_SUBNET, ...)."""
    from .plan import DEFAULT_PROJECT

    project = project or os.environ.get("SEASHARD_LAB_PROJECT") or DEFAULT_PROJECT
    deployment = ComposeDeployment(project, AddressPlan.from_env())
    # a running lab's own subnet wins over the environment's (it may have come up with another)
    for net in deployment.engine.networks(project) if deployment.engine.ok() else []:
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet") and str(deployment.plan.subnet) != cfg["Subnet"]:
                env = dict(os.environ, LAB_SUBNET=cfg["Subnet"])
                for var in ("LAB_GATEWAY", "LAB_IP_RANGE", "LAB_NETMASK"):
                    env.pop(var, None)
                deployment.plan = AddressPlan.from_env(env)
    return deployment
