"""The lab as a Docker Swarm stack: the `Deployment` of deploy/swarm/lab-stack.yml.

`SwarmDeployment` brings the stack up on the engine's swarm -- a one-node
swarm it makes (and labels) when there is none, or the multi-node swarm the
engine is a manager of -- and looks into it with the same calls as the
compose lab, so `Lab`, the steps and the suites run on it unchanged.  What
differs is where things are, and `SwarmLab` says so:

  * the services are named as in compose: the replicated ``client`` service's
    tasks are client-1..N by slot;
  * the native stack answers on the task's own overlay address (the task has
    no second one on the lab overlay), so ``service_ip("native-server")`` is that
    address;
  * what watches the lab -- admin endpoints, the clients' /metrics, Prometheus --
    is on a second overlay, ``mgmt``, where every server's kernel has an address
    of its own (`admin_ip`); the probe fetches admin pages there, as on compose;
  * the host reaches Prometheus on its docker_gwbridge address (`prometheus_url`).

Only tasks on this node can be looked into (exec, logs): the suites run on a
one-node swarm; on a multi-node swarm `up`, `status` and `down` work from a
manager, and the suites need the tasks on the manager's node.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from docker.models.containers import Container

from . import ROOT
from .capture import CaptureHelper
from .deployment import InContainers
from .lab import Lab
from .plan import (
    LOAD_ARGS,
    LOAD_METRICS_ARGS,
    PROMETHEUS_PORT,
    SERVE_ADMIN_ARGS,
    SERVERS,
    AddressPlan,
)
from .runtime import Engine, EngineError, Result
from .swarm import SERVICE_NAME_LABEL, TASK_NAME_LABEL, Swarm, Task, resolve_image

STACK_FILE = ROOT / "deploy" / "swarm" / "lab-stack.yml"
NETWORK = "lab"  # the stack's overlay network (STACK_lab)
MGMT_NETWORK = "mgmt"  # admin endpoints, the clients' /metrics, Prometheus (STACK_mgmt)
DEFAULT_SUBNET = "10.231.0.0/24"
DEFAULT_MGMT_SUBNET = "10.231.1.0/24"
GWBRIDGE = "docker_gwbridge"  # the host's bridge to the tasks of non-internal overlays
DEFAULT_CLIENTS = 2
# where the stack file places the servers: node.labels.seashard.SERVER == true
SERVER_LABELS = {server: f"seashard.{server}" for server in SERVERS}


def free_subnet(
    engine: Engine, exclude: Sequence[ipaddress.IPv4Network] = ()
) -> ipaddress.IPv4Network:
    """A /24 of LAB_SWARM_POOL (10.231.0.0/16) that no network of the engine, no
    host route and nothing in ``exclude`` uses."""
    used = [ipaddress.ip_network(s, strict=False) for s in engine.all_subnets() if ":" not in s]
    used += list(exclude)
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            words = line.split()
            dest, mask = (
                ipaddress.IPv4Address(bytes.fromhex(w)[::-1]) for w in (words[1], words[7])
            )
            if int(mask):
                used.append(ipaddress.ip_network(f"{dest}/{mask}", strict=False))
    pool = ipaddress.IPv4Network(os.environ.get("LAB_SWARM_POOL") or "10.231.0.0/16")
    free = [c for c in pool.subnets(new_prefix=24) if not any(c.overlaps(u) for u in used)]
    if not free:
        raise EngineError(f"no free /24 in {pool} for a swarm lab (LAB_SWARM_POOL)")
    return secrets.choice(free)


def lab_service(stack: str, container: Container) -> str | None:
    """The lab's name for a task container: posix-server, client-2, ..."""
    service = container.labels.get(SERVICE_NAME_LABEL, "").removeprefix(f"{stack}_")
    if not service:
        return None
    if service == "client":
        m = re.match(
            rf"^{re.escape(stack)}_client\.(\d+)\.", container.labels.get(TASK_NAME_LABEL, "")
        )
        return f"client-{m.group(1)}" if m else None
    return service


