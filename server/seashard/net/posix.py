"""The posix stack: kernel sockets; shard 0 owns each listening socket and hands connections out.

Shard 0 accepts, picks the owning shard with the listener's load-balancing
algorithm, and passes the accepted fd to that shard over SCM_RIGHTS. From then
on only the owner reads, writes and closes it. A shard that receives a
connection for a port it does not listen on closes it and says so (the
tutorial's "connections reaching other threads are not handled", made visible).

The per-connection path is kept lean (issue 11: it cost twice a bare uvloop
protocol server): shard 0 takes raw fds from accept(), the connections one
readiness event accepted for another shard travel in one channel message (their
fds together, over SCM_RIGHTS), and each shard turns an fd into a transport at
once, without a task or a Python socket wrapper's enum conversions, so that
``accept()`` only pops a connection that is already made.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import itertools
import os
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from seashard import channel, smp
from seashard.net.api import (
    AcceptResult,
    BindError,
    LazyAcceptResult,
    ListenOptions,
    SocketAddress,
)
from seashard.net.balance import Balancer
from seashard.net.posix_streams import PosixConnection, StreamCounters
from seashard.net.stacks import Prepared
from seashard.shm import MAX_SLOTS

Handler = Callable[[AcceptResult], Awaitable[None]]
LISTEN_BACKLOG = 4096
ACCEPT_BATCH = 64  # accepts per readiness event, so handing out does not starve the loop
# One hand-off message carries every connection a readiness event accepted for a shard.
assert ACCEPT_BATCH <= channel.MAX_FDS, "a batch's fds must fit in one message"
_HANDOFF = "posix.conn"
# Out of fds (or kernel memory), the listening socket stays readable: retrying at once
# would spin. Back off, doubling from the first to the last pause while it lasts.
ACCEPT_BACKOFF_FIRST = 0.05
ACCEPT_BACKOFF_MAX = 1.0
RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
LOG_INTERVAL = 10.0  # seconds between two lines about the same recurring trouble
# struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked; on a
# listening socket Linux reports its accept queue's length in tcpi_unacked.
_TCPI_OFFSET = 24
_TCPI_UNACKED = struct.Struct("=I")
_TCPI_LEN = _TCPI_OFFSET + _TCPI_UNACKED.size


class RateLimitedLog:
    """Log a recurring condition once per interval, with how often it recurred meanwhile."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._next_at = 0.0
        self._suppressed = 0

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} more since the last such line)"
        smp.log(message)
        self._suppressed = 0
        self._next_at = now + self.interval


def _bind_socket(address: SocketAddress, options: ListenOptions) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if options.reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address.host, address.port))
        except OSError as exc:
            raise BindError(exc.errno, exc.strerror) from None
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Prebound(Prepared):
    """Listening sockets bound by the supervisor before any shard exists; shard 0 adopts them.

    So a busy port fails the start at once, before a shard, an admin thread or a
    device queue exists (the tutorial's `bind: Address already in use`, nothing else
    started).
    """

    def __init__(self, socks: dict[tuple[str, int], socket.socket]) -> None:
        self._socks = socks

    @classmethod
    def bind_all(cls, listens: Sequence[tuple[SocketAddress, ListenOptions]]) -> Prebound:
        socks: dict[tuple[str, int], socket.socket] = {}
        try:
            for address, options in listens:
                try:
                    socks[(address.host, address.port)] = _bind_socket(address, options)
                except BindError as exc:
                    exc.address = address
                    raise
        except BaseException:
            for sock in socks.values():
                sock.close()
            raise
        return cls(socks)

    def take(self, address: SocketAddress) -> socket.socket | None:
        return self._socks.pop((address.host, address.port), None)

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()


class _UvFd(int):
    """An accepted fd as uvloop's ``connect_accepted_socket`` takes it, with no socket object.

    uvloop reads ``family``, ``type`` and ``fileno()``. Once its transport owns the
    fd, libuv closes it and then calls ``close()`` on what it was given: here that
    only records that the fd is no longer ours. (A ``socket.socket`` costs, per
    connection, a getsockname() that Python 3.11 makes to check every fd it wraps,
    enum conversions of family and type, and a detach() at the end.)
    """

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    fileno = int.__int__
    released = False

    def close(self) -> None:
        self.released = True

    def discard(self) -> None:
        """Close the fd unless the loop took it (and so closed it already)."""
        if not self.released:
            self.released = True
            os.close(self)


_START = object()  # _Detached: the coroutine has not run yet


