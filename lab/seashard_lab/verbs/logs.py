"""logs: compose logs [SERVICE] [compose logs options, e.g. -f, --tail 20]."""

from __future__ import annotations

import argparse

from ..deployment import current

HELP = "compose logs (e.g. `scripts/lab logs posix-server -f`)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", nargs="?", help="one service (default: all)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="compose logs options")


def run(args: argparse.Namespace) -> int:
    words = [args.service] if args.service else []
    options = list(args.options)
    if args.service and args.service.startswith("-"):
        options, words = [args.service, *options], []
    res = current().compose_run("logs", *options, *words, capture=False, timeout=24 * 3600)
    return res.rc
