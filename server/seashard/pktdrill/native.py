"""The native executor: a script against the native stack, in memory, on a virtual clock.

The real Interface (ARP, IPv4) and TcpLayer (listeners, demultiplexing, timers)
run on a MemoryDevice; the loop they are given is a virtual one whose time moves
only when the script's next event is due (so a 60 s script takes milliseconds and
its timings are exact). Syscalls go to ``NativeSockets``, a socket-like shim over
the layer and its connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import math
import re
import shlex
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from seashard.net.api import ListenOptions, SocketAddress
from seashard.net.native.devices import MemoryDevice
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.net.native.limits import NativeLimits
from seashard.net.native.streams import NativeConnection
from seashard.net.native.tcp_layer import NativeServerSocket, TcpLayer
from seashard.tcp.connection import State, TcpConfig, TcpError, TcpStateError
from seashard.virtual_loop import Proc, VirtualLoop
from seashard.wire.ethernet import EthernetFrame

from .engine import Flow, Outcome
from .model import LOCAL_IP, Syscall, Unsupported
from .packets import Seen, decode_tcp
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

_RESET = (TcpError.RESET, TcpError.REFUSED)  # errors reported once, then CLOSED
START = 1000.0  # the virtual clock at the script's time 0
LOCAL_MAC = "02:00:00:00:00:01"
GATEWAY_IP = "192.168.0.2"
GATEWAY_MAC = "02:00:00:00:00:02"
ETH_P_IPV4 = 0x0800

# sysctl name -> (TcpConfig field, how to read the value). A field the TCP does
# not have (yet) makes the sysctl unsupported rather than silently ignored.
SYSCTLS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "tcp_timestamps": ("timestamps", lambda v: int(v) != 0),
    "tcp_sack": ("sack", lambda v: int(v) != 0),
    "tcp_window_scaling": ("wscale", lambda v: None if int(v) == 0 else "keep"),
    "tcp_congestion_control": ("cc", lambda v: "newreno" if v == "reno" else v),
    "tcp_syn_retries": ("syn_retries", int),
    "tcp_synack_retries": ("synack_retries", int),
    "tcp_rmem": ("recv_buffer", lambda v: int(v.split()[1])),
    "tcp_wmem": ("send_buffer", lambda v: int(v.split()[1])),
    "tcp_rfc1337": ("rfc1337", lambda v: int(v) != 0),
    "tcp_early_retrans": ("tlp", lambda v: int(v) >= 3),
}
RMEM_MAX = 212992  # net.core.rmem_max's default
# sysctls that change nothing this stack does (it has no TSO, no metrics cache).
NO_EFFECT = {"tcp_min_tso_segs", "tcp_no_metrics_save", "tcp_tso_win_divisor"}
# sysctls whose given value is what the native TCP does anyway (any other: unsupported).
AS_NATIVE = {
    "tcp_syn_linear_timeouts": "0",
    "tcp_ecn": "0",
    "tcp_syncookies": "1",
    "tcp_dsack": "1",
    "tcp_reordering": "3",
    "tcp_fack": "0",
}
# Settings of packetdrill's defaults.sh the native TCP does not model: accepted so the
# upstream scripts can run, and named here because a script that depends on one may
# fail on native for that reason (F-RTO, pacing, TFO keys, MPTCP, notsent_lowat).
NOT_MODELLED = {
    "tcp_frto",
    "tcp_recovery",  # RACK: not in the native TCP (RFC 6675 + TLP); scripts judge the rest
    "tcp_slow_start_after_idle",
    "tcp_pacing_ss_ratio",
    "tcp_pacing_ca_ratio",
    "tcp_notsent_lowat",
    "tcp_fastopen",  # TFO itself is outside the subset: scripts using it are unsupported
    "tcp_fastopen_key",
    "enabled",  # net.mptcp.enabled
}
# Lines of an init script that set up packetdrill's tun, not the TCP.
SETUP_LINES = (
    re.compile(r"^ip tcp_metrics flush"),
    re.compile(r"^tc qdisc .* dev tun0 "),
    re.compile(r"^/tmp/sysctl_restore_"),  # undoing set_sysctls.py: each run starts afresh
)


class _Pending:
    """An app call running on the virtual loop, as the engine waits for it: ``done()``
    and ``outcome()``, whose ``when`` is the instant the call returned."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc

    def done(self) -> bool:
        return self.proc.done

    def outcome(self) -> Outcome:
        result: Outcome = self.proc.value()
        assert self.proc.finished_at is not None
        result.when = self.proc.finished_at - START
        return result


