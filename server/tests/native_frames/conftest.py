"""Frame-level tests of the native TCP path: scapy frames in, a virtual clock, frames out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from frames_helpers import Bench  # pytest puts this __init__-less folder on the path


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench()
    try:
        yield b
    finally:
        b.close()
