"""The posix stack: kernel sockets; shard 0 owns each listening socket and hands connections out.

Shard 0 accepts, picks the owning shard with the listener's load-balancing
algorithm, and passes the accepted fd to that shard over SCM_RIGHTS. From then
on only the owner reads, writes and closes it. A shard that receives a
connection for a port it does not listen on closes it and says so (the
tutorial's "connections reaching other threads are not handled", made visible).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import socket
from collections import deque
from typing import Any

from seashard import smp
from seashard.net.api import (
    AcceptResult,
    BindError,
    ListenOptions,
    SocketAddress,
)
from seashard.net.balance import Balancer
from seashard.net.posix_streams import PosixConnection, StreamCounters
from seashard.shm import MAX_SLOTS

LISTEN_BACKLOG = 4096
ACCEPT_BATCH = 64  # accepts per readiness event, so handing out does not starve the loop
_HANDOFF = "posix.conn"


class PosixServerSocket:
    """This shard's side of a listener: the connections the balancer gave it."""

    def __init__(self, stack: PosixStack, address: SocketAddress) -> None:
        self._stack = stack
        self.local_address = address
        self._pending: deque[tuple[socket.socket, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._aborted = False

    def _deliver(self, sock: socket.socket, slot: int) -> None:
        self._pending.append((sock, slot))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def accept(self) -> AcceptResult:
        while not self._pending:
            if self._aborted:
                raise ConnectionAbortedError(f"listener on port {self.local_address.port} closed")
            self._waiter = self._stack.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        sock, slot = self._pending.popleft()
        conn = await self._stack.adopt(sock, slot)
        return AcceptResult(conn, conn.remote_address)

    def abort_accept(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self._stack._listener_gone(self)
        while self._pending:
            sock, slot = self._pending.popleft()
            sock.close()
            self._stack.counters.add_closed(slot, self._stack.shard.id)
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
        shard = stack.shard
        counters = stack.counters
        self.balancer = Balancer(
            options.lba, shard.count, lambda s: counters.live(slot, s), options.fixed_cpu
        )
        stack.loop.add_reader(sock.fileno(), self._acceptable)

    def _acceptable(self) -> None:
        stack = self.stack
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    smp.log(f"accept on port {self.port}: {exc.strerror}; pausing 100 ms")
                    stack.loop.remove_reader(self.sock.fileno())
                    stack.loop.call_later(0.1, self._resume)
                    return
                raise
            target = self.balancer.pick(addr[1])
            stack.counters.add_assigned(self.slot, target)
            if target == stack.shard.id:
                stack.handoff_received(self.port, self.slot, addr, conn)
            else:
                stack.shard.send(target, _HANDOFF, (self.port, self.slot, addr), [conn.detach()])

    def _resume(self) -> None:
        if self.sock.fileno() >= 0:
            self.stack.loop.add_reader(self.sock.fileno(), self._acceptable)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.stack.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class PosixStack:
    name = "posix"

    def __init__(self, shard: smp.Shard) -> None:
        self.shard = shard
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
            self._kernel[port] = self._bind(address, options)
            address = SocketAddress(address.host, self._kernel[port].port)
            port = address.port
        server = PosixServerSocket(self, address)
        self._listeners[port] = server
        return server

    def _bind(self, address: SocketAddress, options: ListenOptions) -> _KernelListener:
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
        port, slot, addr = payload
        for fd in fds:
            self.handoff_received(port, slot, addr, socket.socket(fileno=fd))

    def handoff_received(
        self, port: int, slot: int, addr: tuple[str, int], sock: socket.socket
    ) -> None:
        server = self._listeners.get(port)
        if server is None:
            sock.close()
            self.counters.add_closed(slot, self.shard.id)
            self.refused_no_listener += 1
            smp.log(
                f"no listener on port {port} on this shard: closed connection from "
                f"{addr[0]}:{addr[1]} (listen on every shard, or run with -c 1)"
            )
            return
        server._deliver(sock, slot)

    async def adopt(self, sock: socket.socket, slot: int | None) -> PosixConnection:
        sock.setblocking(False)
        # Linux lets a SO_REUSEADDR listener bind past a TIME_WAIT socket only if that
        # socket had SO_REUSEADDR too (accepted sockets inherit the listener's flag).
        # Setting it here leaves the choice to the *next* run's --reuse-address alone.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            _, conn = await self.loop.connect_accepted_socket(
                lambda: self._new_connection(slot), sock
            )
        except BaseException:
            sock.close()
            if slot is not None:
                self.counters.add_closed(slot, self.shard.id)
            raise
        return conn

    def _new_connection(self, slot: int | None) -> PosixConnection:
        conn = PosixConnection(self.streams, self._connection_lost, slot)
        self._connections.add(conn)
        self.connections_total += 1
        return conn

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