@dataclass
class SwarmDeployment(InContainers):
    """deploy/swarm/lab-stack.yml as stack ``project`` on the engine's swarm."""

    project: str
    subnet: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network(
            os.environ.get("LAB_SUBNET") or DEFAULT_SUBNET
        )
    )
    mgmt_subnet: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network(
            os.environ.get("LAB_MGMT_SUBNET") or DEFAULT_MGMT_SUBNET
        )
    )
    clients: int = DEFAULT_CLIENTS
    engine: Engine = field(default_factory=Engine)
    image: str = field(default_factory=lambda: os.environ.get("LAB_IMAGE") or "seashard/lab:latest")
    made_swarm: bool = False  # this object's up() made the swarm
    _containers: dict[str, Container] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.swarm = Swarm(self.engine)
        # the plan's fixed addresses mean nothing on an overlay; its subnet does
        self.plan = AddressPlan.from_env({"LAB_SUBNET": str(self.subnet)})

    def env(self) -> dict[str, str]:
        """The variables deploy/swarm/lab-stack.yml reads."""
        return {
            "LAB_IMAGE": self.image,
            "LAB_SUBNET": str(self.subnet),
            "LAB_MGMT_SUBNET": str(self.mgmt_subnet),
            "LAB_STACK": self.project,
            "LAB_CLIENTS": str(self.clients),
            "LOAD_ARGS": os.environ.get("LOAD_ARGS") or LOAD_ARGS,
            "LAB_LOAD_METRICS_ARGS": LOAD_METRICS_ARGS,
            "LAB_SERVE_ADMIN_ARGS": SERVE_ADMIN_ARGS,
            "LAB_CLIENTS_AUTOSTART": os.environ.get("LAB_CLIENTS_AUTOSTART", "1"),
            "LAB_READY_PATTERN": os.environ.get("LAB_READY_PATTERN", ""),
        }

    # ------------------------------------------------------------ life cycle

    def ensure_swarm(self) -> str:
        """A swarm to deploy on; says which.  Makes (and labels) a one-node swarm
        when the engine is in none; on an existing swarm, every server needs a
        node with its label (placing servers is the swarm owner's choice)."""
        state = self.swarm.state()
        if state == "inactive":
            node = self.swarm.init()
            self.made_swarm = True
            self.swarm.label_node(node, {label: "true" for label in SERVER_LABELS.values()})
            return (
                "a one-node swarm made for the lab (docker swarm init --advertise-addr 127.0.0.1)"
            )
        if state != "active":
            raise EngineError(f"this engine's swarm is {state}: docker info; docker swarm leave?")
        if not self.swarm.is_manager():
            raise EngineError("this engine is a swarm worker: run scripts/lab on a manager node")
        missing = [s for s, label in SERVER_LABELS.items() if not self.swarm.nodes_labelled(label)]
        if missing and self.swarm.made_by_lab():
            self.swarm.label_node(self.swarm.node_id(), {SERVER_LABELS[s]: "true" for s in missing})
            missing = []
        if missing:
            hint = "; ".join(
                f"docker node update --label-add {SERVER_LABELS[s]}=true NODE" for s in missing
            )
            raise EngineError(f"no ready node may run {', '.join(missing)}: {hint}")
        made = " (made by the lab)" if self.swarm.made_by_lab() else ""
        return f"the existing swarm of {len(self.swarm.nodes())} node(s){made}"

    def up(self, *, wait: bool = True, timeout: float = 120.0) -> dict[str, str]:
        """Deploy the stack; with ``wait``, until every task runs and is healthy.
        Returns each service's health (as ComposeDeployment.up)."""
        # a local image must be here (and on every node: --image-to); the nodes pull
        # one from a registry themselves
        if resolve_image(self.image) == "never" and not self.engine.image_exists(self.image):
            raise EngineError(f"no image {self.image} on this node: scripts/lab build")
        self.ensure_swarm()
        res = self.swarm.stack_deploy(self.project, STACK_FILE, self.env())
        if not res.ok:
            raise EngineError(f"docker stack deploy failed:\n{res.stderr[-3000:]}")
        if not wait:
            return {}
        deadline = time.monotonic() + timeout
        self.wait_running(timeout)
        return self.wait_healthy(max(1.0, deadline - time.monotonic()))

    def expected(self) -> list[str]:
        return (
            ["posix-server", "native-server"]
            + [f"client-{n}" for n in range(1, self.clients + 1)]
            + ["probe", "prometheus"]
        )

    def wait_running(self, timeout: float) -> list[Task]:
        """Until every service's tasks run (on any node) or ``timeout``: the tasks."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.swarm.tasks(self.project)
            running = sum(t.state == "running" for t in tasks)
            if running >= len(self.expected()) or time.monotonic() > deadline:
                self.refresh()
                return tasks
            time.sleep(1)

    def wait_healthy(self, timeout: float) -> dict[str, str]:
        """Until each server is healthy or its program has exited, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            states = {s: self.health(s) for s in self.expected() if s in self._containers}
            pending = [
                s
                for s, h in states.items()
                if h == "starting" or (h == "unhealthy" and self.program_running(s))
            ]
            missing = [s for s in self.expected() if s not in self._containers]
            if (not pending and not missing) or time.monotonic() > deadline:
                return states | {s: "not on this node" for s in missing}
            time.sleep(1)

    def down(self) -> list[str]:
        """Remove the stack (and its capture helpers); leave the swarm if the lab
        made it and no lab stack is left on it.  Returns what was left over."""
        if self.swarm.stack_services(self.project):
            # capture helpers of this stack (not of a compose lab of the same name)
            for helper in self.engine.helpers(self.project):
                helper.remove(force=True)
        self._containers.clear()
        left = self.swarm.stack_rm(self.project)
        if self.swarm.made_by_lab() and not self.swarm.lab_stacks() - {self.project}:
            self.swarm.leave()
        if self.made_swarm and self.swarm.state() != "inactive" and not self.swarm.lab_stacks():
            left.append("the swarm this deployment made")
        return left

    # ------------------------------------------------------------ looking in

    def refresh(self) -> None:
        self._containers.clear()
        for c in sorted(self.swarm.containers(self.project, running=True), key=_created):
            service = lab_service(self.project, c)
            if service:
                self._containers[service] = c  # the newest running task of each slot

    def running(self) -> bool:
        return bool(self.swarm.containers(self.project, running=True))

    @property
    def lab_class(self) -> type[Lab]:
        """The `Lab` for this deployment (scenario/run.py asks)."""
        return SwarmLab

    def services(self) -> list[str]:
        if not self._containers:
            self.refresh()
        return [s for s in self.expected() if s in self._containers]

    def tasks(self) -> list[Task]:
        return self.swarm.tasks(self.project)

    def container(self, service: str) -> Container:
        if service not in self._containers:
            self.refresh()
        if service not in self._containers:
            where = [t for t in self.tasks() if _task_name(t) == service]
            if where:
                raise EngineError(
                    f"{service} runs on node {where[0].node} ({where[0].state}), not here: "
                    "look into it with that node's engine (DOCKER_HOST=ssh://NODE)"
                )
            raise EngineError(f"no task for '{service}' in stack '{self.project}'")
        return self._containers[service]

    def _address_on(self, service: str, network: str) -> str:
        nets = self.container(service).attrs["NetworkSettings"]["Networks"]
        net = nets.get(f"{self.project}_{network}") or {}
        if not net.get("IPAddress"):
            raise EngineError(f"{service} has no address on {self.project}_{network}")
        return str(net["IPAddress"])

    def ip_of(self, service: str) -> str:
        """The task's address on the stack's overlay (the native stack's, for native-server)."""
        return self._address_on(service, NETWORK)

    def admin_ip(self, service: str) -> str:
        """The task's address on the mgmt overlay: its kernel's, where admin answers."""
        return self._address_on(service, MGMT_NETWORK)

    def prometheus_url(self) -> str:
        """Prometheus on its task's docker_gwbridge address: the host's way into the
        stack without a published port (the stack's `web` network gives it that leg)."""
        container = self.container("prometheus")
        bridge = self.engine.client.networks.get(GWBRIDGE)
        subnets = [
            ipaddress.ip_network(c["Subnet"])
            for c in (bridge.attrs.get("IPAM") or {}).get("Config") or []
            if ":" not in c.get("Subnet", ":")
        ]
        out = self.engine.exec(container, ["ip", "-4", "-o", "addr", "show"], timeout=20)
        for line in out.stdout.splitlines():
            words = line.split()
            ip = ipaddress.ip_interface(words[3]).ip if len(words) > 3 else None
            if ip is not None and any(ip in n for n in subnets):
                return f"http://{ip}:{PROMETHEUS_PORT}"
        raise EngineError(f"prometheus of stack '{self.project}' has no address on {GWBRIDGE}")

    def prometheus_label(self, service: str) -> str:
        """prometheus-swarm.yml: a client replica is ``client@ITS_MGMT_ADDRESS``."""
        if service.startswith("client-"):
            return f"client@{self.admin_ip(service)}"
        return service

    def health(self, service: str) -> str:
        """As compose reports it: "healthy"/"unhealthy" for the servers, from
        `lab-health` run here (the stack has no healthcheck: see its header),
        "starting" until their program has started, "none" for the others."""
        state = self.engine.health(self.container(service))
        if state != "none" or service not in SERVERS:
            return state
        if self.exec(service, ["lab-health"], timeout=10).ok:
            return "healthy"
        status = self.exec(service, ["labctl", "status"], timeout=10)
        return "starting" if "never started" in status.stdout else "unhealthy"

    def bridge(self) -> str:
        # An overlay's bridge lives in a namespace of its own, not on the host:
        # SwarmLab.bridge_capture goes there (OverlayCaptureHelper).
        raise EngineError("a swarm overlay has no host bridge: its br0 is in the overlay's netns")

    def is_internal(self) -> bool:
        return bool(self.swarm.network(self.project, NETWORK).attrs.get("Internal"))

    def network_summary(self) -> str:
        net = self.swarm.network(self.project, NETWORK)
        cfg = (net.attrs.get("IPAM") or {}).get("Config") or [{}]
        return f"overlay network {net.name} {cfg[0].get('Subnet')}, on {self.swarm_summary()}"

    def swarm_summary(self) -> str:
        nodes = self.swarm.nodes()
        made = ", made by the lab" if self.swarm.made_by_lab() else ""
        return f"a swarm of {len(nodes)} node(s){made}"


