"""Shards: one process per shard, each pinned to its own CPU with its own event loop.

``run`` forks the shards and hands them to the supervisor (supervisor.py),
which also decides the exit code. Inside a shard, ``submit_to`` and
``invoke_on_all`` run a function on another shard (or all) and await its
result; messages travel over SEQPACKET socketpairs (see channel.py).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from seashard import allocator
from seashard.channel import Channel, channel_pair
from seashard.shm import SharedCounters
from seashard.supervisor import (  # noqa: F401 (re-exported)
    EXIT_OK,
    EXIT_SHARD_DIED,
    EXIT_START_FAILED,
    Child,
    supervise,
)


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


def run(
    count: int,
    shard_main: ShardMain,
    *,
    cpus: list[int] | None = None,
    pin: bool = True,
    on_ready: Callable[[list[int]], None] | None = None,
    stop_timeout: float = 30.0,
    until_done: bool = False,
    after_fork: Callable[[], None] | None = None,
) -> int:
    """Fork ``count`` shards running ``shard_main`` and supervise them; return the exit code.

    ``shard_main`` must finish its startup (listen, ...), call
    ``announce_started`` and then await ``shard.stopping``; raising
    StartupError (or OSError) fails the start with its message. With
    ``until_done`` (a finite job such as the load generator) shards may return
    on their own: the exit code is then the first non-zero one of any shard.
    ``after_fork`` runs in the supervisor once every shard is forked (e.g. to close
    the supervisor's copies of sockets that a shard took over).
    """
    cpus = cpus if cpus is not None else available_cpus()
    if count < 1:
        raise ValueError("smp count must be at least 1")
    if pin and count > len(cpus):
        raise ValueError(f"-c {count} exceeds the {len(cpus)} CPUs available ({_cpulist(cpus)})")
    counters = SharedCounters(count)
    links = {(i, j): channel_pair() for i in range(count) for j in range(i + 1, count)}
    children: list[Child] = []
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
        children.append(Child(shard_id, pid, parent_end))
    for a, b in links.values():
        a.close()
        b.close()
    if after_fork is not None:
        after_fork()
    return supervise(children, on_ready, stop_timeout, until_done)


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
    allocator.keep_freed_memory()
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
