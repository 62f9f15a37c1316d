"""The network API apps are written against; the posix and native stacks implement it.

Seastar names where they help (listen_options, socket_address, accept_result,
server_socket, connected_socket); Python idioms elsewhere (async methods,
context managers). Apps import from ``seashard.net`` only.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SocketAddress:
    """An IPv4 address and port; ``str()`` gives ``IP:PORT`` as Seastar prints it."""

    host: str
    port: int

    def __post_init__(self) -> None:
        try:  # inet_pton: strict dotted quad, and cheap (this runs per connection)
            socket.inet_pton(socket.AF_INET, self.host)
        except (OSError, TypeError):
            raise ValueError(f"invalid IPv4 address {self.host!r}") from None
        if not 0 <= self.port <= 65535:
            raise ValueError(f"invalid port {self.port}: must be 0..65535")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def socket_address(host_or_port: str | int, port: int | None = None) -> SocketAddress:
    """``socket_address(1234)`` is 0.0.0.0:1234 (Seastar's ``make_ipv4_address({1234})``)."""
    if port is None:
        if not isinstance(host_or_port, int):
            raise TypeError("socket_address(port) or socket_address(host, port)")
        return SocketAddress("0.0.0.0", host_or_port)
    return SocketAddress(str(host_or_port), port)


class LoadBalancing(enum.StrEnum):
    """How the listening shard picks the shard that owns a new connection."""

    CONNECTION_DISTRIBUTION = "connection_distribution"
    PORT = "port"
    FIXED = "fixed"


@dataclass(slots=True)
class ListenOptions:
    reuse_address: bool = False  # Seastar's default, and the kernel's
    lba: LoadBalancing = LoadBalancing.CONNECTION_DISTRIBUTION
    fixed_cpu: int = 0  # the shard used by LoadBalancing.FIXED


listen_options = ListenOptions


@runtime_checkable
class InputStream(Protocol):
    async def read(self) -> bytes:
        """Some bytes, as soon as any are available; ``b""`` at end of stream."""
        ...


@runtime_checkable
class OutputStream(Protocol):
    async def write(self, data: bytes) -> None:
        """Queue ``data``; returns when there is room to write again (backpressure)."""
        ...

    async def flush(self) -> None:
        """Return once everything written so far has been handed to the stack."""
        ...

    async def close(self) -> None:
        """Flush, then close the connection (the FIN goes out after the data)."""
        ...


@runtime_checkable
class ConnectedSocket(Protocol):
    # read-only: the stacks' connections give them as properties
    @property
    def local_address(self) -> SocketAddress: ...

    @property
    def remote_address(self) -> SocketAddress: ...

    def input(self) -> InputStream: ...

    def output(self) -> OutputStream: ...

    def shutdown_output(self) -> None:
        """Half-close: send FIN after queued data; reading goes on."""
        ...

    async def close(self) -> None:
        """Flush and close; idempotent."""
        ...

    def abort(self) -> None:
        """Close at once, discarding queued data (RST where the stack can)."""
        ...


@dataclass(slots=True)
class AcceptResult:
    connection: ConnectedSocket
    remote_address: SocketAddress


accept_result = AcceptResult


class LazyAcceptResult(AcceptResult):
    """What both stacks' ``accept()`` return: ``remote_address`` is read from the
    connection when the app asks for it, not made per connection (an app such as the
    echo server holds its result for the connection's whole life)."""

    __slots__ = ()

    def __init__(self, connection: ConnectedSocket) -> None:
        self.connection = connection

    @property  # type: ignore[override]
    def remote_address(self) -> SocketAddress:
        return self.connection.remote_address


@runtime_checkable
class ServerSocket(Protocol):
    local_address: SocketAddress

    async def accept(self) -> AcceptResult:
        """The next connection this shard owns; raises ConnectionAbortedError once aborted."""
        ...

    def abort_accept(self) -> None:
        """Stop listening on this shard; pending and later accept() calls raise."""
        ...


@runtime_checkable
class NetworkStack(Protocol):
    """One instance per shard."""

    name: str

    def listen(self, address: SocketAddress, options: ListenOptions | None = None) -> ServerSocket:
        """Listen on this shard. Raises OSError (EADDRINUSE: 'bind: Address already in use')."""
        ...

    async def connect(self, address: SocketAddress) -> ConnectedSocket: ...

    def metrics(self) -> dict[str, Any]:
        """This shard's counters: connections_live, connections_total, bytes_in, bytes_out, ...

        Stacks may add more keys; a dict value is a labelled family, e.g.
        ``{"frames_dropped": {"bad_checksum": 3}}``.
        """
        ...

    def connections(self) -> list[dict[str, Any]]:
        """Live connections: {"remote": "ip:port", "local": "ip:port", "state": "..."}."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop listening, give live connections ``grace`` seconds, then abort the rest."""
        ...


class BindError(OSError):
    """A listen() that cannot bind; ``str()`` is the tutorial's ``bind: <reason>``."""

    address: SocketAddress | None = None  # which one, where a caller bound several

    def __str__(self) -> str:
        return f"bind: {self.strerror}"
