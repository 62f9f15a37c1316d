"""L2 devices the native stack reads and writes whole Ethernet frames on.

Each shard opens its own queue: queue ``i`` of a multiqueue TAP, or socket ``i``
of an AF_PACKET fanout group, so the kernel's flow hash decides which shard
sees a flow, and frames a shard writes keep the flow on its queue.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections import deque
from typing import Protocol, runtime_checkable

from seashard.wire.checksum import internet_checksum, pseudo_header_sum

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
# <linux/sockios.h>, <linux/if.h>
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
# <linux/if_packet.h>: Python's socket module has none of these.
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
PACKET_FANOUT_HASH = 0
PACKET_OUTGOING = 4
TP_STATUS_CSUMNOTREADY = 0x8
ETH_P_ALL = 0x0003

_MAX_FRAME = 65536 + 64  # a GSO super-frame from a veth peer can exceed the MTU
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata


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

    def fileno(self) -> int | None:
        """The fd to watch for readability, or None for in-memory devices."""
        ...

    def recv(self) -> bytes | None:
        """The next received frame, or None when none is waiting (never blocks)."""
        ...

    def send(self, frame: bytes) -> bool:
        """Send one frame; False when it was dropped (device busy or down)."""
        ...

    def close(self) -> None: ...


def _set_up(name: str) -> None:
    """Bring the interface up (SIOCSIFFLAGS), as ``ip link set NAME up`` does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


def _device_error(kind: str, name: str, exc: OSError, hint: str) -> DeviceError:
    reason = exc.strerror or os.strerror(exc.errno or 0)
    return DeviceError(exc.errno, f"{kind} device {name}: {reason} ({hint})")


class TapDevice:
    """One queue of a (multiqueue) TAP device: created if absent, attached if present.

    Every ``TapDevice`` opened on the same name adds a queue; the kernel picks a
    queue per flow by its hash, and remembers which queue last wrote a flow.
    """

    def __init__(
        self,
        name: str,
        queue_index: int = 0,
        queues: int = 1,
        *,
        multi_queue: bool = True,
        up: bool = True,
        persist: bool = False,
    ) -> None:
        if not 0 < len(name.encode()) < 16:
            raise ValueError(f"tap device name {name!r} must be 1..15 bytes")
        self.name = name
        self.queue_index = queue_index
        self.queues = queues
        self.created = not os.path.exists(f"/sys/class/net/{name}")
        flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        try:
            self._fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _device_error("tap", name, exc, "need CAP_NET_ADMIN and /dev/net/tun") from None
        try:
            fcntl.ioctl(self._fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
            if persist:
                fcntl.ioctl(self._fd, TUNSETPERSIST, 1)
            if up:
                _set_up(name)
        except OSError as exc:
            os.close(self._fd)
            hint = "need CAP_NET_ADMIN and /dev/net/tun"
            if exc.errno == errno.EINVAL:
                hint = "does it exist as a TUN, or without multi_queue?"
            raise _device_error("tap", name, exc, hint) from None

    def fileno(self) -> int:
        return self._fd

    def recv(self) -> bytes | None:
        try:
            return os.read(self._fd, _MAX_FRAME)
        except BlockingIOError:
            return None

    def send(self, frame: bytes) -> bool:
        try:
            os.write(self._fd, frame)
        except OSError:  # EAGAIN when full, EIO while the link is down
            return False
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        return f"TapDevice({self.name!r}, queue {self.queue_index} of {self.queues})"


class PacketDevice:
    """An AF_PACKET socket on an interface (e.g. one end of a veth), in a fanout group.

    Every socket of the group (one per shard) gets a share of the flows, chosen by
    the kernel's symmetric flow hash (PACKET_FANOUT_HASH). Frames we send
    ourselves are not looped back. Checksums left for offload (the peer's veth
    hands over CHECKSUM_PARTIAL frames) are completed here, as a NIC would.
    """

    def __init__(
        self,
        ifname: str,
        queue_index: int = 0,
        queues: int = 1,
        *,
        fanout_group: int | None = None,
        promiscuous: bool = True,
    ) -> None:
        self.name = ifname
        self.queue_index = queue_index
        self.queues = queues
        hint = "need CAP_NET_RAW and an existing interface"
        try:
            ifindex = socket.if_nametoindex(ifname)
        except OSError as exc:
            exc.strerror = exc.strerror or "No such device"
            raise _device_error("packet", ifname, exc, hint) from None
        self.fanout_group = (ifindex if fanout_group is None else fanout_group) & 0xFFFF
        try:
            # Protocol 0 receives nothing until bind(), so no other interface's frames sneak in.
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise _device_error("packet", ifname, exc, hint) from None
        try:
            self._sock.bind((ifname, ETH_P_ALL))
            self._sock.setblocking(False)
            self._sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:  # Linux >= 4.20; without it recv() skips PACKET_OUTGOING frames itself
                self._sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass
            self._sock.setsockopt(
                SOL_PACKET, PACKET_FANOUT, self.fanout_group | PACKET_FANOUT_HASH << 16
            )
            if promiscuous:  # our MAC is not the interface's; dropped with the socket
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                self._sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            self._sock.close()
            raise _device_error("packet", ifname, exc, hint) from None
        self._ancbufsize = socket.CMSG_SPACE(_AUXDATA.size)
        self.checksums_completed = 0  # frames whose L4 checksum the sender left to offload

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self) -> bytes | None:
        while True:
            try:
                frame, ancdata, _flags, addr = self._sock.recvmsg(_MAX_FRAME, self._ancbufsize)
            except BlockingIOError:
                return None
            if addr[2] == PACKET_OUTGOING:
                continue
            if _checksum_not_ready(ancdata):
                frame = complete_checksum(frame)
                self.checksums_completed += 1
            return frame

    def send(self, frame: bytes) -> bool:
        try:
            self._sock.send(frame)
        except OSError:  # ENOBUFS/EAGAIN when the queue is full, ENETDOWN
            return False
        return True

    def close(self) -> None:
        self._sock.close()

    def __repr__(self) -> str:
        return f"PacketDevice({self.name!r}, queue {self.queue_index} of {self.queues})"


