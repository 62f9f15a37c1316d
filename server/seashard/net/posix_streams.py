"""A connected kernel socket behind the seashard stream API, on asyncio's Protocol machinery."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

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

    Lean per connection (issue 11): the addresses are made on first use (an
    accepted connection knows its peer from accept(); ``local_address`` asks the
    kernel only when read), and nothing is created that the connection may never
    need (no close future until someone waits for the close).
    """

    __slots__ = (
        "_counters",
        "_on_lost",
        "_on_made",
        "slot",
        "_loop",
        "_transport",
        "_chunks",
        "_buffered",
        "_eof",
        "_lost",
        "_error",
        "_reading_paused",
        "_writing_paused",
        "_read_waiter",
        "_drain_waiter",
        "_close_waiters",
        "_local",
        "_remote",
        "_nodelay",
        "_adopting",
        "bytes_in",
        "bytes_out",
    )

    def __init__(
        self,
        counters: StreamCounters,
        on_lost: Callable[[PosixConnection], None],
        slot: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        remote: tuple[str, int] | None = None,
        on_made: Callable[[PosixConnection], None] | None = None,
        nodelay: bool = True,
    ) -> None:
        self._counters = counters
        self._on_lost = on_lost
        self._on_made = on_made
        self.slot = slot  # the listener's shared-counter slot (None: we connected out)
        self._loop = loop or asyncio.get_running_loop()
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
        self._close_waiters: list[asyncio.Future[None]] | None = None
        self._local: SocketAddress | None = None
        self._remote: SocketAddress | tuple[str, int] | None = remote
        self._nodelay = nodelay  # set TCP_NODELAY ourselves (uvloop's transports do it)
        self._adopting: Coroutine[Any, Any, Any] | None = None  # the stack's, see posix.py
        self.bytes_in = 0
        self.bytes_out = 0

    # addresses, made when first read

    @property
    def remote_address(self) -> SocketAddress:
        remote = self._remote
        if type(remote) is SocketAddress:
            return remote
        if remote is None and self._transport is not None:
            remote = self._transport.get_extra_info("peername")
        address = _address(remote)
        if address is not _UNKNOWN:
            self._remote = address
        return address

    @property
    def local_address(self) -> SocketAddress:
        if self._local is None:
            if self._transport is None or self._lost:
                return _UNKNOWN
            self._local = _address(self._transport.get_extra_info("sockname"))
        return self._local

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        # Every write is flushed by the apps (echo replies at once): no Nagle delay.
        # uvloop sets it on its own; asyncio's connect_accepted_socket does not.
        if self._nodelay:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(0)  # type: ignore[attr-defined]  # high=0
        if self._on_made is not None:
            self._on_made(self)

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
        if self._read_waiter is not None:
            _wake(self._read_waiter)
        if self._drain_waiter is not None:
            _wake(self._drain_waiter)
        waiters = self._close_waiters
        if waiters is not None:
            self._close_waiters = None
            for fut in waiters:
                _wake(fut)
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
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            raise self._error or BrokenPipeError("write to a closed connection")
        n = len(data)
        self.bytes_out += n
        self._counters.bytes_out += n
        transport.write(data)
        if self._writing_paused:  # the kernel did not take it all: wait (flush, inlined)
            await self._drain()

    async def flush(self) -> None:
        if self._writing_paused:
            await self._drain()
        elif self._lost and self._error is not None:
            raise self._error

    async def _drain(self) -> None:
        while self._writing_paused and not self._lost:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self._lost and self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Flush and close: returns once the kernel has every byte written (the FIN follows).

        With nothing left in the transport's buffer (``write`` waits for the kernel
        to take each write), that is at once, as the native stack's close; else
        once the transport has sent the rest and closed.
        """
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if self._lost or (transport is not None and not transport.get_write_buffer_size()):
            return
        # Each caller waits on a future of its own: cancelling one close() (a timeout
        # around it) leaves the others and the connection alone, as asyncio.shield did.
        fut: asyncio.Future[None] = self._loop.create_future()
        if self._close_waiters is None:
            self._close_waiters = [fut]
        else:
            self._close_waiters.append(fut)
        await fut


def _address(pair: object) -> SocketAddress:
    """A SocketAddress from the kernel's (host, port); _UNKNOWN where there is none."""
    if not pair:
        return _UNKNOWN
    host, port = pair[:2]  # type: ignore[index]
    return SocketAddress(host, port)


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
