"""Shards: one process per shard, each pinned to its own CPU with its own event loop.

The supervisor (the process the user started) forks the shards, waits for all
of them to report ready, forwards SIGINT/SIGTERM, and brings the whole server
down if any shard dies. Inside a shard, ``submit_to`` and ``invoke_on_all``
run a function on another shard (or all) and await its result; messages travel
over SEQPACKET socketpairs (see channel.py).

Exit codes of ``run``: 0 clean shutdown, 1 a shard failed to start (bind error,
bad device...), 3 a shard died while serving.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from seashard.channel import Channel, channel_pair
from seashard.shm import SharedCounters

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_SHARD_DIED = 3


class StartupError(Exception):
    """Raised by a shard's main to fail startup with a one-line message."""


@dataclass
class Shard:
    """The runtime state of the current shard process."""

    id: int
    count: int
    cpu: int | None
    loop: asyncio.AbstractEventLoop
    counters: SharedCounters
    peers: dict[int, Channel] = field(default_factory=dict)
    handlers: dict[str, Callable[[int, Any, list[int]], None]] = field(default_factory=dict)
    _calls: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _call_ids: itertools.count = field(default_factory=itertools.count)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    control: socket.socket | None = None

    def send(self, shard: int, kind: str, payload: Any, fds: list[int] | None = None) -> None:
        """Fire-and-forget message to another shard's handler for ``kind``."""
        self.peers[shard].send((kind, self.id, payload), fds)

    def on(self, kind: str, handler: Callable[[int, Any, list[int]], None]) -> None:
        """Register ``handler(from_shard, payload, fds)`` for messages of ``kind``."""
        self.handlers[kind] = handler

    def _dispatch(self, message: Any, fds: list[int]) -> None:
        kind, sender, payload = message
        if kind == "call":
            self.loop.create_task(self._run_call(sender, *payload))
        elif kind == "ret":
            call_id, ok, value = payload
            fut = self._calls.pop(call_id, None)
            if fut is not None and not fut.done():
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        elif kind in self.handlers:
            self.handlers[kind](sender, payload, fds)
        else:
            for fd in fds:
                os.close(fd)
            log(f"dropped a '{kind}' message from shard {sender}: no handler")

    async def _run_call(
        self, sender: int, call_id: int, fn: Callable[..., Any], args: tuple
    ) -> None:
        try:
            result = await _call(fn, args)
            reply = (call_id, True, result)
        except Exception as exc:  # the caller gets the exception
            reply = (call_id, False, exc)
        try:
            self.send(sender, "ret", reply)
        except Exception as exc:  # an unpicklable result or exception
            self.send(sender, "ret", (call_id, False, RuntimeError(repr(exc))))


_current: Shard | None = None


def current() -> Shard:
    if _current is None:
        raise RuntimeError("not running inside a seashard shard")
    return _current


def this_shard_id() -> int:
    return current().id


def smp_count() -> int:
    return current().count


async def _call(fn: Callable[..., Any], args: tuple) -> Any:
    result = fn(*args)
    if isinstance(result, Awaitable):
        result = await result
    return result


