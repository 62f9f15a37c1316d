"""up: build the image, compose up -d, wait for the healthchecks, say what runs."""

from __future__ import annotations

import argparse
import os
import time

from .. import swarm_verbs
from ..deployment import ComposeDeployment, build_image, current
from ..plan import SERVERS
from ..prometheus import QUERIES, graph_url
from ..ui import say
from . import status

HELP = "build + compose up -d + wait healthy + what runs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    swarm_verbs.add_arguments(p, "up")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the healthchecks")
    p.add_argument("--no-build", action="store_true", help="use the image as it is")


def bring_up(deployment: ComposeDeployment, *, build: bool, wait: bool) -> dict[str, str]:
    if build or not deployment.engine.image_exists(deployment.image):
        start = time.monotonic()
        say(f"building {deployment.image}")
        build_image(deployment.engine, deployment.image)
        say(f"built {deployment.image} in {time.monotonic() - start:.0f} s")
    say(
        f"starting lab '{deployment.project}' on {deployment.plan.subnet} ({deployment._compose()})"
    )
    timeout = float(os.environ.get("LAB_HEALTH_TIMEOUT", "120"))
    if wait:
        say(f"waiting for healthchecks (at most {timeout:.0f} s)")
    start = time.monotonic()
    states = deployment.up(wait=wait, timeout=timeout)
    if wait:
        bad = {s: h for s, h in states.items() if h not in ("healthy", "none")}
        if bad:
            return bad
        say(f"all services healthy after {time.monotonic() - start:.0f} s")
    return {}


def run(args: argparse.Namespace) -> int:
    if args.swarm:
        return swarm_verbs.up(args)
    deployment = current()
    bad = bring_up(deployment, build=not args.no_build, wait=not args.no_wait)
    status.show(deployment)
    expr, what = QUERIES["live"]
    print(
        f"\nIn Prometheus, {what}: paste\n  {expr}\ninto {deployment.plan.prometheus_url()}/graph,"
        f" or open\n  {graph_url(deployment.plan.prometheus_url(), expr)}"
        "\n(more queries: README, 'Prometheus in the lab')"
    )
    if not bad:
        return 0
    for service, health in bad.items():
        why = deployment.exec(service, ["labctl", "status"]).stdout.strip()
        say(f"NOT HEALTHY: {service} ({health}; {why})")
    for server in SERVERS:
        if server in bad:
            print(f"---- last lines of {server} ----")
            print("\n".join("  " + x for x in deployment.logs(server).splitlines()[-8:]))
    say("some services are not healthy; their logs: scripts/lab logs SERVICE")
    return 1
