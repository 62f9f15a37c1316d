"""scripts/profile_native's modes run every round trip to the end: the profiler that
the bulk numbers in the notes come from must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "profile_native"


@pytest.mark.parametrize(
    "args",
    [
        ["--conns", "2", "--rounds", "20"],
        ["--batching", "--virtual-clock", "--conns", "2", "--rounds", "20"],
        ["--offloads", "--batching", "--size", "262144", "--conns", "2", "--rounds", "3"],
        ["--offloads", "--batching", "--virtual-clock", "--size", "262144", "--conns", "2",
         "--rounds", "3"],
    ],
    ids=["asyncio", "virtual", "offloads", "offloads-virtual"],
)  # fmt: skip
def test_every_mode_completes_its_round_trips(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--no-profile"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rounds, conns = int(args[args.index("--rounds") + 1]), int(args[args.index("--conns") + 1])
    assert out.stdout.startswith(f"{rounds * conns} round trips of "), out.stdout
