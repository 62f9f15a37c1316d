"""What one does on a running lab, whatever deployed it.

`Lab` wraps a `Deployment` with the lab's operations: labctl (restart a
server in place), the admin pages (fetched from inside the lab, by the probe,
at the address the deployment names),
the checking clients and the scapy probe (incontainer/, copied into the
containers), impairment of a client's link, captures.  The CLI's scenarios
and the lab suites use the same object.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

from . import parse
from .capture import Capture, CaptureHelper
from .deployment import Deployment
from .metrics import Metrics
from .plan import ADMIN_PORT, CLIENTS, PORTS, SERVERS
from .runtime import EngineError, Result, Stream

SCRIPT_DIR = "/tmp/seashard-lab"
# which service each client mode of incontainer/traffic.py talks to
MODE_SERVICE = {
    "echo": "echo",
    "hold": "echo",
    "steer": "echo",
    "short": "echo",
    "canned": "canned",
    "accept": "accept-logger",
}


def with_port(args: Sequence[str], service: str) -> list[str]:
    """``args`` with ``--port`` of ``service`` (plan.PORTS) unless they name one."""
    return list(args) if "--port" in args else [*args, "--port", str(PORTS[service])]


SCRIPTS = ("traffic.py", "probe.py")


class LabError(RuntimeError):
    pass


class Lab:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.project = deployment.project
        self.plan = deployment.plan
        self.engine = deployment.engine
        self._ips: dict[str, str] = {}
        self._admin_ips: dict[str, str] = {}
        self._scripts_in: set[str] = set()
        self._bridge: CaptureHelper | None = None
        self.captures: list[Capture] = []
        # (client, on, off or None) of every impairment, wall clock: the plots'
        # "before" and "during"
        self.impairments: list[tuple[str, float, float | None]] = []

    # ------------------------------------------------------------ addresses

    @property
    def subnet(self):  # noqa: ANN201 - ipaddress.IPv4Network
        return self.plan.subnet

    @property
    def gateway(self) -> str:
        return self.plan.gateway

    @property
    def native_stack_ip(self) -> str:
        return self.plan.ip("native-stack")

    def ip(self, service: str) -> str:
        """The service's kernel address on the lab network (as the engine reports it)."""
        if service not in self._ips:
            self._ips[service] = self.deployment.ip_of(service)
        return self._ips[service]

    @property
    def ips(self) -> dict[str, str]:
        """Every service's lab address; a service off the lab network (the swarm
        stack's prometheus: mgmt only) has none."""
        out = {}
        for service in self.deployment.services():
            with contextlib.suppress(EngineError):
                out[service] = self.ip(service)
        return out

    def service_ip(self, server: str) -> str:
        """Where a server's services answer (the native stack's own address for native-server)."""
        return self.native_stack_ip if server == "native-server" else self.ip(server)

    def admin_url(self, server: str, path: str = "/metrics") -> str:
        """An admin page's URL, as the probe reaches it (the deployment says where)."""
        if server not in self._admin_ips:
            self._admin_ips[server] = self.deployment.admin_ip(server)
        return f"http://{self._admin_ips[server]}:{ADMIN_PORT}{path}"

    def prometheus_url(self) -> str:
        return self.deployment.prometheus_url()

    def prometheus_label(self, service: str) -> str:
        """The ``service`` label of the service's targets in the lab's Prometheus."""
        return self.deployment.prometheus_label(service)

    # ------------------------------------------------------------ commands

    def exec(self, service: str, argv: Sequence[str], *, timeout: float = 60.0) -> Result:
        return self.deployment.exec(service, argv, timeout=timeout)

    def sh(self, service: str, command: str, timeout: float = 60.0) -> Result:
        return self.exec(service, ["sh", "-c", command], timeout=timeout)

    def run(self, service: str, command: str, *args: str) -> Result:
        """A shell command; ``%s`` in ``command`` takes ``args``, shell-quoted."""
        return self.sh(service, command % tuple(shlex.quote(str(a)) for a in args))

    def labctl(self, service: str, *args: str, timeout: float = 60.0) -> Result:
        return self.exec(service, ["labctl", *args], timeout=timeout)

    def program_running(self, service: str) -> bool:
        return self.labctl(service, "status", timeout=20).ok

    def logs(self, service: str, since: float | None = None) -> str:
        return self.deployment.logs(service, since=since)

    def run_log(self, server: str) -> str:
        """stdout and stderr of the server program's current run (labctl logs)."""
        return self.labctl(server, "logs", "out").stdout + self.labctl(server, "logs", "err").stdout

    def health(self, service: str) -> str:
        return self.deployment.health(service)

    # ------------------------------------------------------------ admin pages

    def get(self, url: str, timeout: float = 5.0, tries: int = 3) -> str:
        """GET a page of the lab from inside it (the probe): no host route needed."""
        script = (
            "import sys, urllib.request\n"
            "r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))\n"
            "sys.stdout.write(r.read().decode())\n"
        )
        last = None
        for n in range(tries):  # a server that has just been restarted may need a moment
            if n:
                time.sleep(0.5)
            last = self.exec("probe", ["python3", "-c", script, url, str(timeout)], timeout=30)
            if last.ok:
                return last.stdout
        assert last is not None
        raise LabError(f"GET {url} failed: {last.stderr.strip()[-500:]}")

    def admin_get(self, server: str, path: str, timeout: float = 5.0, tries: int = 3) -> str:
        """An admin page, the same way on every deployment (each says where it is)."""
        return self.get(self.admin_url(server, path), timeout=timeout, tries=tries)

    def metrics(self, server: str) -> Metrics:
        return Metrics.parse(self.admin_get(server, "/metrics"))

    def connections(self, server: str) -> list[dict[str, Any]]:
        return json.loads(self.admin_get(server, "/connections"))

    def shards(self, server: str) -> list[dict[str, Any]]:
        return json.loads(self.admin_get(server, "/shards"))

    def snapshot(self, server: str) -> dict[str, str]:
        """Every admin page, as text, for an artifacts folder."""
        pages = {}
        for path in ("/metrics", "/connections", "/shards"):
            try:
                pages[path] = self.admin_get(server, path)
            except LabError as exc:
                pages[path] = f"unavailable: {exc}\n"
        return pages

    # ------------------------------------------------------------ server runs

    def default_args(self, server: str) -> list[str]:
        return self.labctl(server, "default-args").stdout.splitlines()

    def current_args(self, server: str) -> list[str]:
        return self.labctl(server, "args").stdout.splitlines()

    def serve_args(self, server: str, **changes: Any) -> list[str]:
        """The container's default `seashard serve` arguments, changed (parse.serve_args)."""
        return parse.serve_args(self.default_args(server), **changes)

    def restart(self, server: str, args: Sequence[str] | None = None) -> Result:
        """`labctl restart ARGS` (or --defaults): returns once ready or failed."""
        return self.labctl(server, "restart", *(args if args else ["--defaults"]), timeout=90)

    def restore(self, server: str) -> Result | None:
        """Back to the container's default arguments, running: no-op when already so."""
        if self.program_running(server) and self.current_args(server) == self.default_args(server):
            return None
        res = self.restart(server)
        if not res.ok:
            raise LabError(f"could not restore {server}:\n{res.describe()}")
        return res

    def pids_and_cpus(self, server: str) -> dict[int, dict[str, Any]]:
        """shard -> {pid, cpus (admin), allowed (the kernel's Cpus_allowed_list)}."""
        out: dict[int, dict[str, Any]] = {}
        for s in self.shards(server):
            status = self.exec(server, ["cat", f"/proc/{s['pid']}/status"]).stdout
            out[int(s["shard"])] = {
                "pid": int(s["pid"]),
                "cpus": list(s["cpus"]),
                "allowed": parse.cpus_allowed(status),
            }
        return out

    def shard_of_pid(self, server: str) -> dict[int, int]:
        return {int(s["pid"]): int(s["shard"]) for s in self.shards(server)}

    def posix_owners(self, local_port: int) -> dict[str, list[int]]:
        res = self.exec(
            "posix-server", ["ss", "-tnpH", "state", "established", f"( sport = :{local_port} )"]
        )
        return parse.ss_owners(res.stdout, local_port)

    def native_owners(
        self, local_port: int, rows: list[dict[str, Any]] | None = None
    ) -> dict[str, list[int]]:
        """/connections of the native server -> remote "ip:port" -> shards with a row for it."""
        owners: dict[str, list[int]] = {}
        for row in rows if rows is not None else self.connections("native-server"):
            if row.get("previous_run") or not row["local"].endswith(f":{local_port}"):
                continue
            owners.setdefault(row["remote"], []).append(int(row["shard"]))
        return owners

    def time_wait_remotes(self, server: str, port: int) -> set[str]:
        """Peers of the server's TIME_WAIT connections on ``port``: the kernel's
        (`ss`) for posix, the native stack's own table (admin) for native."""
        if server == "posix-server":
            out = self.exec(server, ["ss", "-tanH", "state", "time-wait", f"( sport = :{port} )"])
            return parse.ss_peers(out.stdout, port)
        return {
            row["remote"]
            for row in self.connections(server)
            if row["state"] == "TIME_WAIT" and row["local"].endswith(f":{port}")
        }

    # ------------------------------------------------------------ in-container scripts

    def _script(self, service: str, name: str) -> str:
        path = f"{SCRIPT_DIR}/{name}"
        key = f"{service}:{self.deployment.container(service).id}:{name}"
        if key not in self._scripts_in:
            data = resources.files("seashard_lab.incontainer").joinpath(name).read_bytes()
            self.exec(service, ["mkdir", "-p", SCRIPT_DIR])
            self.engine.put_file(self.deployment.container(service), path, data)
            self._scripts_in.add(key)
        return path

    def traffic(self, client: str, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        """incontainer/traffic.py ARGS in a client container: its JSON summary."""
        script = self._script(client, "traffic.py")
        argv = ["python3", script, *with_port(args, MODE_SERVICE[args[0]])]
        res = self.exec(client, argv, timeout=timeout)
        try:
            summary = parse.last_json(res.stdout)
        except parse.ParseError:
            raise LabError(f"traffic {' '.join(args)} in {client}:\n{res.describe()}") from None
        summary["_rc"] = res.rc
        if res.stderr.strip():
            summary["_stderr"] = res.stderr[-2000:]
        return summary

    def traffic_background(self, client: str, *args: str) -> Background:
        return Background(self, client, list(args))

    def probe(self, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """incontainer/probe.py ARGS (scapy) in the probe container: its JSON summary."""
        script = self._script("probe", "probe.py")
        res = self.exec("probe", ["python3", script, *with_port(args, "echo")], timeout=timeout)
        try:
            summary = parse.last_json(res.stdout)
        except parse.ParseError:
            raise LabError(f"probe {' '.join(args)}:\n{res.describe()}") from None
        summary["_rc"] = res.rc
        return summary

    # ------------------------------------------------------------ clients

    def clients_quiet(self) -> None:
        """Stop the clients' continuous load generators (their containers stay)."""
        for client in CLIENTS:
            self.labctl(client, "stop", timeout=30)

    def clients_resume(self) -> None:
        for client in CLIENTS:
            if not self.program_running(client):
                self.labctl(client, "start", "--defaults", timeout=60)

    # ------------------------------------------------------------ impairment

    def impair_on(self, client: str, **settings: float) -> Result:
        """lab-impair on --loss L --reorder R --delay MS --duplicate D --seed N --duration S."""
        argv = ["lab-impair", "on"]
        for key, value in settings.items():
            argv += [f"--{key}", f"{value:g}"]
        on = time.time()
        res = self.exec(client, argv, timeout=30)
        if res.ok:
            self.impairments.append((client, on, None))
        return res

    def impair_stats(self, client: str) -> dict[str, int]:
        return parse.netem_dropped(
            self.exec(client, ["tc", "-s", "qdisc", "show", "dev", "eth0"]).stdout
        )

    def impair_off(self, client: str) -> dict[str, int]:
        """Restore the client's link; what the impairment did (relay or netem counts)."""
        stats = self.impair_stats(client)
        res = self.exec(client, ["lab-impair", "off"], timeout=30)
        if not res.ok:
            raise LabError(f"lab-impair off in {client}:\n{res.describe()}")
        self.impairments = [
            (c, on, off if off is not None or c != client else time.time())
            for c, on, off in self.impairments
        ]
        return parse.impair_counts(res.stdout + res.stderr) | {k: v for k, v in stats.items() if v}

    def impairment_window(self, end: float, since: float = 0.0) -> tuple[float, float, str] | None:
        """The first impairment still on after ``since``: (on, off, client), off ``end``
        if it was never lifted."""
        for client, on, off in self.impairments:
            if off is None or off > since:
                return (max(on, since), off if off is not None else end, client)
        return None

    def impaired_now(self, client: str) -> bool:
        return self.exec(client, ["test", "-f", "/run/lab/impair.state"]).ok

    @contextlib.contextmanager
    def impaired(self, client: str, **settings: float) -> Iterator[dict[str, Any]]:
        """The client's link impaired while inside; the dict it yields gets the
        impairment's counts (and ``on``, its announcement) at exit."""
        res = self.impair_on(client, **settings)
        if not res.ok:
            self.exec(client, ["lab-impair", "off"], timeout=30)
            raise LabError(f"lab-impair on in {client} failed:\n{res.describe()}")
        info: dict[str, Any] = {"on": (res.stdout + res.stderr).strip().splitlines()[-1]}
        try:
            yield info
        finally:
            info.update(self.impair_off(client))

    # ------------------------------------------------------------ captures

    def capture(self, service: str | None, iface: str | None = None, bpf: str = "") -> Capture:
        """tcpdump in ``service``'s namespace (None: the lab bridge), until stop()."""
        capture = Capture(self.deployment, service, iface, bpf)
        self.captures.append(capture)
        return capture

    def bridge_capture(self) -> CaptureHelper:
        """One helper for captures of the whole lab network (its host bridge)."""
        if self._bridge is None:
            self._bridge = CaptureHelper(self.deployment)
        return self._bridge

    def close(self) -> None:
        for capture in self.captures:
            with contextlib.suppress(Exception):
                capture.stop()
        self.captures.clear()
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    # ------------------------------------------------------------ restore

    def restore_all(self) -> list[str]:
        """Back to normal: client links unimpaired, default server arguments, load running."""
        problems = []
        for client in CLIENTS:
            try:
                if self.impaired_now(client):
                    self.impair_off(client)
            except Exception as exc:  # noqa: BLE001 - collect, restore the rest
                problems.append(f"{client}: {exc}")
        for server in SERVERS:
            try:
                self.restore(server)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{server}: {exc}")
        try:
            self.clients_resume()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"clients: {exc}")
        return problems


class Background:
    """traffic.py running in a client while the caller samples the servers.

    ``wait_event(name)`` returns the first progress line ``{"event": name, ...}``
    the script prints; ``finish()`` waits for the summary (bounded)."""

    def __init__(self, lab: Lab, client: str, args: list[str]) -> None:
        self.lab, self.client, self.args = lab, client, args
        script = lab._script(client, "traffic.py")
        argv = ["python3", script, *with_port(args, MODE_SERVICE[args[0]])]
        self.stream: Stream = lab.engine.exec_stream(lab.deployment.container(client), argv)

    def wait_event(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while line := self.stream.next_line(max(0.0, deadline - time.monotonic())):
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if data.get("event") == event:
                    return data
        self.kill()
        raise LabError(
            f"traffic {' '.join(self.args)} in {self.client}: no '{event}' event\n"
            + "".join(self.stream.stdout + self.stream.stderr)
        )

    def finish(self, timeout: float = 120.0) -> dict[str, Any]:
        rc = self.stream.wait(timeout)
        if rc is None:
            self.kill()
            raise LabError(f"traffic {' '.join(self.args)} in {self.client}: no end in {timeout} s")
        try:
            summary = parse.last_json("".join(self.stream.stdout))
        except parse.ParseError:
            raise LabError(
                f"traffic {' '.join(self.args)} in {self.client} (exit {rc}):\n"
                + "".join(self.stream.stdout + self.stream.stderr)[-3000:]
            ) from None
        summary["_rc"] = rc
        if self.stream.stderr:
            summary["_stderr"] = "".join(self.stream.stderr)[-2000:]
        return summary

    def kill(self) -> None:
        """End the script in the container (closing our stream would not)."""
        with contextlib.suppress(EngineError):
            self.lab.exec(self.client, ["pkill", "-f", f"traffic.py {' '.join(self.args[:1])}"])
