"""Start `seashard serve` as a real process for integration tests, and always stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_DIR = Path(__file__).resolve().parents[1]
READY = re.compile(r"shard pids ([\d,]+)")


def seashard_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "seashard.cli", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SERVER_DIR) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONUNBUFFERED"] = "1"
    return e


def free_ports(n: int) -> list[int]:
    """n distinct ports that are free now (bound to 0, then released)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Server:
    proc: subprocess.Popen[str]
    ports: dict[str, int]
    admin_port: int | None
    pids: list[int] = field(default_factory=list)
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)

    def _pump(self) -> None:
        assert self.proc.stdout and self.proc.stderr
        threading.Thread(
            target=_drain, args=(self.proc.stdout, self.stdout_lines), daemon=True
        ).start()
        threading.Thread(
            target=_drain, args=(self.proc.stderr, self.stderr_lines), daemon=True
        ).start()

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stderr_lines):
                if m := READY.search(line):
                    self.pids = [int(p) for p in m.group(1).split(",")]
                    return
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the pumps catch the last lines
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.stderr()}")
            time.sleep(0.02)
        raise TimeoutError(f"server not ready in {timeout}s: {self.stderr()}")

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    def wait_for_output(self, needle: str, stream: str = "stderr", timeout: float = 5.0) -> bool:
        lines = self.stderr_lines if stream == "stderr" else self.stdout_lines
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in list(lines)):
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in self.pids:  # never leave a shard behind, even if the supervisor failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.proc.returncode


def _drain(stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
    for line in stream:
        lines.append(line.rstrip("\n"))


def start(
    *args: str, services: tuple[str, ...] = (), admin: bool = True, prefix: tuple[str, ...] = ()
) -> Server:
    """Start a server on fresh ports; ``args`` are extra `seashard serve` options.

    ``prefix`` wraps the command (e.g. ``ip netns exec NS``)."""
    echo, canned, logger, admin_port = free_ports(4)
    ports = {"echo": echo, "canned": canned, "accept-logger": logger}
    cmd = seashard_cmd(
        "serve",
        *services,
        "--address",
        "127.0.0.1",
        "--echo-port",
        str(echo),
        "--canned-port",
        str(canned),
        "--accept-logger-port",
        str(logger),
        *args,
    )
    if admin:
        cmd += ["--admin-port", str(admin_port), "--admin-address", "127.0.0.1"]
    proc = subprocess.Popen(
        [*prefix, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    server = Server(proc, ports, admin_port if admin else None)
    server._pump()
    return server


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        seashard_cmd(*args), capture_output=True, text=True, env=env(), timeout=timeout
    )
