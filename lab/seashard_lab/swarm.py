"""Docker Swarm, behind the few calls the lab makes: the engine layer for stacks.

This is part of the runtime layer (runtime.py exposes it as ``runtime.Swarm``):
the docker SDK for the swarm itself (init, leave, nodes and their labels,
services, tasks), and the docker CLI for ``docker stack deploy`` / ``rm``,
which have no SDK (a stack is the CLI's own notion: it reads the compose file,
interpolates it and creates the services).

Two facts shape it:
  * A swarm is engine-wide.  The lab makes a one-node swarm only when the
    engine is in none, records that on the node itself (the label
    ``seashard.lab.made-swarm``: it goes away with the swarm, and any checkout
    or process sees it), and `down` leaves only a swarm it made, once no lab
    stack is left on it.
  * ``docker stack rm`` returns before the services' containers and the
    stack's networks are gone; leaving a swarm (or the next deploy of the same
    stack) before then fails or leaks, so `stack_rm` waits for them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from .plan import HELPER_LABEL
from .runtime import Engine, EngineError, Result, run_host

STACK_LABEL = "com.docker.stack.namespace"
SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
TASK_NAME_LABEL = "com.docker.swarm.task.name"
# docker's network namespaces on the host (overlays: 1-<network id[:10]>), and
# where the overlay capture helper sees them
HOST_NETNS_DIR = "/var/run/docker/netns"
HELPER_NETNS_DIR = "/run/docker-netns"
# on the node of a swarm the lab made: `down` may leave it
MADE_LABEL = "seashard.lab.made-swarm"
# ... and remove the bridge `swarm init` made for the tasks' way out, if it made it
GWBRIDGE = "docker_gwbridge"
MADE_GWBRIDGE_LABEL = "seashard.lab.made-gwbridge"
# on every lab stack's network (deploy/swarm/lab-stack.yml): which stacks are the lab's
LAB_STACK_LABEL = "seashard.lab.stack"


def resolve_image(image: str) -> str:
    """`docker stack deploy --resolve-image`: "always" for an image in a registry
    (its first component is a host: has a dot or a port, or is localhost), "never"
    for a local one (seashard/lab:TAG), which no registry could resolve."""
    first, _, rest = image.partition("/")
    registry = bool(rest) and ("." in first or ":" in first or first == "localhost")
    return "always" if registry else "never"


@dataclass(frozen=True)
class Task:
    """One running task of a stack, as the manager reports it (any node)."""

    service: str  # the stack's service name, e.g. "client"
    slot: int | None  # replicated services: 1..N
    node: str  # hostname of the node it runs on
    state: str  # running, pending, failed, ...
    error: str  # why it is not running, when it is not
    addresses: tuple[str, ...]  # its addresses on the stack's networks ("10.231.0.5/24")


class Swarm:
    """The engine's swarm: state, init/leave, node labels, stacks, tasks."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or Engine()

    @property
    def client(self) -> docker.DockerClient:
        return self.engine.client

    # ------------------------------------------------------------ the swarm

    def state(self) -> str:
        """ "inactive", "active", "pending", "error" or "locked" (the local node's)."""
        return str(self.client.info().get("Swarm", {}).get("LocalNodeState", "inactive"))

    def is_manager(self) -> bool:
        return bool(self.client.info().get("Swarm", {}).get("ControlAvailable"))

    def node_id(self) -> str:
        return str(self.client.info()["Swarm"]["NodeID"])

    def init(self, advertise_addr: str = "127.0.0.1") -> str:
        """A one-node swarm on this engine, recorded as the lab's; returns the node id.

        127.0.0.1: the swarm's control and data traffic stay on this machine
        (a node that is to join later needs a routable address instead)."""
        had_gwbridge = any(n.name == GWBRIDGE for n in self.client.networks.list(names=[GWBRIDGE]))
        try:
            self.client.swarm.init(advertise_addr=advertise_addr, listen_addr="127.0.0.1:2377")
        except docker.errors.APIError as exc:
            raise EngineError(f"docker swarm init failed: {exc.explanation or exc}") from None
        node = self.node_id()
        self.label_node(node, {MADE_LABEL: "1", MADE_GWBRIDGE_LABEL: "0" if had_gwbridge else "1"})
        return node

    def made_by_lab(self) -> bool:
        if self.state() != "active" or not self.is_manager():
            return False
        node = self.client.nodes.get(self.node_id())
        return node.attrs["Spec"].get("Labels", {}).get(MADE_LABEL) == "1"

    def leave(self) -> None:
        """Leave the swarm (a swarm of one: it is gone); and remove docker_gwbridge
        if the lab's init made it and nothing uses it any more."""
        node = self.client.nodes.get(self.node_id())
        made_gwbridge = node.attrs["Spec"].get("Labels", {}).get(MADE_GWBRIDGE_LABEL) == "1"
        try:
            self.client.swarm.leave(force=True)
        except docker.errors.APIError as exc:
            raise EngineError(f"docker swarm leave failed: {exc.explanation or exc}") from None
        if made_gwbridge:
            for net in self.client.networks.list(names=[GWBRIDGE]):
                net.reload()
                if net.name == GWBRIDGE and not net.attrs.get("Containers"):
                    net.remove()

    # ------------------------------------------------------------ nodes

    def nodes(self) -> list[dict[str, Any]]:
        """Each node: id, hostname, address, role, state, availability, labels."""
        out = []
        for node in self.client.nodes.list():
            a = node.attrs
            out.append(
                {
                    "id": node.id,
                    "hostname": a["Description"]["Hostname"],
                    "address": a["Status"].get("Addr", ""),
                    "role": a["Spec"].get("Role", ""),
                    "state": a["Status"].get("State", ""),
                    "availability": a["Spec"].get("Availability", ""),
                    "labels": dict(a["Spec"].get("Labels") or {}),
                }
            )
        return out

    def label_node(self, node_id: str, labels: Mapping[str, str]) -> None:
        node = self.client.nodes.get(node_id)
        spec = dict(node.attrs["Spec"])
        spec["Labels"] = dict(spec.get("Labels") or {}) | dict(labels)
        node.update(spec)

    def nodes_labelled(self, label: str, value: str = "true") -> list[str]:
        """Hostnames of the active, ready nodes with ``label=value``."""
        return [
            n["hostname"]
            for n in self.nodes()
            if n["labels"].get(label) == value
            and n["state"] == "ready"
            and n["availability"] == "active"
        ]

    # ------------------------------------------------------------ stacks

    def stack_deploy(self, stack: str, compose_file: Path, env: Mapping[str, str]) -> Result:
        """``docker stack deploy`` (the CLI interpolates ``env`` into the file).

        ``--resolve-image never`` for an image with no registry in its name
        (a local build): the manager would otherwise ask a registry for its
        digest, which here cannot be reached, and one node has the image anyway.
        LAB_RESOLVE_IMAGE=always suits a multi-node swarm that pulls from a registry."""
        resolve = os.environ.get("LAB_RESOLVE_IMAGE") or resolve_image(env.get("LAB_IMAGE", ""))
        argv = ["docker", "stack", "deploy", "--resolve-image", resolve]
        argv += ["-c", str(compose_file), stack]
        return run_host(argv, env=dict(os.environ) | dict(env), timeout=120)

    def stack_rm(self, stack: str, timeout: float = 90.0) -> list[str]:
        """``docker stack rm``, then wait until its containers and networks are gone.
        Returns what was still there at ``timeout`` (nothing, normally)."""
        if self.state() == "active" and self.stack_services(stack):
            res = run_host(["docker", "stack", "rm", stack], timeout=60)
            if not res.ok:
                raise EngineError(f"docker stack rm {stack} failed:\n{res.stderr[-2000:]}")
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers(stack)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)

    def stack_services(self, stack: str) -> list[Any]:
        if self.state() != "active" or not self.is_manager():
            return []
        return self.client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})

    def lab_stacks(self) -> set[str]:
        """The lab's stacks on this swarm (their network carries LAB_STACK_LABEL)."""
        if self.state() != "active":
            return set()
        nets = self.client.networks.list(filters={"label": LAB_STACK_LABEL})
        return {(n.attrs.get("Labels") or {}).get(STACK_LABEL, n.name) for n in nets}

    def leftovers(self, stack: str) -> list[str]:
        left = [f"service {s.name}" for s in self.stack_services(stack)]
        left += [f"container {c.name}" for c in self.containers(stack)]
        left += [
            f"network {n.name}"
            for n in self.client.networks.list(filters={"label": f"{STACK_LABEL}={stack}"})
        ]
        return left

    def containers(self, stack: str, *, running: bool = False) -> list[Container]:
        """The stack's task containers on this node."""
        # ignore_removed: `stack rm` takes containers away while they are listed
        return self.client.containers.list(
            all=not running, filters={"label": f"{STACK_LABEL}={stack}"}, ignore_removed=True
        )

    def network(self, stack: str, name: str) -> Any:
        try:
            net = self.client.networks.get(f"{stack}_{name}")
        except docker.errors.NotFound:
            raise EngineError(f"stack '{stack}' has no network {name}") from None
        net.reload()
        return net

    def tasks(self, stack: str) -> list[Task]:
        """The current task of every slot of the stack's services, on any node."""
        hostnames = {n["id"]: n["hostname"] for n in self.nodes()}
        out = []
        for service in self.stack_services(stack):
            short = service.name.removeprefix(f"{stack}_")
            latest: dict[Any, dict[str, Any]] = {}
            for t in service.tasks():
                key = t.get("Slot") or t.get("NodeID")
                if key not in latest or t["Version"]["Index"] > latest[key]["Version"]["Index"]:
                    latest[key] = t
            for t in latest.values():
                status = t.get("Status", {})
                addresses = tuple(
                    a for att in t.get("NetworksAttachments", []) for a in att.get("Addresses", [])
                )
                out.append(
                    Task(
                        service=short,
                        slot=t.get("Slot"),
                        node=hostnames.get(t.get("NodeID", ""), t.get("NodeID", "?")),
                        state=str(status.get("State", "?")),
                        error=str(status.get("Err", "")),
                        addresses=addresses,
                    )
                )
        return sorted(out, key=lambda t: (t.service, t.slot or 0))

    # ------------------------------------------------------------ captures

    def overlay_netns(self, stack: str, name: str) -> str:
        """The network namespace of the stack's overlay on this node (its bridge br0
        and a veth per local task live there), as a path inside OverlayHelper."""
        net = self.network(stack, name)
        ns = f"1-{net.id[:10]}"
        if not os.path.exists(os.path.join(HOST_NETNS_DIR, ns)):
            raise EngineError(f"no namespace {ns} of {net.name} in {HOST_NETNS_DIR} on this node")
        return f"{HELPER_NETNS_DIR}/{ns}"

    def run_overlay_helper(self, project: str, image: str) -> Container:
        """An idle helper container that can enter the overlays' namespaces
        (``nsenter --net=...``): docker's netns directory read-only, CAP_SYS_ADMIN
        for setns, unconfined (the default seccomp and AppArmor profiles forbid
        setns); labelled with the project, as every capture helper."""
        try:
            return self.client.containers.run(
                image,
                ["infinity"],
                entrypoint=["sleep"],
                network_mode="none",
                cap_add=["SYS_ADMIN", "NET_ADMIN", "NET_RAW"],
                security_opt=["apparmor=unconfined", "seccomp=unconfined"],
                volumes={HOST_NETNS_DIR: {"bind": HELPER_NETNS_DIR, "mode": "ro"}},
                labels={HELPER_LABEL: project},
                detach=True,
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"overlay capture helper from {image} did not start: {exc}") from None

    # ------------------------------------------------------------ images

    @staticmethod
    def distribute_image(image: str, hosts: Sequence[str], timeout: float = 600.0) -> None:
        """``docker save IMAGE | docker -H HOST load`` for each docker host (e.g.
        ``ssh://root@node2``): the image on every node of a swarm without a registry."""
        for host in hosts:
            with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
                load = subprocess.run(
                    ["docker", "-H", host, "load", "-q"],
                    stdin=save.stdout,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                save.wait(timeout=timeout)
            if save.returncode != 0 or load.returncode != 0:
                raise EngineError(
                    f"docker save {image} | docker -H {host} load failed: {load.stderr.strip()}"
                )
