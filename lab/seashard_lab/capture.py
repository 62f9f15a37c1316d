"""Packet capture: tcpdump in a helper container, the one way the lab captures.

The helper joins a service's network namespace (``container:ID``), or the
host's, to capture the lab's host bridge -- every frame between lab
containers.  It needs nothing of the target (works while the target's program
is down) and no tcpdump on the host.  One helper runs many captures, one
after another or side by side: ``start(name)`` / ``stop(name)``.  Helpers
carry the project's HELPER_LABEL, so `scripts/lab down` removes them.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

from .deployment import Deployment
from .runtime import EngineError


class CaptureHelper:
    def __init__(self, deployment: Deployment, service: str | None = None) -> None:
        """In ``service``'s network namespace; with None, the host's (for the lab bridge)."""
        self.deployment = deployment
        engine = deployment.engine
        if service is None:
            network_mode, self.where = "host", "lab"
            self.default_iface = deployment.bridge()
        else:
            network_mode = f"container:{deployment.container(service).id}"
            self.where, self.default_iface = service, "eth0"
        image = deployment.container(service or "probe").image.tags or [deployment.image]
        self.container = engine.run_helper(
            deployment.project,
            image[0],
            ["infinity"],
            network_mode=network_mode,
            entrypoint=["sleep"],
        )

    def _sh(self, command: str, timeout: float = 30.0):  # noqa: ANN202 - runtime.Result
        return self.deployment.engine.exec(self.container, ["sh", "-c", command], timeout=timeout)

    def start(self, name: str, iface: str | None = None, bpf: str = "") -> None:
        iface = iface or self.default_iface
        pcap = f"/tmp/{name}.pcap"
        # -U: every packet is flushed, so the file is a valid pcap even if cut short.
        # -B: a 32 MiB ring, not libpcap's 2 MiB: whole frames (-s 0) on a bridge carry
        # 64 KB GSO frames, and with the lab's load on two CPUs a 2 MiB ring overflowed
        # while tcpdump waited for a CPU (a tenth of a test's SYNs went missing).
        cmd = (
            f"tcpdump -i {shlex.quote(iface)} --immediate-mode -U -s 0 -B 32768 -Z root "
            f"-w {pcap} {bpf} > /tmp/{name}.log 2>&1 & echo $! > /tmp/{name}.pid"
        )
        self._sh(cmd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = self._sh(f"cat /tmp/{name}.log 2>/dev/null").stdout
            if "listening on" in log:
                return
            if "tcpdump:" in log and "listening" not in log:
                break
            time.sleep(0.05)
        raise EngineError(f"tcpdump on {self.where}:{iface} did not start: {log.strip()}")

    def stop(self, name: str, dest: Path | None = None) -> bytes:
        """Stop capture ``name``: its pcap (also written to ``dest``, if given)."""
        self._sh(
            # TERM, not INT: a background job of `sh -c` ignores SIGINT; tcpdump
            # flushes and exits on either (the helper's PID 1, sleep, reaps
            # nobody: an exited tcpdump stays a zombie, hence the State check)
            f"p=$(cat /tmp/{name}.pid); kill -TERM $p 2>/dev/null; "
            "for i in $(seq 50); do grep -qs '^State:[[:space:]]*[RSD]' /proc/$p/status || break; "
            "sleep 0.1; done"
        )
        try:
            data = self.deployment.engine.get_file(self.container, f"/tmp/{name}.pcap")
        except Exception as exc:  # noqa: BLE001 - the engine's errors vary by version
            raise EngineError(f"capture {name} on {self.where}: no pcap ({exc})") from None
        finally:
            self._sh(f"rm -f /tmp/{name}.pcap /tmp/{name}.pid /tmp/{name}.log")
        if dest is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        return data

    @contextlib.contextmanager
    def capturing(self, name: str, dest: Path | None = None, **kw: str) -> Iterator[None]:
        self.start(name, **kw)
        try:
            yield
        finally:
            self.stop(name, dest)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)


class Capture:
    """One capture in one service's namespace (or on the lab bridge): ``stop()`` -> pcap bytes."""

    def __init__(
        self,
        deployment: Deployment,
        service: str | None,
        iface: str | None = None,
        bpf: str = "",
    ) -> None:
        self.service, self.pcap = service or "lab", None
        self.helper = CaptureHelper(deployment, service)
        self.iface = iface or self.helper.default_iface
        try:
            self.helper.start("capture", self.iface, bpf)
        except BaseException:
            self.helper.close()
            raise

    @property
    def name(self) -> str:
        return f"{self.service}-{self.iface}"

    def stop(self) -> bytes:
        if self.pcap is None:
            try:
                self.pcap = self.helper.stop("capture")
            finally:
                self.helper.close()
        return self.pcap

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.stop())
        return path

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