class _Done:
    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def done(self) -> bool:
        return True

    def outcome(self) -> Outcome:
        return self._outcome


class NativeTarget:
    name = "native"

    def __init__(self) -> None:
        self.loop = VirtualLoop(START)
        self.dev = MemoryDevice()
        self.iface = Interface(
            InterfaceConfig(LOCAL_IP, "255.255.255.0", gateway=GATEWAY_IP, mac=LOCAL_MAC),
            self._transmit,
            arp_options={"entry_ttl": 1e9},  # the virtual clock may run for minutes
        )
        self.layer = TcpLayer(
            self.iface,
            cast(asyncio.AbstractEventLoop, self.loop),
            0,
            1,
            limits=NativeLimits(tcp_tlp=True),  # Linux's tcp_early_retrans=3
            log=lambda _m: None,
        )
        self.iface.tcp_handler = self.layer.on_packet
        self.iface.tcp_segment = self.layer.on_tcp
        self.iface.arp.learn(GATEWAY_IP, GATEWAY_MAC, self.loop.time())
        self.queue: deque[Seen] = deque()
        self.sockets = NativeSockets(self)

    def _transmit(self, frame: bytes) -> bool:
        eth = EthernetFrame.parse(frame)
        if eth.ethertype == ETH_P_IPV4:
            seen = decode_tcp(eth.payload, self.now())
            if seen is not None:
                self.queue.append(seen)
        return True

    def now(self) -> float:
        return self.loop.time() - START

    def run_until(self, when: float, stop: Callable[[], bool] | None = None) -> None:
        self.loop.run_until(START + when, stop)

    def restart_clock(self) -> None:
        """Commands take no virtual time: nothing to do."""

    def inject(self, packet: bytes) -> None:
        frame = EthernetFrame(LOCAL_MAC, GATEWAY_MAC, ETH_P_IPV4, packet).build()
        self.iface.receive(frame, self.loop.time())
        self.loop.pump()

    def captured(self) -> deque[Seen]:
        return self.queue

    def syscall(self, call: Syscall, flow: Flow) -> Any:
        return self.sockets.call(call, flow)

    def command(self, text: str, script_dir: str = ".") -> None:
        lines = [ln.strip() for ln in text.replace("\\\n", " ").splitlines() if ln.strip()]
        if len(lines) > 1:
            for line in lines:
                self.command(line, script_dir)
            return
        text = lines[0] if lines else ""
        if any(r.match(text) for r in SETUP_LINES):
            return
        words = text.split()
        if words and words[0].endswith("set_sysctls.py"):
            # packetdrill's helper: /proc/sys/PATH=VALUE arguments.
            text = "sysctl " + " ".join(
                w.removeprefix("/proc/sys/").replace("/", ".") for w in words[1:]
            )
        path = Path(script_dir, text.split()[0]) if text.split() else None
        if path is not None and path.suffix == ".sh" and len(text.split()) == 1:
            if not path.is_file():
                raise Unsupported(f"command {text!r} (no such file)")
            for line in path.read_text().splitlines():
                line = line.strip()
                if (
                    line
                    and not line.startswith("#")
                    and not any(r.match(line) for r in SETUP_LINES)
                ):
                    self.command(_expand(line), script_dir)
            return
        for name, raw in _sysctls(text):
            short = name.rsplit(".", 1)[-1]
            if short in NO_EFFECT or short in NOT_MODELLED or AS_NATIVE.get(short) == raw:
                continue
            if short not in SYSCTLS:
                raise Unsupported(f"sysctl {name}")
            field, convert = SYSCTLS[short]
            known = {f.name for f in dataclasses.fields(TcpConfig)}
            if field not in known:
                raise Unsupported(f"sysctl {name} (the native TCP has no {field!r} yet)")
            new = convert(raw)
            if new == "keep":
                continue
            changes = {field: new}
            if short == "tcp_rmem" and self.layer.config.wscale is not None:
                # Linux offers the shift that fits max(tcp_rmem[2], rmem_max) in 16 bits
                # (tcp_select_initial_window); rmem_max is the kernel default here.
                space = max(int(raw.split()[2]), RMEM_MAX)
                changes["wscale"] = min(max(space.bit_length() - 1 - 15, 0), 14)
            self.layer.config = dataclasses.replace(self.layer.config, **changes)

    def close(self) -> None:
        self.loop.close()


