"""`scripts/lab up|down|status|test --swarm`: the verbs' swarm half.

Each verb in verbs/ takes ``--swarm`` (add_arguments here) and hands over to
the function of the same name below, so the swarm's options and messages
live in one place beside its deployment (swarm_deployment.py)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

from . import ROOT
from .deployment import build_image
from .runtime import Engine, EngineError, run_host
from .swarm import Task
from .swarm_deployment import STACK_FILE, SwarmDeployment, current, free_subnet
from .ui import say


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    what = {
        "up": "deploy the lab as a Docker Swarm stack (deploy/swarm/lab-stack.yml)",
        "down": "remove the swarm stack, and the swarm if the lab made it",
    }.get(verb, "on the lab deployed as a Docker Swarm stack (up --swarm)")
    p.add_argument("--swarm", action="store_true", help=what)
    if verb == "up":
        p.add_argument(
            "--clients",
            type=int,
            default=None,
            metavar="N",
            help="--swarm: client replicas (default 2, or LAB_CLIENTS)",
        )
        p.add_argument(
            "--image-to",
            action="append",
            default=[],
            metavar="DOCKER_HOST",
            help="--swarm: `docker save | docker -H DOCKER_HOST load` the lab image first "
            "(e.g. ssh://root@node2; repeat per node; for a swarm without a registry)",
        )


def up(args: argparse.Namespace) -> int:
    if args.clients is not None and args.clients < 1:
        raise EngineError(f"--clients {args.clients}: at least 1")
    deployment = current(clients=args.clients)
    if not getattr(args, "no_build", False) or not deployment.engine.image_exists(deployment.image):
        start = time.monotonic()
        say(f"building {deployment.image}")
        build_image(deployment.engine, deployment.image)
        say(f"built {deployment.image} in {time.monotonic() - start:.0f} s")
    for host in args.image_to:
        say(f"copying {deployment.image} to {host} (docker save | docker -H {host} load)")
        deployment.swarm.distribute_image(deployment.image, [host])
    say(f"swarm: {deployment.ensure_swarm()}")
    timeout = float(os.environ.get("LAB_HEALTH_TIMEOUT", "120"))
    say(
        f"deploying stack '{deployment.project}' ({STACK_FILE.relative_to(STACK_FILE.parents[2])}) "
        f"on overlay {deployment.subnet}, {deployment.clients} client(s)"
    )
    start = time.monotonic()
    states = deployment.up(wait=not args.no_wait, timeout=timeout)
    bad = {s: h for s, h in states.items() if h not in ("healthy", "none")}
    if states and not bad:
        say(f"every task running and healthy after {time.monotonic() - start:.0f} s")
    show(deployment)
    for service, health in bad.items():
        say(f"NOT HEALTHY: {service} ({health})")
    return 1 if bad else 0


def down(args: argparse.Namespace) -> int:
    del args
    deployment = current()
    if not deployment.engine.ok():
        say("no Docker engine answers: nothing to remove")
        return 0
    made = deployment.swarm.made_by_lab()
    say(f"removing stack '{deployment.project}'")
    left = deployment.down()
    if left:
        say(f"still there after the stack was removed: {', '.join(left)}")
    if made and deployment.swarm.state() == "inactive":
        say("left the one-node swarm the lab had made (docker swarm leave --force)")
    elif made:
        say(f"the lab's swarm stays: other lab stacks run on it ({deployment.swarm.lab_stacks()})")
    return 1 if left else 0


def show(deployment: SwarmDeployment) -> None:
    tasks = deployment.tasks()
    if not tasks:
        say(f"no stack '{deployment.project}' on this engine's swarm (scripts/lab up --swarm)")
        return
    print()
    print(f"stack '{deployment.project}': {deployment.network_summary()}")
    print(f"  mgmt overlay {deployment.mgmt_subnet}: admin endpoints, /metrics, Prometheus")
    print(f"{'SERVICE':<14} {'NODE':<16} {'STATE':<10} {'ADDRESS':<18} ENDPOINTS")
    order = {name: n for n, name in enumerate(deployment.expected())}
    named = sorted(((_name(t), t) for t in tasks), key=lambda nt: order.get(nt[0], len(order)))
    for name, t in named:
        address = ",".join(t.addresses) or "-"
        state = t.state + (f" ({t.error})" if t.error and t.state != "running" else "")
        print(f"{name:<14} {t.node:<16} {state:<10} {address:<18} {_endpoints(name)}")
    stack = deployment.project
    print(
        f"""
