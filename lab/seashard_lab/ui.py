"""How the lab talks to its user: progress on stderr, one-line errors."""

from __future__ import annotations

import sys
from typing import NoReturn


class Usage(Exception):
    """Bad usage: one line, exit 2."""


def say(text: str) -> None:
    print(f"lab: {text}", file=sys.stderr, flush=True)


def die(text: str, code: int = 1) -> NoReturn:
    print(f"lab: error: {text}", file=sys.stderr, flush=True)
    raise SystemExit(code)
