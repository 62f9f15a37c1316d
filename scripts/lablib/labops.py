"""Operations on a running seashard lab, shared by `scripts/lab scenario` and lab_tests.

Standard library only (the host's python3 runs the scenarios), and the docker
CLI only: every action is a ``docker exec`` into a lab container, so it works on
any lab a compose project name designates (``seashard-lab`` from
``scripts/lab up``, or a test lab ``seashard-lab-test-<hex>``).

What runs inside the containers:
  * ``labtraffic.py`` (next to this file) in a client container, fed to
    ``python3 -`` on stdin: echo/canned/accept/hold/steer clients that verify
    every byte and print one JSON summary line;
  * ``labprobe.py`` in the probe container: scapy packet checks;
  * ``labctl`` (images/lab/bin) to restart a server in place, ``lab-impair``
    for loss and reordering on a client's link;
  * admin pages are fetched from inside the lab (the probe), so nothing
    depends on the host reaching the lab's addresses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRAFFIC_SCRIPT = HERE / "labtraffic.py"
PROBE_SCRIPT = HERE / "labprobe.py"

SERVICES = ("posix-server", "native-server", "client-1", "client-2", "probe")
SERVERS = ("posix-server", "native-server")
CLIENTS = ("client-1", "client-2")
STACK_OF = {"posix-server": "posix", "native-server": "native"}
SERVER_OF = {"posix": "posix-server", "native": "native-server"}
NATIVE_STACK_HOST_NUMBER = 21
ADMIN_PORT = 9100
PORTS = {"echo": 1234, "canned": 1235, "accept-logger": 1236}
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# helper containers (captures) carry this label; `scripts/lab down` removes them
HELPER_LABEL = "seashard.lab.project"
ADDRESS_IN_USE = "bind: Address already in use"


class LabError(RuntimeError):
    pass


@dataclass
class Result:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def describe(self) -> str:
        return f"$ {shlex.join(self.argv)}\n(exit {self.rc})\n{self.stdout}{self.stderr}"


def run(argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> Result:
    """Run a host command (docker ...) with a time limit; never raises on a non-zero exit."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        err = (exc.stderr or b"").decode(errors="replace")
        return Result(list(argv), 124, out, err + f"\n(timed out after {timeout:.0f} s)\n")
    return Result(
        list(argv),
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def last_json(text: str) -> dict[str, Any]:
    """The last line of ``text`` that is a JSON object."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise LabError(f"no JSON summary in output:\n{text[-2000:]}")


# ---------------------------------------------------------------- metrics


@dataclass
class Metrics:
    """Parsed Prometheus text: name -> [(labels, value)]."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Metrics:
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        pattern = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$")
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = pattern.match(line.strip())
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            out.setdefault(m.group(1), []).append((labels, float(m.group(4))))
        return cls(out)

    def per_shard(self, name: str, **match: str) -> dict[int, float]:
        """Sum of ``name`` per shard (over its other labels, or those matching ``match``)."""
        totals: dict[int, float] = {}
        for labels, value in self.samples.get(name, []):
            if any(labels.get(k) != v for k, v in match.items()):
                continue
            shard = int(labels.get("shard", "0"))
            totals[shard] = totals.get(shard, 0.0) + value
        return totals

    def total(self, name: str, **match: str) -> float:
        return sum(self.per_shard(name, **match).values())

    def shard_info(self) -> dict[int, dict[str, str]]:
        return {int(lb["shard"]): lb for lb, _ in self.samples.get("seashard_shard_info", [])}


def delta(after: dict[int, float], before: dict[int, float]) -> dict[int, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(set(after) | set(before))}


def shares(counts: dict[Any, int | float]) -> dict[Any, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


# ---------------------------------------------------------------- the lab


@dataclass
class LabOps:
    project: str
    docker: str = "docker"
    _names: dict[str, str] = field(default_factory=dict)
    _ips: dict[str, str] = field(default_factory=dict)
    _subnet: ipaddress.IPv4Network | None = None

    # ------------------------------------------------------------ discovery

    def refresh(self) -> None:
        self._names.clear()
        self._ips.clear()
        res = run(
            [
                self.docker,
                "ps",
                "--filter",
                f"label={PROJECT_LABEL}={self.project}",
                "--format",
                '{{.Names}}\t{{.Label "com.docker.compose.service"}}',
            ],
            timeout=20,
        )
        if not res.ok:
            raise LabError(f"docker ps failed: {res.stderr.strip()}")
        for line in res.stdout.splitlines():
            name, _, service = line.partition("\t")
            if service:
                self._names[service] = name
        if not self._names:
            raise LabError(f"lab '{self.project}' is not running (scripts/lab up)")
        nets = self._networks()
        if nets:
            subnet = run(
                [
                    self.docker,
                    "network",
                    "inspect",
                    "-f",
                    "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                ]
                + nets[:1]
            ).stdout.strip()
            if subnet:
                self._subnet = ipaddress.ip_network(subnet)

    def name(self, service: str) -> str:
        if service not in self._names:
            self.refresh()
        if service not in self._names:
            raise LabError(f"no running container for '{service}' in lab '{self.project}'")
        return self._names[service]

    def ip(self, service: str) -> str:
        if service not in self._ips:
            res = run(
                [
                    self.docker,
                    "inspect",
                    "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                    self.name(service),
                ]
            )
            self._ips[service] = res.stdout.split()[0]
        return self._ips[service]

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        if self._subnet is None:
            self.refresh()
        if self._subnet is None:
            raise LabError(f"lab '{self.project}' has no network")
        return self._subnet

    @property
    def native_stack_ip(self) -> str:
        return str(self.subnet.network_address + NATIVE_STACK_HOST_NUMBER)

    def _networks(self) -> list[str]:
        """The ids of this lab project's networks."""
        cmd = [
            self.docker,
            "network",
            "ls",
            "-q",
            "--filter",
            f"label={PROJECT_LABEL}={self.project}",
        ]
        return run(cmd).stdout.split()

    @property
    def bridge(self) -> str:
        """The lab network's bridge on the docker host (where a capture sees all the lab)."""
        nets = self._networks()
        if not nets:
            raise LabError(f"lab '{self.project}' has no network")
        res = run(
            [
                self.docker,
                "network",
                "inspect",
                "-f",
                '{{index .Options "com.docker.network.bridge.name"}} {{.Id}}',
                nets[0],
            ]
        )
        words = res.stdout.split()
        if len(words) == 2:
            return words[0]
        return "br-" + words[-1][:12]

    @property
    def image(self) -> str:
        res = run([self.docker, "inspect", "-f", "{{.Config.Image}}", self.name("probe")])
        return res.stdout.strip() or "seashard/lab:latest"

    def service_ip(self, server: str) -> str:
        """Where a server's services answer (the native stack's own address for native-server)."""
        return self.native_stack_ip if server == "native-server" else self.ip(server)

    def admin_url(self, server: str, path: str = "/metrics") -> str:
        return f"http://{self.ip(server)}:{ADMIN_PORT}{path}"

    # ------------------------------------------------------------ exec

    def exec(
        self,
        service: str,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 60.0,
        detach: bool = False,
    ) -> Result:
        cmd = [self.docker, "exec"]
        if input is not None:
            cmd.append("-i")
        if detach:
            cmd.append("-d")
        return run([*cmd, self.name(service), *argv], input=input, timeout=timeout)

    def sh(self, service: str, command: str, timeout: float = 60.0) -> Result:
        return self.exec(service, ["sh", "-c", command], timeout=timeout)

    def labctl(self, service: str, *args: str, timeout: float = 60.0) -> Result:
        return self.exec(service, ["labctl", *args], timeout=timeout)

    def logs(self, service: str, since: float | None = None, timestamps: bool = True) -> str:
        cmd = [self.docker, "logs"]
        if timestamps:
            cmd.append("--timestamps")
        if since is not None:
            cmd += ["--since", f"{since:.3f}"]
        res = run([*cmd, self.name(service)], timeout=30)
        return res.stdout + res.stderr

    def run_log(self, server: str) -> str:
        """stdout and stderr of the server program's current run (labctl logs)."""
        out = self.labctl(server, "logs", "out").stdout
        err = self.labctl(server, "logs", "err").stdout
        return out + err

    # ------------------------------------------------------------ admin pages

    def admin_get(self, server: str, path: str, timeout: float = 5.0) -> str:
        script = (
            "import sys, urllib.request\n"
            "r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))\n"
            "sys.stdout.write(r.read().decode())\n"
        )
        url = self.admin_url(server, path)
        last = None
        for _ in range(3):  # a server that has just been restarted may need a moment
            res = self.exec("probe", ["python3", "-c", script, url, str(timeout)], timeout=30)
            if res.ok:
                return res.stdout
            last = res
            time.sleep(0.5)
        assert last is not None
        raise LabError(f"GET {url} failed: {last.stderr.strip()[-500:]}")

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

    def serve_args(
        self,
        server: str,
        *,
        reuse_address: bool = True,
        shard0_only: bool = False,
        smp: int | None = None,
        grace: float = 0,
    ) -> list[str]:
        """The container's default `seashard serve` arguments, changed as asked."""
        defaults = self.default_args(server)
        args: list[str] = []
        i = 0
        while i < len(defaults):
            a = defaults[i]
            if a in ("--reuse-address", "--shard0-only"):
                i += 1
            elif a == "--grace":
                i += 2
            elif a in ("-c", "--smp") and smp is not None:
                args += [a, str(smp)]
                smp = None
                i += 2
            else:
                args.append(a)
                i += 1
        if smp is not None:
            args += ["-c", str(smp)]
        if reuse_address:
            args.append("--reuse-address")
        if shard0_only:
            args.append("--shard0-only")
        args += ["--grace", f"{grace:g}"]
        return args

    def restart(self, server: str, args: Sequence[str] | None = None) -> Result:
        """`labctl restart ARGS` (or --defaults): returns once ready or failed."""
        return self.labctl(server, "restart", *(args if args else ["--defaults"]), timeout=90)

    def restore(self, server: str) -> Result | None:
        """Back to the container's default arguments, running: no-op when already so."""
        running = self.labctl(server, "status").ok
        if running and self.current_args(server) == self.default_args(server):
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
            m = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
            out[int(s["shard"])] = {
                "pid": int(s["pid"]),
                "cpus": list(s["cpus"]),
                "allowed": m.group(1) if m else None,
            }
        return out

    # ------------------------------------------------------------ clients

    def traffic(self, client: str, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        """Run labtraffic.py ARGS in a client container; its JSON summary."""
        res = self.exec(
            client,
            ["python3", "-", *args],
            input=TRAFFIC_SCRIPT.read_bytes(),
            timeout=timeout,
        )
        try:
            summary = last_json(res.stdout)
        except LabError:
            raise LabError(f"labtraffic {' '.join(args)} in {client}:\n{res.describe()}") from None
        summary["_rc"] = res.rc
        if res.stderr.strip():
            summary["_stderr"] = res.stderr[-2000:]
        return summary

    def traffic_background(self, client: str, *args: str) -> Background:
        """Start labtraffic.py ARGS in a client; see Background."""
        return Background(self, client, list(args))

    def clients_quiet(self) -> None:
        """Stop the clients' continuous load generators (their containers stay)."""
        for client in CLIENTS:
            self.labctl(client, "stop", timeout=30)

    def clients_resume(self) -> None:
        for client in CLIENTS:
            if not self.labctl(client, "status").ok:
                self.labctl(client, "start", "--defaults", timeout=60)

    # ------------------------------------------------------------ impairment

    def impair_on(
        self, client: str, loss: float, reorder: float, seed: int, duration: float
    ) -> Result:
        return self.exec(
            client,
            [
                "lab-impair",
                "on",
                "--loss",
                str(loss),
                "--reorder",
                str(reorder),
                "--seed",
                str(seed),
                "--duration",
                f"{duration:g}",
            ],
            timeout=30,
        )

    def impair_off(self, client: str) -> dict[str, int]:
        """Restore the client's link; what the impairment did (relay or netem counts)."""
        stats = self.impair_stats(client)
        res = self.exec(client, ["lab-impair", "off"], timeout=30)
        text = res.stdout + res.stderr
        relay = [line for line in text.splitlines() if line.startswith("impair:")]
        counts = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", relay[-1] if relay else "")}
        counts = {k: counts.get(k, 0) for k in ("frames", "dropped", "reordered", "duplicated")} | {
            k: v for k, v in stats.items() if v
        }
        if not res.ok:
            raise LabError(f"lab-impair off in {client}:\n{res.describe()}")
        return counts

    @contextlib.contextmanager
    def impaired(
        self, client: str, loss: float, reorder: float, seed: int, duration: float = 150
    ) -> Iterator[dict[str, Any]]:
        """Loss and reordering on ``client``'s link while inside; the dict it
        yields gets the impairment's counts (and ``on``, its announcement) at exit."""
        res = self.impair_on(client, loss, reorder, seed, duration)
        if not res.ok:
            self.exec(client, ["lab-impair", "off"], timeout=30)
            raise LabError(f"lab-impair on in {client} failed:\n{res.describe()}")
        info: dict[str, Any] = {"on": (res.stdout + res.stderr).strip().splitlines()[-1]}
        try:
            yield info
        finally:
            info.update(self.impair_off(client))

    def impair_stats(self, client: str) -> dict[str, int]:
        """netem's own counters, when netem is what impairs (the relay counts at its exit)."""
        res = self.exec(client, ["tc", "-s", "qdisc", "show", "dev", "eth0"])
        m = re.search(r"netem.*?dropped (\d+)", res.stdout, re.S)
        return {"netem_dropped": int(m.group(1))} if m else {}

    # ------------------------------------------------------------ probe

    def probe(self, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run labprobe.py ARGS (scapy) in the probe container; its JSON summary."""
        res = self.exec(
            "probe", ["python3", "-", *args], input=PROBE_SCRIPT.read_bytes(), timeout=timeout
        )
        try:
            summary = last_json(res.stdout)
        except LabError:
            raise LabError(f"labprobe {' '.join(args)}:\n{res.describe()}") from None
        summary["_rc"] = res.rc
        return summary

    # ------------------------------------------------------------ captures

    def capture_helper(self) -> CaptureHelper:
        return CaptureHelper(self)


class Background:
    """labtraffic.py running in a client while the caller samples the servers.

    ``wait_event(name)`` returns the first progress line ``{"event": name, ...}``
    the script prints; ``finish()`` waits for the summary (bounded)."""

    def __init__(self, ops: LabOps, client: str, args: list[str]) -> None:
        self.ops, self.client, self.args = ops, client, args
        self.proc = subprocess.Popen(
            [ops.docker, "exec", "-i", ops.name(client), "python3", "-", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(TRAFFIC_SCRIPT.read_bytes())
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not touch it again
        self.lines: list[str] = []

    def wait_event(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        import select

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            self.lines.append(line)
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if data.get("event") == event:
                    return data
        self.kill()
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        raise LabError(
            f"labtraffic {' '.join(self.args)} in {self.client}: no '{event}' event\n"
            + "".join(self.lines)
            + err
        )

    def finish(self, timeout: float = 120.0) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LabError(
                f"labtraffic {' '.join(self.args)} in {self.client}: no end in {timeout} s"
            ) from None
        text = "".join(self.lines) + out.decode(errors="replace")
        summary = last_json(text)
        summary["_rc"] = self.proc.returncode
        if err.strip():
            summary["_stderr"] = err.decode(errors="replace")[-2000:]
        return summary

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        # killing `docker exec` leaves the script running in the container (it
        # would end by itself, bounded by its --seconds): end it now
        self.ops.exec(self.client, ["pkill", "-f", "^python3 - " + " ".join(self.args[:1])])


class CaptureHelper:
    """tcpdump on the lab's host bridge -- every frame between lab containers --
    from a helper container in the host's network namespace (labelled with the
    project, so `scripts/lab down` removes it).  One helper runs many captures,
    one after another: ``start(name)`` / ``stop(name, dest)``."""

    def __init__(self, ops: LabOps) -> None:
        self.ops = ops
        self.bridge = ops.bridge
        res = run(
            [
                ops.docker,
                "run",
                "-d",
                "--rm",
                "--network",
                "host",
                "--cap-add",
                "NET_RAW",
                "--cap-add",
                "NET_ADMIN",
                "--label",
                f"{HELPER_LABEL}={ops.project}",
                "--entrypoint",
                "sleep",
                ops.image,
                "infinity",
            ],
            timeout=60,
        )
        if not res.ok:
            raise LabError(f"capture helper did not start:\n{res.describe()}")
        self.container = res.stdout.strip()

    def _exec(self, command: str, timeout: float = 30.0) -> Result:
        return run([self.ops.docker, "exec", self.container, "sh", "-c", command], timeout=timeout)

    def start(self, name: str, bpf: str = "") -> None:
        pcap = f"/tmp/{name}.pcap"
        cmd = (
            f"tcpdump -i {shlex.quote(self.bridge)} --immediate-mode -U -s 0 -Z root "
            f"-w {pcap} {bpf} > /tmp/{name}.log 2>&1 & echo $! > /tmp/{name}.pid"
        )
        run([self.ops.docker, "exec", "-d", self.container, "sh", "-c", cmd], timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "listening on" in self._exec(f"cat /tmp/{name}.log 2>/dev/null").stdout:
                return
            time.sleep(0.05)
        raise LabError(
            f"tcpdump on {self.bridge} did not start: {self._exec(f'cat /tmp/{name}.log')}"
        )

    def stop(self, name: str, dest: Path | None = None) -> Path | None:
        """Stop capture ``name``; copy its pcap to ``dest`` (else discard it)."""
        self._exec(
            # TERM, not INT: a background job of `sh -c` ignores SIGINT; tcpdump
            # flushes and exits on either
            # (the helper's PID 1, sleep, reaps nobody: an exited tcpdump stays a zombie)
            f"p=$(cat /tmp/{name}.pid); kill -TERM $p 2>/dev/null; "
            "for i in $(seq 50); do grep -qs '^State:[[:space:]]*[RSD]' /proc/$p/status || break; "
            "sleep 0.1; done"
        )
        copied = None
        if dest is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            res = run([self.ops.docker, "cp", f"{self.container}:/tmp/{name}.pcap", str(dest)])
            if res.ok:
                copied = dest
        self._exec(f"rm -f /tmp/{name}.pcap /tmp/{name}.pid /tmp/{name}.log")
        return copied

    @contextlib.contextmanager
    def capturing(self, name: str, dest: Path) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop(name, dest)

    def close(self) -> None:
        run([self.ops.docker, "rm", "-f", self.container], timeout=30)


# ---------------------------------------------------------------- ownership


def owners_from_ss(ss_output: str, local_port: int) -> dict[str, list[int]]:
    """`ss -tnpH state established` lines -> remote "ip:port" -> pids holding the socket."""
    owners: dict[str, list[int]] = {}
    for line in ss_output.splitlines():
        words = line.split()
        # with a state filter ss omits the State column: Recv-Q Send-Q Local Peer Process
        addrs = [w for w in words if re.fullmatch(r"[\d.]+:\d+", w)]
        if len(addrs) < 2 or not addrs[0].endswith(f":{local_port}"):
            continue
        owners[addrs[1]] = sorted({int(p) for p in re.findall(r"pid=(\d+)", line)})
    return owners


def posix_owners(ops: LabOps, local_port: int) -> dict[str, list[int]]:
    res = ops.exec(
        "posix-server", ["ss", "-tnpH", "state", "established", f"( sport = :{local_port} )"]
    )
    return owners_from_ss(res.stdout, local_port)


def native_owners(
    ops: LabOps, local_port: int, rows: list[dict[str, Any]] | None = None
) -> dict[str, list[int]]:
    """/connections of the native server -> remote "ip:port" -> shards with a row for it."""
    owners: dict[str, list[int]] = {}
    for row in rows if rows is not None else ops.connections("native-server"):
        if row.get("previous_run") or not row["local"].endswith(f":{local_port}"):
            continue
        owners.setdefault(row["remote"], []).append(int(row["shard"]))
    return owners


def shard_of_pid(ops: LabOps, server: str) -> dict[int, int]:
    return {int(s["pid"]): int(s["shard"]) for s in ops.shards(server)}


def count_by(values: Iterator[Any] | list[Any]) -> dict[Any, int]:
    return dict(sorted(Counter(values).items()))