def _created(c: Container) -> str:
    return str(c.attrs.get("Created", ""))


def _task_name(task: Task) -> str:
    return f"client-{task.slot}" if task.service == "client" else task.service


class OverlayCaptureHelper(CaptureHelper):
    """Captures of the whole lab on a swarm: tcpdump on the overlay's bridge br0,
    in the overlay's own network namespace on this node (every frame between the
    tasks here; the compose lab's counterpart is its host bridge)."""

    def __init__(self, deployment: SwarmDeployment) -> None:
        self.deployment = deployment
        self.where, self.default_iface = "lab", "br0"
        self.netns = deployment.swarm.overlay_netns(deployment.project, NETWORK)
        self.container = deployment.swarm.run_overlay_helper(deployment.project, deployment.image)

    def _sh(self, command: str, timeout: float = 30.0) -> Result:
        argv = ["nsenter", f"--net={self.netns}", "sh", "-c", command]
        return self.deployment.engine.exec(self.container, argv, timeout=timeout)


class SwarmLab(Lab):
    """`Lab` on a swarm stack: where the native stack and the whole lab's traffic are."""

    deployment: SwarmDeployment

    def bridge_capture(self) -> CaptureHelper:
        if self._bridge is None:
            self._bridge = OverlayCaptureHelper(self.deployment)
        return self._bridge

    @property
    def native_stack_ip(self) -> str:
        return self.ip("native-server")