async def submit_to(shard: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on ``shard`` (awaited there if it is a coroutine); return its result.

    ``fn`` and ``args`` cross a process boundary: module-level functions and
    picklable arguments only.
    """
    me = current()
    if not 0 <= shard < me.count:
        raise ValueError(f"no shard {shard}: smp count is {me.count}")
    if shard == me.id:
        return await _call(fn, args)
    call_id = next(me._call_ids)
    fut: asyncio.Future[Any] = me.loop.create_future()
    me._calls[call_id] = fut
    me.send(shard, "call", (call_id, fn, args))
    return await fut


async def invoke_on_all(fn: Callable[..., Any], *args: Any) -> list[Any]:
    """``submit_to`` every shard at once; results in shard order."""
    return list(await asyncio.gather(*(submit_to(s, fn, *args) for s in range(smp_count()))))


def log(message: str) -> None:
    """One line on stderr, prefixed with the shard that says it."""
    prefix = f"shard {_current.id}: " if _current is not None else "seashard: "
    print(prefix + message, file=sys.stderr, flush=True)


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (SEASHARD_LOOP=asyncio forces the stdlib loop)."""
    if os.environ.get("SEASHARD_LOOP") == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


ShardMain = Callable[[Shard], Awaitable[None]]


@dataclass
class _Child:
    shard: int
    pid: int
    control: socket.socket
    ready: bool = False
    status: int | None = None


def run(
    count: int,
    shard_main: ShardMain,
    *,
    cpus: list[int] | None = None,
    pin: bool = True,
    on_ready: Callable[[list[int]], None] | None = None,
    stop_timeout: float = 30.0,
    until_done: bool = False,
) -> int:
    """Fork ``count`` shards running ``shard_main`` and supervise them; return the exit code.

    ``shard_main`` must finish its startup (listen, ...), call
    ``announce_started`` and then await ``shard.stopping``; raising
    StartupError (or OSError) fails the start with its message. With
    ``until_done`` (a finite job such as the load generator) shards may return
    on their own: the exit code is then the first non-zero one of any shard.
    """
    cpus = cpus if cpus is not None else available_cpus()
    if count < 1:
        raise ValueError("smp count must be at least 1")
    if pin and count > len(cpus):
        raise ValueError(f"-c {count} exceeds the {len(cpus)} CPUs available ({_cpulist(cpus)})")
    counters = SharedCounters(count)
    links = {(i, j): channel_pair() for i in range(count) for j in range(i + 1, count)}
    children: list[_Child] = []
    sys.stdout.flush()
    sys.stderr.flush()
    for shard_id in range(count):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the shard
            parent_end.close()
            for c in children:
                c.control.close()
            code = EXIT_START_FAILED
            try:
                code = _shard_process(
                    shard_id,
                    count,
                    cpus[shard_id] if pin else None,
                    links,
                    child_end,
                    counters,
                    shard_main,
                )
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else EXIT_START_FAILED
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        children.append(_Child(shard_id, pid, parent_end))
    for a, b in links.values():
        a.close()
        b.close()
    return _supervise(children, on_ready, stop_timeout, until_done)


def _cpulist(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


def _shard_process(
    shard_id: int,
    count: int,
    cpu: int | None,
    links: dict[tuple[int, int], tuple[socket.socket, socket.socket]],
    control: socket.socket,
    counters: SharedCounters,
    shard_main: ShardMain,
) -> int:
    global _current
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; it sends SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    mine: dict[int, socket.socket] = {}
    for (i, j), (a, b) in links.items():
        if i == shard_id:
            mine[j] = a
            b.close()
        elif j == shard_id:
            mine[i] = b
            a.close()
        else:
            a.close()
            b.close()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    shard = Shard(id=shard_id, count=count, cpu=cpu, loop=loop, counters=counters)
    _current = shard
    for peer, sock in mine.items():
        channel = Channel(sock, shard._dispatch)
        shard.peers[peer] = channel
        channel.start(loop)
    loop.add_signal_handler(signal.SIGTERM, shard.stopping.set)

    control.setblocking(False)
    loop.add_reader(control.fileno(), lambda: _control_readable(control, shard))
    shard.control = control

    async def main() -> int:
        try:
            await shard_main(shard)
        except (StartupError, OSError) as exc:
            _send_control(control, f"failed {exc}\n".encode())
            return EXIT_START_FAILED
        except Exception:
            traceback.print_exc()
            _send_control(control, b"failed internal error, see the trace above\n")
            return EXIT_START_FAILED
        return EXIT_OK

    profile_dir = os.environ.get("SEASHARD_PROFILE")  # a folder: one cProfile dump per shard
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        code = loop.run_until_complete(main())
    finally:
        if profiler is not None:
            profiler.disable()
            os.makedirs(profile_dir, exist_ok=True)  # type: ignore[arg-type]
            profiler.dump_stats(os.path.join(profile_dir, f"shard-{shard_id}.prof"))  # type: ignore[arg-type]
        for channel in shard.peers.values():
            channel.close()
    return code


def announce_started() -> None:
    """Called by a shard's main once it serves; the supervisor waits for every shard's."""
    control = current().control
    if control is not None:
        _send_control(control, b"ready\n")


def _send_control(control: socket.socket, data: bytes) -> None:
    try:
        control.setblocking(True)
        control.sendall(data)
        control.setblocking(False)
    except OSError:
        pass


def _control_readable(control: socket.socket, shard: Shard) -> None:
    try:
        data = control.recv(4096)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:  # the supervisor is gone: stop rather than serve headless
        shard.loop.remove_reader(control.fileno())
        shard.stopping.set()


def _supervise(
    children: list[_Child],
    on_ready: Callable[[list[int]], None] | None,
    stop_timeout: float,
    until_done: bool,
) -> int:
    sel = selectors.DefaultSelector()
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
    stop_requested = False
    exit_code: int | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector
    sel.register(wake_r, selectors.EVENT_READ)
    for c in children:
        c.control.setblocking(False)
        sel.register(c.control, selectors.EVENT_READ, c)
    first_error: str | None = None
    stop_sent_at: float | None = None
    announced = False

    def read_control(child: _Child) -> None:
        nonlocal first_error
        while True:
            try:
                data = child.control.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                if child.control.fileno() in sel.get_map():
                    sel.unregister(child.control)
                return
            for line in data.decode(errors="replace").splitlines():
                if line == "ready":
                    child.ready = True
                elif line.startswith("failed ") and first_error is None:
                    first_error = line[len("failed ") :]

    try:
        while any(c.status is None for c in children):
            for key, _ in sel.select(timeout=0.5):
                if key.data is None:
                    _drain(wake_r)
                else:
                    read_control(key.data)
            _reap(children)
            for c in children:  # a dead shard's last words may still be unread
                if c.status is not None and c.control.fileno() in sel.get_map():
                    read_control(c)
            if exit_code is None:
                exit_code, messages = _verdict(children, first_error, stop_requested, until_done)
                for message in messages:
                    print(message, file=sys.stderr, flush=True)
            if exit_code is not None and stop_sent_at is None:
                stop_sent_at = time.monotonic()
                _signal_all(children, signal.SIGTERM)
            if stop_sent_at is not None and time.monotonic() - stop_sent_at > stop_timeout:
                print("seashard: shards did not stop in time; killing them", file=sys.stderr)
                _signal_all(children, signal.SIGKILL)
                stop_sent_at = time.monotonic() + 3600
            if not announced and exit_code is None and all(c.ready for c in children):
                announced = True
                if on_ready is not None:
                    on_ready([c.pid for c in children])
    finally:
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGCHLD, old_chld)
        sel.close()
        wake_r.close()
        wake_w.close()
        for c in children:
            c.control.close()
    if until_done and exit_code is None:
        return EXIT_OK
    if exit_code == EXIT_OK and any(c.status != 0 for c in children):
        bad = next(c for c in children if c.status != 0)
        print(
            f"seashard: shard {bad.shard} {_describe(bad.status)} while stopping", file=sys.stderr
        )
        return EXIT_SHARD_DIED
    return exit_code if exit_code is not None else EXIT_OK


def _verdict(
    children: list[_Child], first_error: str | None, stop_requested: bool, until_done: bool
) -> tuple[int | None, list[str]]:
    """The run's exit code once it is decided (None: go on) and what to tell the user."""
    if first_error is not None:
        return EXIT_START_FAILED, [first_error]
    dead = [c for c in children if c.status is not None]
    if until_done:  # a finite job: shards may end on their own; the first failure decides
        failed = [c for c in dead if c.status != 0]
        if failed:
            c = failed[0]
            if c.status is not None and c.status > 0:
                return c.status, []
            return EXIT_SHARD_DIED, [
                f"seashard: shard {c.shard} (pid {c.pid}) {_describe(c.status)}"
            ]
        return (EXIT_OK if stop_requested else None), []
    if stop_requested:
        return EXIT_OK, []
    if dead:  # a server's shards never end on their own
        code = EXIT_SHARD_DIED if all(c.ready for c in children) else EXIT_START_FAILED
        return code, [
            f"seashard: shard {c.shard} (pid {c.pid}) {_describe(c.status)}; stopping the server"
            for c in dead
        ]
    return None, []


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _reap(children: list[_Child]) -> None:
    for c in children:
        if c.status is not None:
            continue
        try:
            pid, status = os.waitpid(c.pid, os.WNOHANG)
        except ChildProcessError:
            c.status = -1
            continue
        if pid:
            c.status = os.waitstatus_to_exitcode(status)


def _signal_all(children: list[_Child], signum: int) -> None:
    for c in children:
        if c.status is None:
            try:
                os.kill(c.pid, signum)
            except ProcessLookupError:
                pass


def _describe(status: int | None) -> str:
    if status is None:
        return "is running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        return f"was killed by {name}"
    return f"exited with code {status}"
