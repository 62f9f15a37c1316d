"""A native TCP connection behind the seashard stream API.

The sans-IO machine (seashard.tcp.Connection) holds the state; this object is
the app's handle: ``read`` waits for data, ``write`` waits for send-buffer room
(the peer's window drains it), ``close`` queues the FIN after the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from seashard.net.api import SocketAddress
from seashard.tcp.connection import Connection, State, TcpError, TcpStateError

if TYPE_CHECKING:
    from seashard.net.native.tcp_layer import TcpLayer

FlowKey = tuple[str, int, int]  # remote ip, remote port, local port

# A read returns at most this much, in whole received chunks (more when one chunk is
# larger): a 64 KB GRO segment reaches the application uncopied (Connection.recv_some).
READ_MAX: Final = 64 * 1024

# What the app sees for each way a connection failed (anything else: BrokenPipeError).
_EXCEPTIONS: dict[TcpError, type[OSError]] = {
    TcpError.RESET: ConnectionResetError,
    TcpError.REFUSED: ConnectionResetError,
    TcpError.TIMED_OUT: TimeoutError,
}


class NativeConnection:
    # A shard may hold 50,000 of these idle: slots, no __dict__ (add new attributes here).
    __slots__ = (
        "layer",
        "tcp",
        "local_address",
        "key",
        "on_established",
        "app_closed",
        "timer_when",
        "_read_waiter",
        "_write_waiter",
        "_open_waiter",
        "bytes_in",
        "bytes_out",
        "segments_in",
    )

    def __init__(
        self,
        layer: TcpLayer,
        tcp: Connection,
        local: SocketAddress,
        remote: SocketAddress,
        on_established: Callable[[NativeConnection], None] | None = None,
    ) -> None:
        self.layer = layer
        self.tcp = tcp
        self.local_address = local
        # the remote address is the key's: made when asked (an idle connection holds none)
        self.key: FlowKey = (remote.host, remote.port, local.port)
        self.on_established = on_established
        self.app_closed = False  # the app is done reading: discard what still arrives
        self.timer_when: float | None = None  # its earliest entry in the layer's timer heap
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._open_waiter: asyncio.Future[None] | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.segments_in = 0  # segments the layer handed to this connection (admin table)

    @property
    def remote_address(self) -> SocketAddress:
        host, port, _ = self.key
        return SocketAddress(host, port)

    # called by the layer after every event on this connection

    def wake(self) -> None:
        tcp = self.tcp
        if self.on_established is not None and tcp.was_established:
            callback, self.on_established = self.on_established, None
            callback(self)
        fut = self._read_waiter
        if fut is not None and not fut.done():
            fut.set_result(None)
        fut = self._write_waiter
        if fut is not None and not fut.done():
            fut.set_result(None)
        fut = self._open_waiter
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _wait(self, attr: str) -> None:
        fut = self.layer.loop.create_future()
        setattr(self, attr, fut)
        try:
            await fut
        finally:
            setattr(self, attr, None)

    async def wait_established(self) -> None:
        while not self.tcp.was_established:
            if self.tcp.is_closed:
                err = self.tcp.error
                if err is TcpError.TIMED_OUT:
                    raise TimeoutError(str(err))
                raise ConnectionRefusedError(str(err or TcpError.REFUSED))
            await self._wait("_open_waiter")

    def _error(self) -> OSError:
        err = self.tcp.error or TcpError.CLOSED
        return _EXCEPTIONS.get(err, BrokenPipeError)(str(err))

    # connected_socket

    def input(self) -> NativeConnection:
        return self

    def output(self) -> NativeConnection:
        return self

    @property
    def state(self) -> str:
        return self.tcp.state.name

    def shutdown_output(self) -> None:
        self.tcp.close(self.layer.now())
        self.layer.kick(self)

    def abort(self) -> None:
        self.app_closed = True
        self.tcp.abort(self.layer.now())
        self.layer.kick(self)

    # input_stream

    async def read(self) -> bytes:
        tcp = self.tcp
        layer = self.layer
        while True:
            if tcp.unread:
                data = tcp.recv_some(READ_MAX, layer.loop.time())
                n = len(data)
                self.bytes_in += n
                layer.stats["bytes_in"] += n
                if self.app_closed:
                    layer.kick(self)
                elif tcp.output_pending:
                    # An ACK or window update is due: sent once this step is done, so
                    # that what the application writes next carries it.
                    layer.kick_soon(self)
                # (else nothing to send, and a read moves no deadline earlier)
                return data
            if tcp.at_eof:
                return b""
            state = tcp.state
            if state is State.CLOSED or state is State.TIME_WAIT:
                if tcp.error:
                    raise self._error()
                return b""
            # (_wait, written out: one future per wait, none when data is there)
            fut = self._read_waiter = layer.loop.create_future()
            try:
                await fut
            finally:
                self._read_waiter = None

    # output_stream

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        layer = self.layer
        now = layer.loop.time()
        try:
            n = self.tcp.send(data, now)
        except TcpStateError:
            raise self._error() from None
        if n:
            self.bytes_out += n
            layer.stats["bytes_out"] += n
            layer.kick(self, now)
            if n == len(data):
                return  # the common case: it all fit in the send buffer
        view = memoryview(data)[n:]
        while view:
            await self._wait("_write_waiter")
            try:
                n = self.tcp.send(view, self.layer.now())
            except TcpStateError:
                raise self._error() from None
            if n:
                self.bytes_out += n
                self.layer.stats["bytes_out"] += n
                view = view[n:]
                self.layer.kick(self)

    async def flush(self) -> None:
        """Everything written is in the TCP send buffer already; surface a dead connection."""
        if self.tcp.is_closed and self.tcp.error:
            raise self._error()

    async def close(self) -> None:
        if not self.app_closed:
            self.app_closed = True
            self.tcp.close(self.layer.now())
            self.layer.kick(self)
