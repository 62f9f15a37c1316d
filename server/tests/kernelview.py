"""The kernel's own view of who owns which socket: `ss -tnp` and /proc."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_PID = re.compile(r"pid=(\d+)")


@dataclass(frozen=True)
class SockOwner:
    local: str
    remote: str
    pids: frozenset[int]


def _ss(*args: str) -> list[str]:
    """`ss -tnH ARGS` lines (no header)."""
    out = subprocess.run(["ss", "-tnH", *args], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def established_on_port(port: int) -> list[SockOwner]:
    """Established sockets whose local port is ``port``, with the pids holding them."""
    owners = []
    for line in _ss("-p", "state", "established", f"( sport = :{port} )"):
        fields = line.split()
        if len(fields) < 4:
            continue
        # State column is omitted when filtering by state: Recv-Q Send-Q Local Peer [users]
        local, remote = fields[2], fields[3]
        owners.append(SockOwner(local, remote, frozenset(int(p) for p in _PID.findall(line))))
    return owners


def time_wait_on_port(port: int) -> list[str]:
    return _ss("state", "time-wait", f"( sport = :{port} )")


def listening(port: int) -> bool:
    return bool(_ss("-l", f"( sport = :{port} )"))


def cpus_allowed(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise LookupError(pid)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
