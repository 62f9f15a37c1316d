"""A connected kernel socket behind the seashard stream API, on asyncio's Protocol machinery."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable

from seashard.net.api import SocketAddress

READ_HIGH_WATER = 256 * 1024  # stop reading from the kernel past this much unread data
READ_LOW_WATER = 64 * 1024

# Linux tcp_states.h, as TCP_INFO's first byte reports them.
_TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}


_UNKNOWN = SocketAddress("0.0.0.0", 0)


class StreamCounters:
    """Per-shard byte counters shared by every connection of a stack."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0


class PosixConnection(asyncio.Protocol):
    """One connection: the asyncio protocol, its input stream and its output stream at once.

    ``write`` returns once the kernel has taken everything (the transport's
    write buffer limit is 0), so ``flush`` only has to wait for that too.
    """

    def __init__(
        self,
        counters: StreamCounters,
        on_lost: Callable[[PosixConnection], None],
        slot: int | None = None,
    ) -> None:
        self._counters = counters
        self._on_lost = on_lost
        self.slot = slot  # the listener's shared-counter slot (None: we connected out)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self.local_address = self.remote_address = _UNKNOWN
        self.bytes_in = 0
        self.bytes_out = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        # Every write is flushed by the apps (echo replies at once): no Nagle delay.
        # uvloop sets it on its own; asyncio's connect_accepted_socket does not.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=0)
        local = transport.get_extra_info("sockname")
        remote = transport.get_extra_info("peername")
        if local:
            self.local_address = SocketAddress(local[0], local[1])
        if remote:
            self.remote_address = SocketAddress(remote[0], remote[1])

    def data_received(self, data: bytes) -> None:
        n = len(data)
        self.bytes_in += n
        self._counters.bytes_in += n
        self._chunks.append(data)
        self._buffered += n
        if self._buffered > READ_HIGH_WATER and not self._reading_paused and self._transport:
            self._reading_paused = True
            self._transport.pause_reading()
        _wake(self._read_waiter)

    def eof_received(self) -> bool:
        self._eof = True
        _wake(self._read_waiter)
        return True  # keep our side open: the app may still write (half-close)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drain_waiter)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        _wake(self._read_waiter)
        _wake(self._drain_waiter)
        if not self._closed.done():
            self._closed.set_result(None)
        self._on_lost(self)

    # connected_socket

    def input(self) -> PosixConnection:
        return self

    def output(self) -> PosixConnection:
        return self

    def shutdown_output(self) -> None:
        if self._transport is not None and not self._lost and self._transport.can_write_eof():
            self._transport.write_eof()

    def abort(self) -> None:
        if self._transport is not None and not self._lost:
            self._transport.abort()

    @property
    def is_closed(self) -> bool:
        return self._lost

    def tcp_state(self) -> str:
        """The kernel's own view of this connection (TCP_INFO)."""
        if self._transport is None or self._lost:
            return "CLOSED"
        sock = self._transport.get_extra_info("socket")
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except (OSError, AttributeError):
            return "UNKNOWN"
        return _TCP_STATES.get(struct.unpack_from("B", info)[0], "UNKNOWN")

    # input_stream

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            if self._lost:
                if self._error is not None:
                    raise self._error
                return b""
            self._read_waiter = self._loop.create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= READ_LOW_WATER and self._transport:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    # output_stream

    async def write(self, data: bytes) -> None:
        if self._lost or self._transport is None or self._transport.is_closing():
            raise self._error or BrokenPipeError("write to a closed connection")
        n = len(data)
        self.bytes_out += n
        self._counters.bytes_out += n
        self._transport.write(data)
        await self.flush()

    async def flush(self) -> None:
        while self._writing_paused and not self._lost:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self._lost and self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Flush and close (asyncio sends what is buffered before the FIN)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        await asyncio.shield(self._closed)


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
