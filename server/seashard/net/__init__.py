"""The network API apps use: ``listen``, ``connect`` and the types in ``api``.

Each shard has one stack (posix or native), installed by the runtime; these
functions use the current shard's.
"""

from __future__ import annotations

from seashard.net.api import (
    AcceptResult,
    BindError,
    ConnectedSocket,
    InputStream,
    ListenOptions,
    LoadBalancing,
    NetworkStack,
    OutputStream,
    ServerSocket,
    SocketAddress,
    accept_result,
    listen_options,
    socket_address,
)
from seashard.net.stacks import STACKS, OptionError, StackType

_stack: NetworkStack | None = None


def set_stack(stack: NetworkStack | None) -> None:
    """Install this shard's stack (the runtime does this at shard start)."""
    global _stack
    _stack = stack


def stack() -> NetworkStack:
    if _stack is None:
        raise RuntimeError("no network stack on this shard: run inside `seashard serve`/`load`")
    return _stack


def listen(address: SocketAddress, options: ListenOptions | None = None) -> ServerSocket:
    """Listen on ``address`` on this shard (Seastar's ``seastar::listen``)."""
    return stack().listen(address, options)


async def connect(address: SocketAddress) -> ConnectedSocket:
    """Open a connection owned by this shard."""
    return await stack().connect(address)


__all__ = [
    "AcceptResult",
    "BindError",
    "ConnectedSocket",
    "InputStream",
    "ListenOptions",
    "LoadBalancing",
    "NetworkStack",
    "OptionError",
    "OutputStream",
    "ServerSocket",
    "STACKS",
    "SocketAddress",
    "StackType",
    "accept_result",
    "connect",
    "listen",
    "listen_options",
    "set_stack",
    "socket_address",
    "stack",
]