class _Detached:
    """Drive a coroutine to its end from future callbacks, as a Task would, without one.

    For the loop's ``connect_accepted_socket``: it makes the transport at once and
    then only waits for ``connection_made``; a Task per connection just for that
    wait would cost more than the wait. Nothing cancels these, so there is no
    cancellation to forward.
    No reference cycle is left once it is done (a closure calling itself would make
    one, keeping the whole connection for the cyclic GC).
    """

    __slots__ = ("_coro", "_on_error")

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        on_error: Callable[[BaseException], None],
        waited: Any = _START,
    ) -> None:
        """Run ``coro`` now, or, with ``waited``, go on once what it last yielded is done."""
        self._coro = coro
        self._on_error = on_error
        if waited is _START:
            self._step()
        else:
            self._wait(waited)

    def _step(self, _: object = None) -> None:
        try:
            waited = self._coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # noqa: BLE001 - handed on, as a Task would keep it
            self._on_error(exc)
            return
        self._wait(waited)

    def _wait(self, waited: Any) -> None:
        if waited is None:  # a bare yield (asyncio.sleep(0)): go on next iteration
            asyncio.get_running_loop().call_soon(self._step)
        else:
            waited._asyncio_future_blocking = False
            waited.add_done_callback(self._step)


def _finish_adoption(conn: PosixConnection) -> None:
    """Let the loop's connect_accepted_socket return, now that connection_made has run.

    On uvloop its waiter is done by then (set right after connection_made), so this
    ends it at once; were it not, it goes on from the waiter's callback.
    """
    coro = conn._adopting
    if coro is None:
        return
    conn._adopting = None
    try:  # the common case, without a driver object
        waited = coro.send(None)
    except StopIteration:
        return
    except BaseException as exc:  # noqa: BLE001 - this connection only
        _adoption_failed(exc)
        return
    _Detached(coro, _adoption_failed, waited)  # not done yet after all: wait for it


def _adoption_failed(exc: BaseException) -> None:
    smp.log(f"taking over a connection: {exc!r}")