Watch it:
  docker service logs -f {stack}_client        every client's load generator, task by task
  docker service ps {stack}_native-server      where a task runs, and why it is not running
  scripts/lab capture --swarm lab 30          30 s of the whole lab (the overlay's bridge)
  scripts/lab scenario --swarm list           replay a situation (scenarios/*.toml) with a pcap
  docker exec $(docker ps -q -f name={stack}_posix-server) labctl restart [serve ARGS]
  scripts/lab down --swarm                    remove the stack (and a swarm the lab made)
  Prometheus                                  {_prometheus(deployment)}"""
    )


def _name(task: Task) -> str:
    return f"client-{task.slot}" if task.service == "client" else task.service


def _endpoints(service: str) -> str:
    if service == "posix-server":
        return "echo :1234 canned :1235 accept-logger :1236; admin :9100 on mgmt"
    if service == "native-server":
        return "the native stack on its lab address; admin :9100 on mgmt (the kernel's)"
    if service.startswith("client-"):
        return "load against posix-server, native-server (by name); /metrics :9200 :9201 on mgmt"
    if service == "prometheus":
        return "Prometheus :9090, scraping tasks.NAME on mgmt every 1 s"
    return "scapy, tcpdump" if service == "probe" else ""


def _prometheus(deployment: SwarmDeployment) -> str:
    """Prometheus' URL and how many of its targets are up, or why not."""
    from .prometheus import Prometheus

    try:
        url = deployment.prometheus_url()
    except EngineError as exc:
        return f"not reachable from here: {exc}"
    try:
        targets = Prometheus(url).targets()
    except Exception as exc:  # noqa: BLE001 - status says what it can
        return f"{url}/graph  (not answering: {exc})"
    up = sum(t.health == "up" for t in targets)
    return f"{url}/graph  ({up} of {len(targets)} targets up)"


def status(args: argparse.Namespace) -> int:
    del args
    show(current())
    return 0


# the suites that run on a swarm lab by default (scripts/lab test --swarm); not
# test_lab_smoke.py, which checks the compose lab's own plan (static addresses, br0)
SWARM_SUITES = (
    "test_behaviour.py",
    "test_affinity.py",
    "test_timewait.py",
    "test_shard0_only.py",
    "test_impairment.py",
    "test_packets.py",
    "test_scenarios.py",
    "test_observe.py",
    "test_failure_artifacts.py",
    "test_lab_top.py",
)


def test(args: argparse.Namespace) -> int:
    """pytest on a throw-away swarm lab: lab_tests' fixture with
    SEASHARD_LAB_DEPLOYMENT=swarm; by default the suites in SWARM_SUITES."""
    project = f"seashard-lab-swarm-{secrets.token_hex(3)}"
    # SWARM_SUITES, unless the arguments name some (as verbs/test.py)
    named = any(a.startswith("lab_tests") for a in args.words)
    suites = [] if named else [f"lab_tests/{suite}" for suite in SWARM_SUITES]
    pytest_args = [*suites, *args.words]
    say(f"running lab_tests on a swarm (test stack {project}): {' '.join(pytest_args)}")
    start = time.monotonic()
    env = dict(os.environ, SEASHARD_LAB_TEST_PROJECT=project, SEASHARD_LAB_DEPLOYMENT="swarm")
    try:
        res = run_host(
            [sys.executable, "-m", "pytest", *pytest_args],
            env=env,
            capture=False,
            timeout=3 * 3600,
            cwd=ROOT,
        )
    finally:
        # the fixture removes its stack; again here, if pytest itself was killed
        deployment = SwarmDeployment(project)
        if deployment.engine.ok():
            left = deployment.down()
            if left:
                say(f"test stack {project} was still there after its removal: {', '.join(left)}")
    took = time.monotonic() - start
    minutes, seconds = int(took // 60), took % 60
    say(f"lab_tests (swarm) finished with exit status {res.rc} in {minutes} min {seconds:.0f} s")
    return res.rc


def test_deployment(project: str) -> SwarmDeployment:
    """The swarm deployment lab_tests' fixture makes (SEASHARD_LAB_DEPLOYMENT=swarm):
    stack ``project`` on two free /24s of LAB_SWARM_POOL (10.231.0.0/16: the lab
    overlay and mgmt), LAB_CLIENTS (2) clients."""
    engine = Engine()
    clients = int(os.environ.get("LAB_CLIENTS") or 2)
    subnet = free_subnet(engine)
    mgmt = free_subnet(engine, exclude=[subnet])
    return SwarmDeployment(project, subnet=subnet, mgmt_subnet=mgmt, clients=clients, engine=engine)
