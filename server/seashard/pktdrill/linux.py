"""The Linux executor: a script against the kernel's TCP, as packetdrill plays it.

``run_linux`` creates a network namespace, runs this module inside it (``ip
netns exec``) and removes the namespace afterwards, pass or fail. Inside, a TUN
device ``tun0`` holds the local address (192.168.0.1) with a route to the remote
one (192.0.2.1): inbound packets are written to the TUN, outbound ones read from
it; the syscalls are real sockets; sysctls are set in the namespace only. The
TUN has TSO on (IFF_VNET_HDR + TUNSETOFFLOAD), as packetdrill's has, so the
kernel hands over the large segments packetdrill scripts expect.

Root and /dev/net/tun are needed. The child prints its result as one JSON line;
it reports each line it starts on stderr, so a script killed by its time limit
is reported with the line it was waiting on.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import queue
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .engine import Engine, Flow, Outcome, Result
from .model import DEFAULT_TOLERANCE, LOCAL_IP, Syscall, Unsupported
from .packets import Seen, decode_tcp
from .parser import parse_file
from .syscalls import (
    CONSTANTS,
    SUPPORTED,
    check_names,
    congestion,
    errno_name,
    linger,
    sockaddr,
    value,
)

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN, IFF_NO_PI, IFF_VNET_HDR = 0x0001, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
VNET_HDR = 10  # struct virtio_net_hdr
TUN = "tun0"


def available() -> str | None:
    """None when this machine can run the Linux executor, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    return None


def run_linux(
    path: str,
    tolerance: float = DEFAULT_TOLERANCE,
    time_limit: float = 120.0,
    init_scripts: tuple[str, ...] = (),
) -> Result:
    why = available()
    if why is not None:
        return Result(path, "linux", "error", message=f"linux executor: {why}")
    ns = f"pd-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        cmd = [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "seashard.pktdrill.linux",
            path,
            "--tolerance",
            str(tolerance),
            *(f"--init={p}" for p in init_scripts),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=time_limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            lines = re.findall(r"^line (\d+)$", err, re.M)
            line = int(lines[-1]) if lines else 0
            return Result(
                path,
                "linux",
                "fail",
                line,
                message=f"time limit of {time_limit:.0f} s: stopped while on line {line}",
            )
        for text in reversed(out.splitlines()):
            if text.startswith("{"):
                data = json.loads(text)
                return Result(**data)
        tail = err.strip().splitlines()[-1:] or ["no output"]
        return Result(path, "linux", "error", message=f"linux executor died: {tail[0]}")
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# ------------------------------------------------------------ in the netns


class _Call:
    """One syscall, run by the worker thread (one thread for all: a syscall starts
    with no thread start-up delay, and the engine never overlaps two)."""

    def __init__(self, fn: Callable[[], Outcome], clock: Callable[[], float]) -> None:
        self.fn = fn
        self.clock = clock
        self._outcome: Outcome | None = None
        self._event = threading.Event()
        _WORK.put(self)

    def run(self) -> None:
        try:
            self._outcome = self.fn()
        except OSError as exc:
            self._outcome = Outcome(-1, errno_name(exc.errno or 0))
        except Unsupported as exc:
            self._outcome = Outcome(-1, "EINVAL", complaint=f"unsupported: {exc.feature}")
        self._outcome.when = self.clock()
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def outcome(self) -> Outcome:
        assert self._outcome is not None
        return self._outcome


_WORK: queue.Queue[_Call] = queue.Queue()


def _worker() -> None:
    while True:
        _WORK.get().run()