def current(project: str | None = None, clients: int | None = None) -> SwarmDeployment:
    """The swarm lab the environment names (SEASHARD_LAB_PROJECT, LAB_SUBNET, LAB_CLIENTS);
    a running stack's own subnet and client count win over the environment's."""
    from .plan import DEFAULT_PROJECT

    project = project or os.environ.get("SEASHARD_LAB_PROJECT") or DEFAULT_PROJECT
    n = clients or int(os.environ.get("LAB_CLIENTS") or DEFAULT_CLIENTS)
    deployment = SwarmDeployment(project, clients=n)
    if deployment.engine.ok() and deployment.swarm.state() == "active":
        try:
            net = deployment.swarm.network(project, NETWORK)
        except EngineError:
            return deployment
        cfg = (net.attrs.get("IPAM") or {}).get("Config") or []
        if cfg and cfg[0].get("Subnet"):
            deployment.subnet = ipaddress.IPv4Network(cfg[0]["Subnet"])
            deployment.plan = AddressPlan.from_env({"LAB_SUBNET": str(deployment.subnet)})
        try:
            mgmt = deployment.swarm.network(project, MGMT_NETWORK)
            cfg = (mgmt.attrs.get("IPAM") or {}).get("Config") or []
            if cfg and cfg[0].get("Subnet"):
                deployment.mgmt_subnet = ipaddress.IPv4Network(cfg[0]["Subnet"])
        except EngineError:
            pass  # a stack of an older stack file: no mgmt overlay
        for service in deployment.swarm.stack_services(project):
            if service.name == f"{project}_client" and clients is None:
                deployment.clients = int(service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"])
    return deployment
