"""A shard keeps the memory it frees: the next buffers do not fault their pages in again."""

from __future__ import annotations

import json
import subprocess
import sys

# Take and free eight 64 KB buffers, 200 times over (what a bulk echo does with
# segments), and count the page faults that costs.
CHURN = """
import json, resource, sys
from seashard import allocator
if sys.argv[1] == "kept":
    assert allocator.keep_freed_memory()
def cycle():
    bufs = [bytes(bytearray(65536)) for _ in range(8)]
    del bufs
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    cycle()
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(json.loads(out.stdout))


def test_freed_buffers_are_reused_without_page_faults() -> None:
    default, kept = _faults("default"), _faults("kept")
    assert default > 200 * 8  # glibc's default: memory handed back, faulted in again
    assert kept < 100, (default, kept)
