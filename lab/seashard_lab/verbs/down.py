"""down: compose down -v, and whatever of the lab is left (helpers, networks)."""

from __future__ import annotations

import argparse

from .. import swarm_verbs
from ..deployment import current
from ..ui import say

HELP = "remove the lab (containers, networks, capture helpers)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # --stop-engine is taken by scripts/lab (bash): only it starts and stops dockerd
    swarm_verbs.add_arguments(p, "down")


def run(args: argparse.Namespace) -> int:
    if args.swarm:
        return swarm_verbs.down(args)
    deployment = current()
    if not deployment.engine.ok():
        say("no Docker engine answers: nothing to remove")
        return 0
    say(f"removing lab '{deployment.project}'")
    forced = deployment.down()
    if forced:
        say(f"removed leftovers: {', '.join(forced)}")
    return 0
