"""logs: compose logs [SERVICE] [compose logs options, e.g. -f, --tail 20]."""

from __future__ import annotations

import argparse

from ..deployment import current

HELP = "compose logs (e.g. `scripts/lab logs posix-server -f`)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", nargs=argparse.REMAINDER, help="[SERVICE] [compose logs options]")


def run(args: argparse.Namespace) -> int:
    # the service first, as `scripts/lab logs posix-server -f` has it; compose wants it last
    services = [w for w in args.words[:1] if not w.startswith("-")]
    options = args.words[len(services) :]
    res = current().compose_run("logs", *options, *services, capture=False, timeout=24 * 3600)
    return res.rc
