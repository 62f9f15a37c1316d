"""The lab's address plan and service ports: the one source.

Every address derives from one /24 (``LAB_SUBNET``) unless given one by one
(the same environment variables docker-compose.yml reads, with the same
defaults; ``lab/tests/test_plan.py`` checks that the two agree).  `env()` is
what the compose invocation gets, so a plain `docker compose up` and
`scripts/lab up` describe the same lab.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_SUBNET = "172.28.0.0/24"
DEFAULT_PROJECT = "seashard-lab"
DEFAULT_IMAGE = "seashard/lab:latest"
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
DEFAULT_BRIDGE = "sslab0"

SERVICES = ("posix-server", "native-server", "client-1", "client-2", "probe")
SERVERS = ("posix-server", "native-server")
CLIENTS = ("client-1", "client-2")
STACK_OF = {"posix-server": "posix", "native-server": "native"}
SERVER_OF = {stack: server for server, stack in STACK_OF.items()}

# host numbers inside the /24, and the variable that overrides each address
HOST_NUMBERS = {
    "posix-server": 10,
    "native-server": 20,  # the native container's kernel (admin endpoint, on br0)
    "native-stack": 21,  # the native stack's own address
    "client-1": 31,
    "client-2": 32,
    "probe": 40,
}
ADDRESS_VARS = {
    "posix-server": "POSIX_SERVER_IP",
    "native-server": "NATIVE_SERVER_IP",
    "native-stack": "NATIVE_STACK_IP",
    "client-1": "CLIENT1_IP",
    "client-2": "CLIENT2_IP",
    "probe": "PROBE_IP",
}

# service ports (seashard serve's defaults) and the lab's own
PORTS = {"echo": 1234, "canned": 1235, "accept-logger": 1236}
ADMIN_PORT = 9100
LOAD_METRICS_PORT = 9200

# Cross-helper contracts, each in one place (docker-compose.yml's defaults agree):
# the servers' admin endpoint must answer from the rest of the lab ...
SERVE_ADMIN_ARGS = f"--admin-port {ADMIN_PORT} --admin-address 0.0.0.0"
# ... and the clients' load generators serve Prometheus text.  `seashard load
# --metrics-port` arrives with issue 10's load generator: until that is merged
# this stays empty (flip it to f"--metrics-port {LOAD_METRICS_PORT}" at merge).
LOAD_METRICS_ARGS = ""
LOAD_ARGS = "--mode mixed --connections 2 --rate 5 --duration 0 -c 1 --report-interval 10"

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# helper containers (captures) carry this label; `scripts/lab down` removes them
HELPER_LABEL = "seashard.lab.project"
ADDRESS_IN_USE = "bind: Address already in use"


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class AddressPlan:
    subnet: ipaddress.IPv4Network
    gateway: str
    netmask: str
    ip_range: str
    bridge: str
    addresses: Mapping[str, str]  # posix-server, native-server, native-stack, client-N, probe

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AddressPlan:
        """The plan the environment describes (LAB_SUBNET, then each address on its own)."""
        env = os.environ if env is None else env
        try:
            subnet = ipaddress.IPv4Network(env.get("LAB_SUBNET") or DEFAULT_SUBNET)
        except ValueError as exc:
            raise PlanError(f"LAB_SUBNET: {exc}") from None
        if subnet.prefixlen != 24 and not env.get("LAB_GATEWAY"):
            raise PlanError(
                f"LAB_SUBNET={subnet} is not a /24: set LAB_GATEWAY, LAB_IP_RANGE, "
                "LAB_NETMASK and the *_IP variables too"
            )
        base = subnet.network_address
        addresses = {
            name: env.get(ADDRESS_VARS[name]) or str(base + number)
            for name, number in HOST_NUMBERS.items()
        }
        return cls(
            subnet=subnet,
            gateway=env.get("LAB_GATEWAY") or str(base + 1),
            netmask=env.get("LAB_NETMASK") or str(subnet.netmask),
            # docker's own dynamic addresses stay above .127, clear of ours
            ip_range=env.get("LAB_IP_RANGE") or f"{base + 128}/25",
            bridge=env.get("LAB_BRIDGE") or DEFAULT_BRIDGE,
            addresses=addresses,
        )

    def ip(self, name: str) -> str:
        return self.addresses[name]

    def service_ip(self, server: str) -> str:
        """Where a server's services answer: the native stack's own address for native-server."""
        return self.addresses["native-stack" if server == "native-server" else server]

    def admin_url(self, server: str, path: str = "/metrics") -> str:
        return f"http://{self.addresses[server]}:{ADMIN_PORT}{path}"

    def env(self) -> dict[str, str]:
        """The variables docker-compose.yml reads, for this plan."""
        out = {
            "LAB_SUBNET": str(self.subnet),
            "LAB_GATEWAY": self.gateway,
            "LAB_NETMASK": self.netmask,
            "LAB_IP_RANGE": self.ip_range,
            "LAB_BRIDGE": self.bridge,
            "LAB_SERVE_ADMIN_ARGS": SERVE_ADMIN_ARGS,
            "LAB_LOAD_METRICS_ARGS": LOAD_METRICS_ARGS,
        }
        out |= {ADDRESS_VARS[name]: ip for name, ip in self.addresses.items()}
        return out


def compose_defaults() -> dict[str, str]:
    """What docker-compose.yml must default to (the plan of DEFAULT_SUBNET, and the rest)."""
    return AddressPlan.from_env({}).env() | {
        "LAB_IMAGE": DEFAULT_IMAGE,
        "BASE_IMAGE": DEFAULT_BASE_IMAGE,
        "LOAD_ARGS": LOAD_ARGS,
        "LAB_CLIENTS_AUTOSTART": "1",
        "NATIVE_DEVICE": "tap",
        "LAB_READY_PATTERN": "",
    }
