"""Sequence-number arithmetic modulo 2**32 (RFC 9293 section 3.4).

Every comparison of sequence or acknowledgment numbers in this package goes
through these helpers: ``a < b`` on raw integers is wrong as soon as a
connection's sequence space wraps past 2**32 - 1.  Two numbers compare by the
sign of their difference taken in ``[-2**31, 2**31)``.
"""

from __future__ import annotations

from typing import Final

SEQ_MOD: Final = 1 << 32
SEQ_MASK: Final = SEQ_MOD - 1
_HALF: Final = 1 << 31

__all__ = [
    "SEQ_MASK",
    "SEQ_MOD",
    "seq_add",
    "seq_diff",
    "seq_ge",
    "seq_gt",
    "seq_in_window",
    "seq_le",
    "seq_lt",
    "seq_max",
    "seq_min",
]


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (``n`` may be negative)."""
    return (a + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` in ``[-2**31, 2**31)``."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MOD if d >= _HALF else d


def seq_lt(a: int, b: int) -> bool:
    return ((a - b) & SEQ_MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    d = (a - b) & SEQ_MASK
    return d == 0 or d >= _HALF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & SEQ_MASK) < _HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & SEQ_MASK) < _HALF


def seq_max(a: int, b: int) -> int:
    return b if seq_lt(a, b) else a


def seq_min(a: int, b: int) -> int:
    return a if seq_lt(a, b) else b


def seq_in_window(x: int, start: int, size: int) -> bool:
    """``start <= x < start + size`` in sequence space (false when ``size <= 0``)."""
    return 0 <= ((x - start) & SEQ_MASK) < size