def _expand(line: str) -> str:
    """$((a*b)) products, as defaults.sh uses for buffer sizes; redirections dropped."""
    line = re.sub(
        r"\$\(\(([0-9* ]+)\)\)", lambda m: str(math.prod(map(int, m[1].split("*")))), line
    )
    return re.sub(r"\s*>\s*/dev/null\s*2>&1\s*$", "", line)


def _sysctls(text: str) -> list[tuple[str, str]]:
    """The (name, value) pairs a command sets; Unsupported for any other command."""
    words = shlex.split(text.replace(";", " ; "))
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == ";":
            i += 1
            continue
        if w == "sysctl":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
            while i < len(words) and "=" in words[i]:
                name, _, raw = words[i].partition("=")
                out.append((name.replace("/", "."), raw.strip()))
                i += 1
            continue
        if w == "echo" and i + 3 < len(words) and words[i + 2] == ">":
            m = re.fullmatch(r"/proc/sys/(net/ipv4/\S+)", words[i + 3])
            if m is None:
                raise Unsupported(f"command {text!r}")
            out.append((m.group(1).replace("/", "."), words[i + 1]))
            i += 4
            continue
        raise Unsupported(f"command {text!r}")
    return out


class _Sock:
    def __init__(self) -> None:
        self.nonblocking = False
        self.port: int | None = None
        self.reuse = False
        self.listener: NativeServerSocket | None = None
        self.conn: NativeConnection | None = None
        self.connecting: _Pending | None = None
        self.error = 0  # the pending SO_ERROR
        self.failed = False  # its connect failed (later writes: EPIPE, as Linux)
        self.linger_zero = False
        self.nodelay = False
        self.keepalive = False
        self.ka: dict[str, float] = {}


