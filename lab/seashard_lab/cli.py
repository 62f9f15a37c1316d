"""`scripts/lab VERB ...` (``python -m seashard_lab VERB``): one thin command per verb.

scripts/lab (bash) has already made sure of the engine, compose and the base
image for the verbs that need them (engine, build, up, test); the verbs
themselves live in verbs/.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .plan import PlanError
from .runtime import EngineError
from .verbs import VERBS

PASS_ON = ("test", "logs")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/lab",
        description="Run the seashard lab: images, compose, logs, captures, scenarios, tests.",
        epilog="scripts/lab engine: make sure of a Docker engine and compose (bash); "
        "scripts/lab down --stop-engine: also stop a dockerd that scripts/lab started.",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        module = importlib.import_module(f".verbs.{verb}", __package__)
        doc = (module.__doc__ or "").strip()
        sp = sub.add_parser(verb, help=module.HELP, description=doc)
        module.add_arguments(sp)
        sp.set_defaults(module=module)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    argv = sys.argv[1:] if argv is None else argv
    # test and logs hand every word after the verb on (to pytest, to compose logs)
    if argv and argv[0] in PASS_ON and not {"-h", "--help"} & set(argv[1:2]):
        module = importlib.import_module(f".verbs.{argv[0]}", __package__)
        args = argparse.Namespace(verb=argv[0], module=module, words=argv[1:])
    else:
        args = p.parse_args(argv)
    if args.verb is None:
        p.print_help(sys.stderr)
        return 2
    try:
        return int(args.module.run(args) or 0)
    except (EngineError, PlanError) as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `scripts/lab scenario steps | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
