"""test [PYTEST ARGS]: the lab suites (lab_tests) on a throw-away lab of their
own (project seashard-lab-test-<hex> on its own /24), always removed: by the
session fixture, and here again if pytest itself was killed."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

from .. import ROOT, swarm_verbs
from ..runtime import Compose, Engine, run_host
from ..ui import say

HELP = "pytest lab_tests on a throw-away lab of their own"


def add_arguments(p: argparse.ArgumentParser) -> None:
    swarm_verbs.add_arguments(p, "test")
    p.add_argument("words", nargs=argparse.REMAINDER, help="pytest arguments")


def run(args: argparse.Namespace) -> int:
    # `test --swarm [WORDS]`: the words after the verb come here unparsed (cli.PASS_ON)
    if args.words[:1] == ["--swarm"]:
        args.words = args.words[1:]
        return swarm_verbs.test(args)
    project = f"seashard-lab-test-{secrets.token_hex(3)}"
    compose = Compose.detect()
    say(f"running lab_tests with {sys.executable} on compose {compose} (test lab {project})")
    start = time.monotonic()
    env = dict(os.environ, SEASHARD_LAB_TEST_PROJECT=project)
    # every suite, unless the arguments name some (e.g. lab_tests/test_lab_smoke.py)
    named = any(a.startswith("lab_tests") for a in args.words)
    try:
        res = run_host(
            [sys.executable, "-m", "pytest", *([] if named else ["lab_tests"]), *args.words],
            env=env,
            capture=False,
            timeout=3 * 3600,
            cwd=ROOT,
        )
    finally:
        left = Engine().force_remove(project)
        if left:
            say(f"test lab {project} was still there: removed {', '.join(left)}")
    took = time.monotonic() - start
    say(f"lab_tests finished with exit status {res.rc} in {int(took // 60)} min {took % 60:.0f} s")
    return res.rc
