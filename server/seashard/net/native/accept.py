"""What a native listener's accept() returns (a module of its own: it subclasses
``AcceptResult``, a plain dataclass, which the compiled modules may not do)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seashard.net.api import AcceptResult, SocketAddress

if TYPE_CHECKING:
    from seashard.net.native.streams import NativeConnection


class NativeAcceptResult(AcceptResult):
    """An AcceptResult whose remote_address is made only if the app reads it (as the
    posix stack's): the echo app holds its result for the whole connection."""

    __slots__ = ()

    def __init__(self, connection: NativeConnection) -> None:
        self.connection = connection

    @property  # type: ignore[override]
    def remote_address(self) -> SocketAddress:
        return self.connection.remote_address
