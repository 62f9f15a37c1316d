"""The script model: what the parser makes of a .pkt file and the executors play.

Times are in seconds. A script is a list of events in file order; each keeps
its line number so a report can quote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# packetdrill's IPv4 defaults (its --local_ip / --remote_ip), and its remote port.
LOCAL_IP = "192.168.0.1"
REMOTE_IP = "192.0.2.1"
REMOTE_PORT = 8080
DEFAULT_TOLERANCE = 0.004  # packetdrill's --tolerance_usecs=4000


class ScriptError(Exception):
    """A syntax error: reported as ``FILE:LINE: message`` with exit 2."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class Unsupported(Exception):
    """The script uses something outside the subset: reported, never passed or failed."""

    def __init__(self, feature: str, line: int = 0) -> None:
        super().__init__(feature)
        self.feature = feature
        self.line = line


@dataclass(frozen=True)
class Time:
    """When an event happens. kind: abs, rel, any. ``end`` is set for ranges
    (``a~b``) and for blocking syscalls (``a...b``); ``end_rel``: ``b`` had a ``+``."""

    kind: str
    value: float = 0.0
    end: float | None = None
    end_rel: bool = False
    blocking: bool = False  # the ``...`` form


@dataclass(frozen=True)
class TcpOpt:
    """One TCP option as written: kind in mss, sackOK, sack, TS, nop, wscale, eol."""

    kind: str
    value: Any = None  # mss: int; wscale: int; TS: (val, ecr); sack: ((a, b), ...)

    def __str__(self) -> str:
        if self.kind in ("mss", "wscale"):
            return f"{self.kind} {self.value}"
        if self.kind == "TS":
            return f"TS val {self.value[0]} ecr {self.value[1]}"
        if self.kind == "sack":
            return "sack " + " ".join(f"{a}:{b}" for a, b in self.value)
        return self.kind


@dataclass(frozen=True)
class TcpSpec:
    """A TCP packet line. seq/ack are the script's (relative) numbers."""

    direction: str  # "<" inbound (we inject), ">" outbound (the stack sends)
    flags: str  # packetdrill letters: S . F R P E W U
    seq: int
    end: int
    length: int
    ack: int | None
    win: int | None
    options: tuple[TcpOpt, ...] | None  # None: ``<...>`` (not compared) or none written
    any_options: bool = False

    def describe(self) -> str:
        text = f"{self.direction} {self.flags} {self.seq}:{self.end}({self.length})"
        if self.ack is not None:
            text += f" ack {self.ack}"
        if self.win is not None:
            text += f" win {self.win}"
        if self.any_options:
            text += " <...>"
        elif self.options:
            text += " <" + ",".join(str(o) for o in self.options) + ">"
        return text


@dataclass(frozen=True)
class Expr:
    """A syscall argument or result: int, str, ellipsis, list, struct, name, call, or."""

    kind: str
    value: Any = None


@dataclass(frozen=True)
class Syscall:
    name: str
    args: tuple[Expr, ...]
    ret: Expr
    errno: str | None = None


@dataclass(frozen=True)
class Command:
    text: str  # the shell command between backticks


@dataclass
class Event:
    line: int
    time: Time
    what: TcpSpec | Syscall | Command
    source: str = ""  # the script line, for reports


@dataclass
class Script:
    path: str
    events: list[Event] = field(default_factory=list)
    unsupported: Unsupported | None = None  # the first feature outside the subset
    options: dict[str, str] = field(default_factory=dict)  # header lines --name=value
