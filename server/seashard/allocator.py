"""glibc's allocator, set for a shard: freed buffers stay in the process for the next ones.

By default glibc hands memory back as soon as the top of the heap is 128 KiB free, and
serves blocks from 128 KiB up with a fresh mapping each. A shard that echoes 64 KB
segments frees and takes such blocks all the time, so each new buffer's pages faulted
in again: a tenth of a native shard's CPU under a bulk echo (the page faults of the
copy that keeps a received segment, the munmap when its ACK frees it). Seastar's own
allocator never gives memory back; this keeps up to ``TRIM_THRESHOLD`` of it.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 16 * 1024 * 1024  # free heap kept at its top before any is handed back
MMAP_THRESHOLD = 1024 * 1024  # blocks below this come from the heap, not a mapping each


def keep_freed_memory() -> bool:
    """Set both thresholds; False where the C library has no ``mallopt`` (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
