"""Handles on a running lab for the lab tests: `Lab` (containers, IPs,
testinfra hosts, labctl, admin URLs, captures) and `Capture` (tcpdump in a
service's network namespace).  The `lab` fixture in conftest.py makes one."""

from __future__ import annotations

import io
import ipaddress
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import testinfra
from labops import (
    ADMIN_PORT,
    HELPER_LABEL,
    NATIVE_STACK_HOST_NUMBER,
    PORTS,
    PROJECT_LABEL,
    SERVERS,
    SERVICE_LABEL,
    SERVICES,
    CaptureHelper,
    LabOps,
)

__all__ = [
    "ADMIN_PORT",
    "HELPER_LABEL",
    "PORTS",
    "PROJECT_LABEL",
    "SERVERS",
    "SERVICES",
    "Capture",
    "Lab",
]

# host numbers inside the lab's /24 (scripts/lablib/common.sh uses the same)
HOST_NUMBERS = {
    "posix-server": 10,
    "native-server": 20,
    "client-1": 31,
    "client-2": 32,
    "probe": 40,
}


# ---------------------------------------------------------------- captures


class Capture:
    """tcpdump in a throw-away container that joins a service's network namespace.

    ``stop()`` returns the pcap bytes (also kept in ``.pcap``); ``save(path)``
    writes them.  Open them with scapy's ``rdpcap(io.BytesIO(data))``, tshark
    or Wireshark.
    """

    def __init__(self, lab: Lab, service: str, iface: str = "eth0", bpf: str | None = None):
        self.lab, self.service, self.iface, self.bpf = lab, service, iface, bpf
        self.pcap: bytes | None = None
        cmd = ["tcpdump", "-i", iface, "--immediate-mode", "-U", "-s", "0", "-Z", "root"]
        cmd += ["-w", "/tmp/capture.pcap"]
        if bpf:
            cmd.append(bpf)
        self.container = lab.client.containers.run(
            lab.image,
            cmd,
            entrypoint=[],
            network_mode=f"container:{lab.containers[service].id}",
            cap_add=["NET_RAW", "NET_ADMIN"],
            labels={HELPER_LABEL: lab.project},
            detach=True,
        )
        # tcpdump is listening once it says so on stderr
        deadline = time.monotonic() + 10
        while b"listening on" not in self.container.logs(stdout=False, stderr=True):
            self.container.reload()
            if self.container.status != "running" or time.monotonic() > deadline:
                logs = self.container.logs().decode(errors="replace")
                self.container.remove(force=True)
                raise RuntimeError(f"tcpdump on {service}:{iface} did not start: {logs}")
            time.sleep(0.05)
        lab._captures.append(self)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.iface}"

    def stop(self) -> bytes:
        if self.pcap is not None:
            return self.pcap
        try:
            self.container.kill(signal="SIGINT")  # tcpdump flushes and exits
            self.container.wait(timeout=10)
            stream, _ = self.container.get_archive("/tmp/capture.pcap")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile(tar.getmembers()[0])
                self.pcap = member.read() if member else b""
        finally:
            self.container.remove(force=True)
        return self.pcap

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.stop())
        return path

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- the lab handle


@dataclass
class Lab:
    project: str
    subnet: ipaddress.IPv4Network
    client: docker.DockerClient
    image: str
    containers: dict = field(default_factory=dict)  # service -> docker Container
    ips: dict = field(default_factory=dict)  # service -> lab IP (the kernel's)
    hosts: dict = field(default_factory=dict)  # service -> testinfra host
    _captures: list = field(default_factory=list)
    _bridge_capture: CaptureHelper | None = None

    @property
    def ops(self) -> LabOps:
        """The docker-CLI operations shared with `scripts/lab scenario` (scripts/lablib)."""
        if not hasattr(self, "_ops"):
            self._ops = LabOps(self.project)
        return self._ops

    def bridge_capture(self) -> CaptureHelper:
        """One helper container for captures of the whole lab network (its host bridge)."""
        if self._bridge_capture is None:
            self._bridge_capture = CaptureHelper(self.ops)
        return self._bridge_capture

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def native_stack_ip(self) -> str:
        """The native stack's own address (native-server's kernel has ips['native-server'])."""
        return str(self.subnet.network_address + NATIVE_STACK_HOST_NUMBER)

    def service_ip(self, server: str) -> str:
        """Where a server's services answer: the native stack's address for native-server."""
        return self.native_stack_ip if server == "native-server" else self.ips[server]

    def admin_url(self, server: str, path: str = "/metrics") -> str:
        return f"http://{self.ips[server]}:{ADMIN_PORT}{path}"

    def refresh(self) -> None:
        for service in SERVICES:
            found = self.client.containers.list(
                all=True,
                filters={
                    "label": [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]
                },
            )
            if not found:
                continue
            container = found[0]
            self.containers[service] = container
            nets = container.attrs["NetworkSettings"]["Networks"]
            self.ips[service] = next(iter(nets.values()))["IPAddress"] if nets else None
            self.hosts[service] = testinfra.get_host(f"docker://{container.name}")

    def run(self, service: str, command: str, *args):
        """Run a shell command in a service's container (testinfra CommandResult)."""
        return self.hosts[service].run(command, *args)

    def labctl(self, service: str, *args: str):
        """`labctl ARGS` in a service's container: start/stop/restart its program in place."""
        return self.hosts[service].run("labctl " + " ".join(["%s"] * len(args)), *args)

    def http_get_from_probe(self, url: str, timeout: float = 5.0):
        """GET url from inside the lab; returns testinfra's CommandResult (stdout = body)."""
        script = (
            "import sys, urllib.request\n"
            "r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))\n"
            "sys.stdout.write(r.read().decode())\n"
        )
        return self.hosts["probe"].run("python3 -c %s %s %s", script, url, str(timeout))

    def logs(self, service: str, since: float | None = None) -> str:
        kwargs = {"since": int(since)} if since else {}
        raw = self.containers[service].logs(stdout=True, stderr=True, timestamps=True, **kwargs)
        return raw.decode(errors="replace")

    def health(self, service: str) -> str:
        container = self.containers[service]
        container.reload()
        state = container.attrs["State"]
        return (
            state.get("Health", {}).get("Status", "none")
            if state["Status"] == "running"
            else state["Status"]
        )

    def program_running(self, service: str) -> bool:
        return self.containers[service].exec_run(["labctl", "status"]).exit_code == 0

    def wait_healthy(self, timeout: float) -> dict:
        """Wait until every service with a healthcheck is healthy, or its program
        has exited (it will not get healthy then), or the timeout.  Returns the
        health of each service; does not fail -- the tests assert on it."""
        deadline = time.monotonic() + timeout
        while True:
            states = {s: self.health(s) for s in self.containers}
            pending = [s for s, h in states.items() if h == "starting" and self.program_running(s)]
            if not pending or time.monotonic() > deadline:
                return states
            time.sleep(1)

    def capture(self, service: str, iface: str = "eth0", bpf: str | None = None) -> Capture:
        """Start tcpdump in a service's namespace (see Capture).  Captures still
        running at the end of a test are stopped; a failed test keeps their pcaps
        under artifacts/<test>/."""
        return Capture(self, service, iface, bpf)