class LinuxTarget:
    name = "linux"

    def __init__(self, script_dir: str) -> None:
        self.script_dir = script_dir
        self.fd = os.open("/dev/net/tun", os.O_RDWR)
        ifr = struct.pack("16sH", TUN.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(self.fd, TUNSETIFF, ifr)
        fcntl.ioctl(self.fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        for cmd in (
            ["sysctl", "-qw", f"net.ipv6.conf.{TUN}.disable_ipv6=1"],
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "set", TUN, "up"],
            ["ip", "addr", "add", f"{LOCAL_IP}/24", "dev", TUN],
            ["ip", "route", "add", "192.0.2.0/24", "dev", TUN],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
        self.queue: deque[Seen] = deque()
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.socks: dict[int, socket.socket] = {}
        self.ran: set[str] = set()
        threading.Thread(target=self._reader, daemon=True).start()
        threading.Thread(target=_worker, daemon=True).start()

    def _reader(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 70000)
            except OSError:
                return
            seen = decode_tcp(data[VNET_HDR:], self.now())
            if seen is not None:
                with self.lock:
                    self.queue.append(seen)

    def now(self) -> float:
        return time.monotonic() - self.start

    def run_until(self, when: float, stop: Callable[[], bool] | None = None) -> None:
        while True:
            if stop is not None and stop():
                return
            left = when - self.now()
            if left <= 0:
                return
            time.sleep(min(left, 0.0005))

    def inject(self, packet: bytes) -> None:
        os.write(self.fd, bytes(VNET_HDR) + packet)

    def captured(self) -> deque[Seen]:
        return self.queue

    def restart_clock(self) -> None:
        self.start = time.monotonic()

    def command(self, text: str, script_dir: str = ".") -> None:
        _check_command(text, script_dir)
        # The same init script given as --init_scripts and run by the script itself
        # (packetdrill's ../common/defaults.sh) runs once: its `tc qdisc add` cannot twice.
        key = _script_file(text, script_dir)
        if key is not None:
            if key in self.ran:
                return
            self.ran.add(key)
        # set_sysctls.py (packetdrill's) names its restore script after PACKETDRILL_PID.
        env = {**os.environ, "PACKETDRILL_PID": str(os.getpid())}
        proc = subprocess.run(
            ["sh", "-c", text], cwd=script_dir, capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            line = (proc.stderr.strip().splitlines() or [""])[-1]
            raise Unsupported(f"command failed on this kernel: {text!r}: {line}")

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        os.close(self.fd)

    # ---------------------------------------------------------- syscalls

    def syscall(self, call: Syscall, flow: Flow) -> _Call:
        if call.name not in SUPPORTED:
            raise Unsupported(f"syscall {call.name}")
        for a in call.args:
            check_names(a)
        fn = getattr(self, "_" + call.name)
        if call.name in ("socket", "listen", "bind", "connect"):
            # Checked here (not in the thread) so Unsupported reaches the engine.
            prepared = fn(call, flow)
            return _Call(prepared, self.now)
        return _Call(lambda: fn(call, flow)(), self.now)

    def _get(self, call: Syscall) -> socket.socket:
        fd = value(call.args[0])
        if fd not in self.socks:
            raise OSError(9, "EBADF")
        return self.socks[fd]

    def _socket(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        family = socket.AF_INET if call.args[0].kind == "ellipsis" else value(call.args[0])
        if family != socket.AF_INET:
            raise Unsupported("IPv6" if family == socket.AF_INET6 else f"family {family}")
        kind = value(call.args[1])
        fd = call.ret.value if call.ret.kind == "int" and call.ret.value >= 0 else 3

        def run() -> Outcome:
            self.socks[fd] = socket.socket(family, kind, value(call.args[2]))
            return Outcome(fd)

        return run

    def _setsockopt(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        level, name, arg = value(call.args[1]), value(call.args[2]), call.args[3]
        payload: int | bytes
        if name == CONSTANTS["SO_LINGER"] and level == CONSTANTS["SOL_SOCKET"]:
            lg = linger(arg) or (0, 0)
            payload = struct.pack("ii", *lg)
        elif name == CONSTANTS["TCP_CONGESTION"] and level == CONSTANTS["IPPROTO_TCP"]:
            payload = congestion(arg).encode()
        else:
            payload = value(arg)

        def run() -> Outcome:
            sock.setsockopt(level, name, payload)
            return Outcome(0)

        return run

    def _getsockopt(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        level, name = value(call.args[1]), value(call.args[2])
        if level != CONSTANTS["SOL_SOCKET"] or name != CONSTANTS["SO_ERROR"]:
            raise Unsupported(f"getsockopt level {level} option {name}")
        want = call.args[3]

        def run() -> Outcome:
            err = sock.getsockopt(level, name)
            if want.kind == "list" and want.value and value(want) != err:
                return Outcome(0, complaint=f"getsockopt SO_ERROR is {err} ({errno_name(err)})")
            return Outcome(0)

        return run

    def _bind(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        ip, port = sockaddr(call.args[1], LOCAL_IP, 8080)
        flow.local_port = port

        def run() -> Outcome:
            sock.bind((ip, port))
            return Outcome(0)

        return run

    def _listen(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        backlog = value(call.args[1])

        def run() -> Outcome:
            sock.listen(backlog)
            flow.local_port = sock.getsockname()[1]
            return Outcome(0)

        return run

    def _accept(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)

        def run() -> Outcome:
            conn, _addr = sock.accept()
            fd = call.ret.value if call.ret.kind == "int" and call.ret.value >= 0 else conn.fileno()
            self.socks[fd] = conn
            return Outcome(fd)

        return run

    def _connect(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        ip, port = sockaddr(call.args[1])
        flow.remote_port = port
        flow.local_port = None

        def run() -> Outcome:
            code = sock.connect_ex((ip, port))
            return Outcome(0) if code == 0 else Outcome(-1, errno_name(code))

        return run

    def _write(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        size = value(call.args[2])
        flags = value(call.args[3]) if len(call.args) > 3 else 0
        if flags & ~CONSTANTS["MSG_DONTWAIT"]:
            raise Unsupported(f"send flags {flags:#x}")
        return lambda: Outcome(sock.send(bytes(size), flags))

    _send = _write

    def _read(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        size = value(call.args[2])
        flags = value(call.args[3]) if len(call.args) > 3 else 0
        if flags & ~CONSTANTS["MSG_DONTWAIT"]:
            raise Unsupported(f"recv flags {flags:#x}")
        return lambda: Outcome(len(sock.recv(size, flags)))

    _recv = _read

    def _shutdown(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        how = value(call.args[1])

        def run() -> Outcome:
            sock.shutdown(how)
            return Outcome(0)

        return run

    def _close(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        fd = value(call.args[0])

        def run() -> Outcome:
            sock = self.socks.pop(fd, None)
            if sock is None:
                return Outcome(-1, "EBADF")
            sock.close()
            return Outcome(0)

        return run

    def _fcntl(self, call: Syscall, flow: Flow) -> Callable[[], Outcome]:
        sock = self._get(call)
        cmd = value(call.args[1])
        arg = value(call.args[2]) if len(call.args) > 2 else 0
        if cmd not in (CONSTANTS["F_GETFL"], CONSTANTS["F_SETFL"]):
            raise Unsupported(f"fcntl command {cmd}")
        return lambda: Outcome(fcntl.fcntl(sock.fileno(), cmd, arg))


def _script_file(text: str, script_dir: str) -> str | None:
    """The content of the init script a command runs (the same file may sit at two paths)."""
    words = text.split()
    path = Path(script_dir, words[0]) if len(words) == 1 else None
    if path is not None and path.suffix == ".sh" and path.is_file():
        return path.read_text()
    return None


def _check_command(text: str, script_dir: str) -> None:
    """Only sysctls of the network stack (per-namespace) may be set: a script must
    not change the host. Files the command names are read and checked too."""
    texts = [text]
    for word in text.replace("`", " ").split():
        p = Path(script_dir, word)
        if p.suffix == ".sh" and p.is_file():
            texts.append(p.read_text())
    for chunk in texts:
        for name in re.findall(r"sysctl\s+(?:-\w+\s+)*([\w./-]+)=", chunk):
            if not name.startswith("net."):
                raise Unsupported(f"sysctl {name} (not per namespace)")
        for path in re.findall(r"/proc/sys/([\w/]+)", chunk):
            if not path.startswith("net/"):
                raise Unsupported(f"/proc/sys/{path} (not per namespace)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="seashard.pktdrill.linux")
    ap.add_argument("script")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    ap.add_argument("--init", action="append", default=[])
    args = ap.parse_args(argv)
    from .runner import prescan, with_init

    script = with_init(parse_file(args.script), args.init)
    prescan(script)
    target = LinuxTarget(str(Path(args.script).resolve().parent))
    engine = Engine(script, target, args.tolerance)
    progress = _Progress(engine)
    progress.start()
    try:
        result = engine.run()
    finally:
        progress.stop = True
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    os._exit(0)  # threads blocked in syscalls must not hold the exit up


class _Progress(threading.Thread):
    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop = False

    def run(self) -> None:
        last = -1
        while not self.stop:
            if self.engine.line != last:
                last = self.engine.line
                print(f"line {last}", file=sys.stderr, flush=True)
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