class PosixServerSocket:
    """This shard's side of a listener: the connections the balancer gave it.

    Two ways to take them: ``accept()``, one at a time, or ``serve(handle)``, which
    starts ``handle`` in a task of its own for each connection as soon as it is made
    (what an accept loop that spawns a task per connection does, without waking that
    loop's task, a future and a loop iteration per connection: issue 11).
    """

    def __init__(self, stack: PosixStack, address: SocketAddress) -> None:
        self._stack = stack
        self.local_address = address
        self._ready: deque[PosixConnection] = deque()  # made, not yet accepted
        self._waiter: asyncio.Future[None] | None = None
        self._aborted = False
        self._handle: Handler | None = None  # serve()'s, while it serves
        self._on_error: Callable[[AcceptResult, Exception], None] | None = None
        # serve()'s handlers still running, by connection (strong references: the loop
        # keeps only weak ones; keyed so a handler drops its own without current_task())
        self._tasks: dict[PosixConnection, asyncio.Task[None]] = {}

    @property
    def serving(self) -> bool:
        return self._handle is not None

    def _made(self, conn: PosixConnection) -> None:
        """The connection's transport is up (its ``connection_made``): accept() may return it."""
        if self._aborted:
            _finish_adoption(conn)
            conn.abort()
            return
        if self._handle is not None:
            self._start(conn, self._handle)
            return
        self._ready.append(conn)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def accept(self) -> AcceptResult:
        if self._handle is not None:
            raise RuntimeError("this listener is being served: accept() would take nothing")
        while not self._ready:
            if self._aborted:
                port = self.local_address.port
                raise ConnectionAbortedError(f"listener on port {port} closed")
            self._waiter = self._stack.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        conn = self._ready.popleft()
        if conn._adopting is not None:
            _finish_adoption(conn)
        return LazyAcceptResult(conn)

    async def serve(
        self, handle: Handler, on_error: Callable[[AcceptResult, Exception], None] | None = None
    ) -> None:
        """``handle(res)`` in a task of its own for every connection, until abort_accept().

        Then waits for the handlers still running. An Exception from a handler ends its
        own task only: ``on_error(res, exc)`` is called with it (else the task keeps it).
        """
        if self._handle is not None:
            raise RuntimeError("this listener is already being served")
        self._handle = handle
        self._on_error = on_error
        try:
            while self._ready:  # made before serving began
                self._start(self._ready.popleft(), handle)
            while not self._aborted:
                self._waiter = self._stack.loop.create_future()
                try:
                    await self._waiter  # only abort_accept() sets it
                finally:
                    self._waiter = None
        finally:
            self._handle = None
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _start(self, conn: PosixConnection, handle: Handler) -> None:
        self._tasks[conn] = self._stack.loop.create_task(self._run(conn, handle))

    async def _run(self, conn: PosixConnection, handle: Handler) -> None:
        try:
            if conn._adopting is not None:
                # uvloop: started right after the transport was made, so this first step
                # comes after connection_made (scheduled before it) and its waiter.
                if conn._transport is None:  # closed before it was made: nothing to serve
                    _finish_adoption(conn)
                    self._stack._never_made(conn)
                    return
                _finish_adoption(conn)
            res = LazyAcceptResult(conn)
            try:
                await handle(res)
            except Exception as exc:
                if self._on_error is None:
                    raise
                self._on_error(res, exc)
        finally:
            self._tasks.pop(conn, None)

    def abort_accept(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self._stack._listener_gone(self)
        while self._ready:  # connection_lost counts each one closed
            conn = self._ready.popleft()
            _finish_adoption(conn)
            conn.abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __enter__(self) -> PosixServerSocket:
        return self

    def __exit__(self, *_: object) -> None:
        self.abort_accept()


class _KernelListener:
    """Shard 0's listening socket for one port."""

    def __init__(self, stack: PosixStack, sock: socket.socket, slot: int, options: ListenOptions):
        self.stack = stack
        self.sock = sock
        self.slot = slot
        self.port = sock.getsockname()[1]
        # Linux lets a SO_REUSEADDR listener bind past a TIME_WAIT socket only if that
        # socket had SO_REUSEADDR too. Accepted sockets inherit the listener's flag, so
        # set it here, after bind and listen: every connection gets it without a
        # syscall of its own, and the choice of the *next* run's --reuse-address stays
        # its own (a listening socket's flag lets no one else bind its port).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        shard = stack.shard
        counters = stack.counters
        self.balancer = Balancer(
            options.lba,
            shard.count,
            lambda s: counters.live(slot, s),
            options.fixed_cpu,
            live_all=lambda: counters.live_all(slot),
        )
        self.backoff = 0.0  # the current pause after a resource error; 0: accepting
        self._tcp_info = hasattr(socket, "TCP_INFO")  # see _queued
        self.failures = 0
        stack.loop.add_reader(sock.fileno(), self._acceptable)

    def _acceptable(self) -> None:
        stack = self.stack
        me = stack.shard.id
        accept = self.sock._accept  # type: ignore[attr-defined]  # (fd, addr): no socket object
        pick = self.balancer.pick if stack.shard.count > 1 else None  # one shard: no choice
        add_assigned = stack.counters.add_assigned
        slot, port = self.slot, self.port
        local = stack._listeners.get(port)  # this shard's own side of the listener
        batches: dict[int, tuple[list[tuple[str, int]], list[int]]] = {}
        try:
            for _ in range(self._queued()):
                try:
                    fd, addr = accept()
                except (BlockingIOError, InterruptedError):
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in RESOURCE_ERRORS:
                        raise
                    self._back_off(exc)
                    return
                if self.backoff:
                    self._recovered()
                target = pick(addr[1]) if pick is not None else me
                add_assigned(slot, target)
                if target == me:
                    if local is not None:
                        stack._adopt(fd, addr, slot, local)
                    else:  # not listening here itself (closes it, and says why)
                        stack.handoff_received(port, slot, addr, fd)
                else:
                    batch = batches.get(target)
                    if batch is None:
                        batch = batches[target] = ([], [])
                    batch[0].append(addr)
                    batch[1].append(fd)
        finally:  # one message per shard for all it got this time, in accept order
            for target, (addrs, fds) in batches.items():
                stack.shard.send(target, _HANDOFF, (port, slot, addrs), fds)

    def _queued(self) -> int:
        """How many accepts to try now: the accept queue's length, up to ACCEPT_BATCH.

        Linux's TCP_INFO on a listening socket gives it (tcpi_unacked), for one cheap
        getsockopt. Accepting until EAGAIN instead costs a failed accept() per wakeup,
        and that is dear: the kernel makes and frees a socket file before it finds the
        queue empty, and Python raises for it (about 5 us here, often one per
        connection). What arrives meanwhile keeps the socket readable: the loop calls
        again. Where TCP_INFO says nothing of it, until EAGAIN it is.
        """
        if self._tcp_info:
            try:
                info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_LEN)
            except OSError:
                self._tcp_info = False
            else:
                if len(info) >= _TCPI_LEN:
                    queued = _TCPI_UNACKED.unpack_from(info, _TCPI_OFFSET)[0]
                    # called, so readable: 0 would be a race lost; one try settles it
                    return min(ACCEPT_BATCH, queued) or 1
                self._tcp_info = False
        return ACCEPT_BATCH

    def _recovered(self) -> None:
        self.stack.log_recovered(
            f"accept on port {self.port}: accepting again after {self.failures} failed attempts"
        )
        self.backoff = 0.0
        self.failures = 0

    def _back_off(self, exc: OSError) -> None:
        """The connection stays in the backlog; try again later, not at once (that spins)."""
        self.failures += 1
        self.backoff = min(ACCEPT_BACKOFF_MAX, 2 * self.backoff or ACCEPT_BACKOFF_FIRST)
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.stack.accept_errors[name] += 1
        self.stack.log_accept(
            f"accept on port {self.port}: {exc.strerror} ({name}); backing off, "
            f"next try in {self.backoff * 1000:.0f} ms"
        )
        self.stack.loop.remove_reader(self.sock.fileno())
        self.stack.loop.call_later(self.backoff, self._resume)

    def _resume(self) -> None:
        if self.sock.fileno() >= 0:
            self.stack.loop.add_reader(self.sock.fileno(), self._acceptable)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.stack.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class PosixStack:
    name = "posix"

    def __init__(self, shard: smp.Shard, prebound: Prebound | None = None) -> None:
        self.shard = shard
        self._prebound = prebound if shard.id == 0 else None
        if prebound is not None and shard.id != 0:
            prebound.close()  # inherited copies: only shard 0 listens
        self.loop = shard.loop
        self.counters = shard.counters
        self.streams = StreamCounters()
        self._listeners: dict[int, PosixServerSocket] = {}
        self._kernel: dict[int, _KernelListener] = {}
        self._slots: dict[int, int] = {}  # port -> shared counter slot (shard 0 assigns)
        self._connections: set[PosixConnection] = set()
        self._ids = itertools.count()
        self.connections_total = 0
        self.refused_no_listener = 0
        self.handoffs_lost = 0
        self.accept_errors: Counter[str] = Counter()
        self.log_accept = RateLimitedLog()
        self.log_recovered = RateLimitedLog()
        self._log_lost = RateLimitedLog()
        self.log_adopt = RateLimitedLog()
        # uvloop takes a bare fd (_UvFd) and sets TCP_NODELAY itself; the stdlib may not.
        self._uvloop = type(self.loop).__module__.startswith("uvloop")
        shard.on(_HANDOFF, self._on_handoff)

    # network_stack

    def listen(
        self, address: SocketAddress, options: ListenOptions | None = None
    ) -> PosixServerSocket:
        options = options or ListenOptions()
        port = address.port
        if port in self._listeners:
            raise BindError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        if self.shard.id == 0:
            kernel = self._bind(address, options)
            address = SocketAddress(address.host, kernel.port)
            port = address.port  # the bound one (port 0: the kernel's choice)
            self._kernel[port] = kernel
        server = PosixServerSocket(self, address)
        self._listeners[port] = server
        return server

    def _bind(self, address: SocketAddress, options: ListenOptions) -> _KernelListener:
        sock = self._prebound.take(address) if self._prebound is not None else None
        if sock is None:
            sock = _bind_socket(address, options)
        port = sock.getsockname()[1]
        if port not in self._slots and len(self._slots) >= MAX_SLOTS:
            sock.close()
            raise OSError(errno.ENOSPC, f"more than {MAX_SLOTS} listening ports")
        slot = self._slots.setdefault(port, len(self._slots))
        return _KernelListener(self, sock, slot, options)

    async def connect(self, address: SocketAddress) -> PosixConnection:
        _, conn = await self.loop.create_connection(
            lambda: self._new_connection(None), address.host, address.port
        )
        return conn

    # hand-off and ownership

    def _on_handoff(self, sender: int, payload: Any, fds: list[int]) -> None:
        port, slot, addrs = payload
        for addr, fd in zip(addrs, fds, strict=False):
            self.handoff_received(port, slot, addr, fd)
        # Out of fds here, the kernel drops what does not fit (MSG_CTRUNC): the first
        # ones arrive, in order, the rest are lost. Each was counted as ours.
        for addr in addrs[len(fds) :]:
            self.counters.add_closed(slot, self.shard.id)
            self.handoffs_lost += 1
            self._log_lost(
                f"connection from {addr[0]}:{addr[1]} lost in the hand-off: no fd arrived "
                "(out of file descriptors?)"
            )
        for fd in fds[len(addrs) :]:  # never sent so; do not leak them if it happens
            os.close(fd)

    def handoff_received(self, port: int, slot: int, addr: tuple[str, int], fd: int) -> None:
        """A connection for this shard: ``fd`` is ours from here on."""
        server = self._listeners.get(port)
        if server is None:
            os.close(fd)
            self.counters.add_closed(slot, self.shard.id)
            self.refused_no_listener += 1
            smp.log(
                f"no listener on port {port} on this shard: closed connection from "
                f"{addr[0]}:{addr[1]} (listen on every shard, or run with -c 1)"
            )
            return
        self._adopt(fd, addr, slot, server)

    def _adopt(self, fd: int, addr: tuple[str, int], slot: int, server: PosixServerSocket) -> None:
        """Make the transport now; ``server`` gets the connection at its connection_made.

        On uvloop, a listener being served starts the handler's task at once instead:
        its first step runs after connection_made, which the transport scheduled first.
        """
        uv = self._uvloop
        start_now = uv and server._handle is not None
        # the stdlib's transports want a real socket
        sock = _UvFd(fd) if uv else socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd)
        # positional: this runs per connection, and keyword arguments cost more
        conn = PosixConnection(
            self.streams,
            self._connection_lost,
            slot,
            self.loop,
            addr,
            None if start_now else server._made,
            not uv,  # nodelay
        )
        self._connections.add(conn)
        self.connections_total += 1

        coro = self.loop.connect_accepted_socket(lambda: conn, sock)
        if not self._uvloop:
            _Detached(coro, functools.partial(self._adopt_failed, conn, sock, slot))
            return
        # uvloop: the first step makes the transport and schedules connection_made,
        # which sets the waiter the rest of the coroutine awaits; accept() finishes it
        # then (see _finish_adoption), saving a future callback per connection.
        try:
            coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # noqa: BLE001 - this connection only
            self._adopt_failed(conn, sock, slot, exc)
            return
        conn._adopting = coro
        if start_now:
            server._start(conn, server._handle)  # type: ignore[arg-type]

    def _adopt_failed(
        self, conn: PosixConnection, sock: _UvFd | socket.socket, slot: int, exc: BaseException
    ) -> None:
        """The loop could not take the connection over (e.g. reset first): that one only."""
        if conn._transport is None:  # never made, so no connection_lost will count it
            self._connections.discard(conn)
            self.counters.add_closed(slot, self.shard.id)
        if isinstance(sock, _UvFd):
            sock.discard()
        else:
            sock.close()  # if the loop did not already
        self.log_adopt(f"could not take over a connection: {exc}")

    def _new_connection(self, slot: int | None) -> PosixConnection:
        conn = PosixConnection(
            self.streams, self._connection_lost, slot, loop=self.loop, nodelay=not self._uvloop
        )
        self._connections.add(conn)
        self.connections_total += 1
        return conn

    def _never_made(self, conn: PosixConnection) -> None:
        """The loop closed the transport before connection_made: no connection_lost will come."""
        self._connections.discard(conn)
        if conn.slot is not None:
            self.counters.add_closed(conn.slot, self.shard.id)

    def _connection_lost(self, conn: PosixConnection) -> None:
        self._connections.discard(conn)
        if conn.slot is not None:
            self.counters.add_closed(conn.slot, self.shard.id)

    def _listener_gone(self, server: PosixServerSocket) -> None:
        port = server.local_address.port
        if self._listeners.get(port) is server:
            del self._listeners[port]
        kernel = self._kernel.pop(port, None)
        if kernel is not None:
            kernel.close()

    # admin

    def metrics(self) -> dict[str, Any]:
        return {
            "connections_live": len(self._connections),
            "connections_total": self.connections_total,
            "bytes_in": self.streams.bytes_in,
            "bytes_out": self.streams.bytes_out,
            "connections_refused_no_listener": self.refused_no_listener,
            "connections_lost_in_handoff": self.handoffs_lost,
            "accept_errors": dict(self.accept_errors),
        }

    def connections(self) -> list[dict[str, Any]]:
        return [
            {
                "remote": str(c.remote_address),
                "local": str(c.local_address),
                "state": c.tcp_state(),
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
            }
            for c in list(self._connections)
        ]

    async def stop(self, grace: float) -> None:
        for server in list(self._listeners.values()):
            server.abort_accept()
        for kernel in list(self._kernel.values()):
            kernel.close()
        self._kernel.clear()
        deadline = self.loop.time() + grace
        while self._connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            conn.abort()
        for _ in range(20):  # let the aborts' connection_lost callbacks run
            if not self._connections:
                break
            await asyncio.sleep(0.01)