def _checksum_not_ready(ancdata: list[tuple[int, int, bytes]]) -> bool:
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
            return bool(_AUXDATA.unpack_from(data)[0] & TP_STATUS_CSUMNOTREADY)
    return False


def complete_checksum(frame: bytes) -> bytes:
    """Fill in the TCP/UDP checksum of an IPv4 frame whose checksum was left to offload."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    total = int.from_bytes(frame[16:18], "big")
    proto = frame[23]
    start, end = 14 + ihl, 14 + total
    offset = {6: 16, 17: 6}.get(proto)
    if offset is None or ihl < 20 or end > len(frame) or end - start < offset + 2:
        return frame
    out = bytearray(frame)
    out[start + offset : start + offset + 2] = b"\x00\x00"
    pseudo = pseudo_header_sum(frame[26:30], frame[30:34], proto, end - start)
    csum = internet_checksum(memoryview(out)[start:end], pseudo)
    if proto == 17 and csum == 0:
        csum = 0xFFFF  # UDP: zero means "no checksum"
    out[start + offset : start + offset + 2] = csum.to_bytes(2, "big")
    return bytes(out)


class MemoryDevice:
    """An in-memory device for tests: ``inject`` frames to receive, ``take_sent`` what was sent.

    With a ``peer``, sent frames are also injected into the peer (a virtual cable).
    """

    def __init__(self, name: str = "mem0", *, peer: MemoryDevice | None = None) -> None:
        self.name = name
        self.queue_index = 0
        self.queues = 1
        self.peer = peer
        self.sent: list[bytes] = []
        self._inbox: deque[bytes] = deque()
        self.closed = False

    def fileno(self) -> None:
        return None

    def inject(self, frame: bytes) -> None:
        self._inbox.append(bytes(frame))

    def recv(self) -> bytes | None:
        return self._inbox.popleft() if self._inbox else None

    def send(self, frame: bytes) -> bool:
        self.sent.append(frame)
        if self.peer is not None:
            self.peer.inject(frame)
        return True

    def take_sent(self) -> list[bytes]:
        sent, self.sent = self.sent, []
        return sent

    def close(self) -> None:
        self.closed = True


def memory_pair(a: str = "mem0", b: str = "mem1") -> tuple[MemoryDevice, MemoryDevice]:
    """Two memory devices wired to each other."""
    first = MemoryDevice(a)
    second = MemoryDevice(b, peer=first)
    first.peer = second
    return first, second
