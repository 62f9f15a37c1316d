"""argparse ``type=`` functions shared by every command line: one message style for bad values."""

from __future__ import annotations

import argparse
import ipaddress


def _number(text: str, what: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: not {noun}") from None


def port(text: str) -> int:
    value = int(_number(text, "port", int))
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: must be 1..65535")
    return value


def positive(text: str) -> int:
    """A count of at least one (shards, connections, queues)."""
    value = int(_number(text, "count", int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value}: must be at least 1")
    return value


def count(text: str) -> int:
    """A count that may be zero (a limit of none, no retries)."""
    value = int(_number(text, "count", int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid count {value}: must not be negative")
    return value


def seconds(text: str) -> float:
    """A duration that may be zero."""
    value = float(_number(text, "duration", float))
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must not be negative")
    return value


def positive_seconds(text: str) -> float:
    value = float(_number(text, "duration", float))
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return value


def ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid IPv4 address {text!r}") from None
