"""Frame-level tests of the native TCP path: scapy frames in, a virtual clock, frames out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
_SERVER = str(Path(__file__).resolve().parents[2])
for _path in (_SERVER, _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from frames_helpers import Bench  # noqa: E402


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench()
    try:
        yield b
    finally:
        b.close()