class NativeSockets:
    """Socket calls over the native stack. fds are the script's numbers."""

    def __init__(self, target: NativeTarget) -> None:
        self.t = target
        self.fds: dict[int, _Sock] = {}

    @property
    def layer(self) -> TcpLayer:
        return self.t.layer

    def call(self, call: Syscall, flow: Flow) -> Any:
        if call.name not in SUPPORTED:
            raise Unsupported(f"syscall {call.name}")
        for a in call.args:
            check_names(a)
        method = getattr(self, "_" + call.name)
        result = method(call, flow)
        if isinstance(result, Outcome):
            return _Done(result)
        return _Pending(self.t.loop.spawn(result))

    def _sock(self, call: Syscall) -> _Sock | Outcome:
        fd = value(call.args[0])
        sock = self.fds.get(fd)
        return sock if sock is not None else Outcome(-1, "EBADF")

    # -------------------------------------------------------------- calls

    def _socket(self, call: Syscall, flow: Flow) -> Outcome:
        if (
            call.args
            and call.args[0].kind == "name"
            and call.args[0].value
            not in (
                "AF_INET",
                "PF_INET",
            )
        ):
            raise Unsupported(f"socket family {call.args[0].value}")
        kind = value(call.args[1])
        if kind & ~CONSTANTS["SOCK_NONBLOCK"] != CONSTANTS["SOCK_STREAM"]:
            raise Unsupported("socket type other than SOCK_STREAM")
        fd = call.ret.value if call.ret.kind == "int" and call.ret.value >= 0 else 3
        sock = _Sock()
        sock.nonblocking = bool(kind & CONSTANTS["SOCK_NONBLOCK"])
        self.fds[fd] = sock
        return Outcome(fd)

    def _setsockopt(self, call: Syscall, flow: Flow) -> Outcome:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        level, name = value(call.args[1]), value(call.args[2])
        arg = call.args[3]
        c = CONSTANTS
        if level == c["SOL_SOCKET"] and name in (c["SO_REUSEADDR"], c["SO_REUSEPORT"]):
            sock.reuse = value(arg) != 0
        elif level == c["SOL_SOCKET"] and name == c["SO_LINGER"]:
            lg = linger(arg)
            sock.linger_zero = lg is not None and lg[0] != 0 and lg[1] == 0
        elif level == c["SOL_SOCKET"] and name == c["SO_KEEPALIVE"]:
            sock.keepalive = value(arg) != 0
            self._apply_keepalive(sock)
        elif level == c["SOL_SOCKET"] and name in (c["SO_RCVBUF"], c["SO_SNDBUF"]):
            field = "recv_buffer" if name == c["SO_RCVBUF"] else "send_buffer"
            # As Linux: the value asked for is doubled (room for bookkeeping).
            self.layer.config = dataclasses.replace(self.layer.config, **{field: 2 * value(arg)})
        elif level == c["IPPROTO_TCP"] and name == c["TCP_NODELAY"]:
            sock.nodelay = value(arg) != 0
            if sock.conn is not None:
                sock.conn.tcp.set_nagle(not sock.nodelay)
        elif level == c["IPPROTO_TCP"] and name in (
            c["TCP_KEEPIDLE"],
            c["TCP_KEEPINTVL"],
            c["TCP_KEEPCNT"],
        ):
            key = {c["TCP_KEEPIDLE"]: "idle", c["TCP_KEEPINTVL"]: "interval"}.get(name, "count")
            sock.ka[key] = value(arg)
            self._apply_keepalive(sock)
        elif level == c["IPPROTO_TCP"] and name == c["TCP_MAXSEG"]:
            self.layer.config = dataclasses.replace(self.layer.config, mss=value(arg))
        elif level == c["IPPROTO_TCP"] and name == c["TCP_CONGESTION"]:
            cc = congestion(arg)
            known = {f.name for f in dataclasses.fields(TcpConfig)}
            if "cc" not in known:
                if cc != "reno":
                    raise Unsupported(f"TCP_CONGESTION {cc} (the native TCP is NewReno only)")
            else:
                self.layer.config = dataclasses.replace(
                    self.layer.config, cc="newreno" if cc == "reno" else cc
                )
        else:
            raise Unsupported(f"setsockopt level {level} option {name}")
        return Outcome(0)

    def _apply_keepalive(self, sock: _Sock) -> None:
        if sock.conn is None:
            return
        tcp = sock.conn.tcp
        if sock.keepalive:
            tcp.set_keepalive(
                sock.ka.get("idle", 7200.0),
                self.layer.now(),
                sock.ka.get("interval", 75.0),
                int(sock.ka.get("count", 9)),
            )
        self.layer.kick(sock.conn)

    def _getsockopt(self, call: Syscall, flow: Flow) -> Outcome:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        level, name = value(call.args[1]), value(call.args[2])
        if level != CONSTANTS["SOL_SOCKET"] or name != CONSTANTS["SO_ERROR"]:
            raise Unsupported(f"getsockopt level {level} option {name}")
        err, sock.error = sock.error, 0
        want = call.args[3]
        if want.kind == "list" and want.value and value(want) != err:
            return Outcome(0, complaint=f"getsockopt SO_ERROR is {err} ({errno_name(err)})")
        return Outcome(0)

    def _bind(self, call: Syscall, flow: Flow) -> Outcome:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        _ip, port = sockaddr(call.args[1], LOCAL_IP, 8080)
        sock.port = port
        flow.local_port = port
        return Outcome(0)

    def _listen(self, call: Syscall, flow: Flow) -> Outcome:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        port = sock.port or 8080
        try:
            sock.listener = self.layer.listen(
                SocketAddress(LOCAL_IP, port), ListenOptions(reuse_address=sock.reuse)
            )
        except OSError as exc:
            return Outcome(-1, errno_name(exc.errno or errno.EADDRINUSE))
        flow.local_port = port
        flow.remote_port = flow.remote_port or 40000
        return Outcome(0)

    def _new_fd(self, call: Syscall) -> int:
        if call.ret.kind == "int" and call.ret.value >= 0:
            return int(call.ret.value)
        return max(self.fds, default=2) + 1

    def _accept(self, call: Syscall, flow: Flow) -> Outcome | Coroutine[Any, Any, Outcome]:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        listener = sock.listener
        if listener is None:
            return Outcome(-1, "EINVAL")
        if not listener.pending and sock.nonblocking:
            return Outcome(-1, "EAGAIN")

        async def accept() -> Outcome:
            assert listener is not None
            try:
                res = await listener.accept()
            except ConnectionAbortedError:
                return Outcome(-1, "EINVAL")
            fd = self._new_fd(call)
            child = _Sock()
            child.conn = cast(NativeConnection, res.connection)
            child.nodelay, child.keepalive, child.ka = sock.nodelay, sock.keepalive, dict(sock.ka)
            if child.nodelay:
                child.conn.tcp.set_nagle(False)
            self._apply_keepalive(child)
            self.fds[fd] = child
            return Outcome(fd)

        return accept()

    def _connect(self, call: Syscall, flow: Flow) -> Outcome | Coroutine[Any, Any, Outcome]:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        ip, port = sockaddr(call.args[1])
        if sock.conn is not None:
            return Outcome(-1, "EISCONN")
        if sock.connecting is not None:
            return Outcome(-1, "EALREADY")
        flow.remote_port = port
        flow.local_port = None  # learned from the SYN

        async def connect() -> Outcome:
            try:
                sock.conn = await self.layer.connect(SocketAddress(ip, port))
            except TimeoutError:
                sock.failed = True
                sock.error = errno.ETIMEDOUT
                return Outcome(-1, "ETIMEDOUT")
            except ConnectionRefusedError:
                sock.failed = True
                sock.error = errno.ECONNREFUSED
                return Outcome(-1, "ECONNREFUSED")
            if sock.nodelay:
                sock.conn.tcp.set_nagle(False)
            self._apply_keepalive(sock)
            return Outcome(0)

        if sock.nonblocking:
            sock.connecting = _Pending(self.t.loop.spawn(connect()))
            if sock.connecting.done():
                return sock.connecting.outcome()
            return Outcome(-1, "EINPROGRESS")
        return connect()

    def _conn(self, sock: _Sock) -> NativeConnection | Outcome:
        if sock.conn is not None:
            return sock.conn
        if sock.connecting is not None and not sock.connecting.done():
            return Outcome(-1, "EAGAIN")
        err = sock.error
        return Outcome(-1, errno_name(err) if err else "ENOTCONN")

    def _write(self, call: Syscall, flow: Flow) -> Outcome | Coroutine[Any, Any, Outcome]:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        conn = self._conn(sock)
        if isinstance(conn, Outcome):
            if sock.failed:
                if sock.error:
                    err, sock.error = sock.error, 0
                    return Outcome(-1, errno_name(err))
                return Outcome(-1, "EPIPE")
            return conn
        size = value(call.args[2])
        nonblocking = sock.nonblocking or (
            call.name == "send" and len(call.args) > 3 and value(call.args[3]) & 0x40
        )
        tcp = conn.tcp
        if tcp.error in _RESET:
            tcp.error = TcpError.CLOSED  # reported once, as Linux's sk_err
            # Linux (tcp_reset): a reset in CLOSE-WAIT is EPIPE, elsewhere ECONNRESET.
            return Outcome(-1, "EPIPE" if tcp.fin_received else "ECONNRESET")
        if nonblocking:
            try:
                n = tcp.send(bytes(size), self.layer.now())
            except TcpStateError:
                return Outcome(-1, "EPIPE")
            self.layer.kick(conn)
            return Outcome(n) if n else Outcome(-1, "EAGAIN")

        async def write() -> Outcome:
            try:
                await conn.write(bytes(size))
            except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
                return Outcome(
                    -1, "ECONNRESET" if isinstance(exc, ConnectionResetError) else "EPIPE"
                )
            return Outcome(size)

        return write()

    _send = _write

    def _read(self, call: Syscall, flow: Flow) -> Outcome | Coroutine[Any, Any, Outcome]:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        conn = self._conn(sock)
        if isinstance(conn, Outcome):
            return conn
        size = value(call.args[2])
        nonblocking = sock.nonblocking or (
            call.name == "recv" and len(call.args) > 3 and value(call.args[3]) & 0x40
        )
        tcp = conn.tcp

        def attempt() -> Outcome | None:
            if tcp.unread:
                data = tcp.recv(max_bytes=size, now=self.layer.now())
                self.layer.kick(conn)
                return Outcome(len(data))
            if tcp.error in _RESET:
                tcp.error = TcpError.CLOSED
                return Outcome(-1, "ECONNRESET")
            if tcp.error is TcpError.TIMED_OUT:
                return Outcome(-1, "ETIMEDOUT")
            if tcp.at_eof or tcp.is_closed or tcp.state is State.TIME_WAIT:
                return Outcome(0)
            return None

        first = attempt()
        if first is not None:
            return first
        if nonblocking:
            return Outcome(-1, "EAGAIN")

        async def read() -> Outcome:
            while True:
                got = attempt()
                if got is not None:
                    return got
                await conn._wait("_read_waiter")

        return read()

    _recv = _read

    def _shutdown(self, call: Syscall, flow: Flow) -> Outcome:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        how = value(call.args[1])
        if sock.conn is None:
            return Outcome(-1, "ENOTCONN")
        if how in (CONSTANTS["SHUT_WR"], CONSTANTS["SHUT_RDWR"]):
            sock.conn.shutdown_output()
        return Outcome(0)

    def _close(self, call: Syscall, flow: Flow) -> Outcome:
        fd = value(call.args[0])
        sock = self.fds.pop(fd, None)
        if sock is None:
            return Outcome(-1, "EBADF")
        if sock.listener is not None:
            sock.listener.abort_accept()
        conn = sock.conn
        if conn is None and sock.connecting is not None and not sock.connecting.done():
            sock.connecting.proc.coro.close()
            for c in list(self.layer.conns.values()):
                if c.tcp.state is State.SYN_SENT:
                    c.abort()
        if conn is not None:
            if sock.linger_zero or conn.tcp.unread:
                # Linux: close() with unread data (or SO_LINGER 0) resets the connection.
                conn.abort()
            else:
                self.t.loop.spawn(_closed(conn))
        return Outcome(0)

    def _fcntl(self, call: Syscall, flow: Flow) -> Outcome:
        sock = self._sock(call)
        if isinstance(sock, Outcome):
            return sock
        cmd = value(call.args[1])
        if cmd == CONSTANTS["F_GETFL"]:
            return Outcome(
                CONSTANTS["O_RDWR"] | (CONSTANTS["O_NONBLOCK"] if sock.nonblocking else 0)
            )
        if cmd == CONSTANTS["F_SETFL"]:
            sock.nonblocking = bool(value(call.args[2]) & CONSTANTS["O_NONBLOCK"])
            return Outcome(0)
        raise Unsupported(f"fcntl command {cmd}")


async def _closed(conn: NativeConnection) -> Outcome:
    await conn.close()
    return Outcome(0)
