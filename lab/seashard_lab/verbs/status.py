"""status: what runs, where, the admin URLs, and how to watch it."""

from __future__ import annotations

import argparse

from .. import swarm_verbs
from ..deployment import ComposeDeployment, current
from ..plan import ADMIN_PORT, PORTS
from ..runtime import EngineError
from ..ui import say

HELP = "what is running, lab IPs, admin URLs, how to watch it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    swarm_verbs.add_arguments(p, "status")


def endpoints(deployment: ComposeDeployment, service: str, ip: str) -> str:
    plan = deployment.plan
    admin = f"admin http://{ip}:{ADMIN_PORT}/metrics  http://{ip}:{ADMIN_PORT}/connections"
    ports = " ".join(f"{name} :{port}" for name, port in PORTS.items())
    if service == "posix-server":
        return f"{admin}; {ports}"
    if service == "native-server":
        return f"{admin} (kernel on br0); native stack {plan.ip('native-stack')}: {ports}"
    if service.startswith("client-"):
        return (
            f"seashard load against {plan.ip('posix-server')} (posix) "
            f"and {plan.ip('native-stack')} (native)"
        )
    if service == "prometheus":
        return f"{plan.prometheus_url()}  (scrapes every 1 s; /targets, /graph)"
    return "scapy, tcpdump, ping, nc" if service == "probe" else ""


def show(deployment: ComposeDeployment) -> None:
    deployment.refresh()
    services = deployment.services()
    if not services:
        say(f"lab '{deployment.project}' is not running (scripts/lab up)")
        return
    print()
    try:
        print(f"lab '{deployment.project}': {deployment.network_summary()}")
    except EngineError as exc:
        print(f"lab '{deployment.project}': {exc}")
    print(f"{'SERVICE':<14} {'CONTAINER':<34} {'STATE':<18} {'LAB-IP':<13} ENDPOINTS")
    for service in services:
        c = deployment.container(service)
        state = c.status
        health = deployment.health(service)
        if health not in (state, "none"):
            state = f"{state}/{health}"
        ip = deployment.engine.ip(c) or "-"
        print(
            f"{service:<14} {c.name:<34} {state:<18} {ip:<13} {endpoints(deployment, service, ip)}"
        )
    posix = deployment.container("posix-server").name if "posix-server" in services else "<posix>"
    probe = deployment.container("probe").name if "probe" in services else "<probe>"
    print(
        f"""
Watch it:
  scripts/lab logs posix-server -f          program output (also: client-1, native-server, ...)
  scripts/lab capture native-server 30      30 s of eth0 traffic -> artifacts/captures/*.pcap
  scripts/lab capture native-server 30 -i tap0 'tcp port 1234'    what the native stack sees
  scripts/lab capture lab 30                the whole lab bridge ({deployment.plan.bridge})
  docker exec -it {probe} bash    scapy/tcpdump/ping from inside the lab
  docker exec {posix} labctl restart [serve ARGS]
                                            restart seashard in place (its TIME_WAIT sockets stay)
  scripts/lab scenario list                 replay a situation (scenarios/*.toml) with a pcap
  scripts/lab top                           live per-shard and per-client numbers, every second
  Prometheus                                {deployment.plan.prometheus_url()}/graph"""
    )


def run(args: argparse.Namespace) -> int:
    if args.swarm:
        return swarm_verbs.status(args)
    show(current())
    return 0
