"""What a device is (the ``Device`` protocol) and the error one that cannot be opened
raises, beside ``devices.py``: that module is compiled (the accelerator), and a compiled
module can neither define a runtime-checkable protocol nor subclass a builtin type
such as OSError.  ``devices`` re-exports both."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from seashard.wire.checksum import Buffer


class DeviceError(OSError):
    """A device could not be opened; ``str()`` is a one-line message for the user."""

    def __str__(self) -> str:
        return str(self.strerror)


@runtime_checkable
class Device(Protocol):
    """One queue of an L2 device, read and written a whole Ethernet frame at a time."""

    name: str
    queues: int  # queues (or fanout sockets) the device is shared by
    queue_index: int  # which of them this one is
    offloads: frozenset[str]  # negotiated at open: a subset of ALL_OFFLOADS; empty = plain
    # The frame the last recv() returned needs no L4 checksum check (DATA_VALID,
    # or NEEDS_CSUM from a local sender).
    rx_csum_valid: bool

    def fileno(self) -> int | None:
        """The fd to watch for readability, or None for in-memory devices."""
        ...

    def recv(self) -> Buffer | None:
        """The next received frame, or None when none is waiting (never blocks).

        It may be a view of the device's own buffer, valid until the next recv():
        a receiver copies what it keeps."""
        ...

    def send(self, frame: Buffer, gso_size: int = 0, csum_partial: bool = False) -> bool:
        """Send one frame; False when it was dropped (device busy or down).

        ``gso_size`` > 0: an IPv4 TCP frame whose payload exceeds it, to be cut into
        segments of that size ("tso4").  ``csum_partial``: its TCP checksum field
        holds the folded pseudo-header sum, for the device to complete ("csum")."""
        ...

    def close(self) -> None: ...
