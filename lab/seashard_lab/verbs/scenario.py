"""scenario list | steps | FILE | NAME: run a scenario file (scenarios/NAME.toml) on the live lab.

A few lines of what happened, and artifacts/scenario-NAME-TIME/ with a pcap
of the lab network, the logs, admin snapshots and summary.txt.  A bad file:
`FILE:LINE: what is wrong`, exit 2, before anything in the lab changes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import ARTIFACTS, swarm_deployment, swarm_verbs
from ..deployment import current
from ..scenario import ScenarioError, find, listing, load
from ..scenario.library import describe_library
from ..scenario.run import run_scenario

HELP = "run a scenario file on the live lab (list: the built-in ones)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scenario", help="'list', 'steps' (the step library), a file, or a name in scenarios/"
    )
    p.add_argument(
        "--artifacts",
        type=Path,
        default=Path(os.environ.get("LAB_ARTIFACTS") or ARTIFACTS),
        help="where the scenario's folder goes (default artifacts/)",
    )
    p.add_argument("--check", action="store_true", help="only check the file, run nothing")
    swarm_verbs.add_arguments(p, "scenario")


def run(args: argparse.Namespace) -> int:
    if args.scenario in ("list", "ls"):
        for name, about in listing():
            print(f"{name:<24}  {about}")
        return 0
    if args.scenario == "steps":
        print(describe_library())
        return 0
    try:
        scenario = load(find(args.scenario))
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        print(f"{scenario.path}: ok ({len(scenario.steps)} steps)")
        return 0
    deployment = swarm_deployment.current() if args.swarm else current()
    if not deployment.running():
        print(
            f"scripts/lab scenario: lab '{deployment.project}' is not running "
            "(scripts/lab up first)",
            file=sys.stderr,
        )
        return 2
    return run_scenario(deployment, scenario, args.artifacts)
