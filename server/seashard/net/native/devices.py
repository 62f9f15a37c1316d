"""L2 devices the native stack reads and writes whole Ethernet frames on.

Each shard opens its own queue: queue ``i`` of a multiqueue TAP, or socket ``i``
of an AF_PACKET fanout group, so the kernel's flow hash decides which shard
sees a flow, and frames a shard writes keep the flow on its queue.

Offloads (virtio-net, ``wire/vnet.py``): unless opened with ``offload=False``, a
TAP is opened with ``IFF_VNET_HDR`` (``TUNSETVNETHDRSZ`` 10, ``TUNSETOFFLOAD``
CSUM|TSO4) and an AF_PACKET socket gets ``PACKET_VNET_HDR``; what the kernel
accepted is ``offloads``, a subset of:

- ``"csum"``: we may send TCP frames with a partial checksum (the kernel fills it in);
- ``"tso4"``: we may send TCP frames of up to 64 KB with ``gso_size`` = MSS, which
  the kernel cuts into MSS-sized segments;
- ``"gro"``: the kernel may hand us TCP frames of up to 64 KB (merged, or a local
  sender's unsegmented ones), and frames whose checksum needs no check
  (``rx_csum_valid``).

Where the kernel refuses, the device falls back to the plain path (no header,
whole checksummed MTU-sized frames both ways; ``offloads`` empty). All queues of
one TAP must agree (its flags are the device's, not the queue's): every shard
opens with the same ``offload``. A received header that makes no sense is
counted in ``vnet_drops[reason]`` and its frame dropped.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections import Counter, deque
from collections.abc import Callable
from typing import Final

from seashard.net.native.device_api import Device as Device  # re-exported
from seashard.net.native.device_api import DeviceError
from seashard.wire import vnet
from seashard.wire.checksum import Buffer, internet_checksum, pseudo_header_sum
from seashard.wire.errors import MalformedError

# <linux/if_tun.h>
TUNSETIFF: Final = 0x400454CA
TUNSETPERSIST: Final = 0x400454CB
IFF_TAP: Final = 0x0002
IFF_NO_PI: Final = 0x1000
IFF_MULTI_QUEUE: Final = 0x0100
IFF_VNET_HDR: Final = 0x4000
TUNSETOFFLOAD: Final = 0x400454D0
TUNSETVNETHDRSZ: Final = 0x400454D8
TUN_F_CSUM: Final = 0x01
TUN_F_TSO4: Final = 0x02
# <linux/sockios.h>, <linux/if.h>
SIOCGIFFLAGS: Final = 0x8913
SIOCSIFFLAGS: Final = 0x8914
IFF_UP: Final = 0x1
# <linux/if_packet.h>: Python's socket module has none of these.
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_MR_PROMISC: Final = 1
PACKET_AUXDATA: Final = 8
PACKET_VNET_HDR: Final = 15
PACKET_FANOUT: Final = 18
PACKET_IGNORE_OUTGOING: Final = 23
PACKET_FANOUT_HASH: Final = 0
PACKET_OUTGOING: Final = 4
TP_STATUS_CSUMNOTREADY: Final = 0x8
ETH_P_ALL: Final = 0x0003

_MAX_FRAME: Final = 65536 + 64  # a GSO super-frame from a veth peer can exceed the MTU
_AUXDATA: Final = struct.Struct("IIIHHHH")  # struct tpacket_auxdata

CSUM: Final = "csum"
TSO4: Final = "tso4"
GRO: Final = "gro"
ALL_OFFLOADS: Final = frozenset((CSUM, TSO4, GRO))
NO_OFFLOADS: frozenset[str] = frozenset()


def offloads_label(offloads: frozenset[str]) -> str:
    """``"csum,tso4,gro"`` (in that order), or "" for the plain path."""
    return ",".join(o for o in (CSUM, TSO4, GRO) if o in offloads)


class _VnetRx:
    """What both kernel devices share: receive buffers, the header check, send_parts."""

    def __init__(self) -> None:
        self._hdr = bytearray(vnet.VNET_HDR_LEN)
        self._buf = bytearray(_MAX_FRAME)
        self._bufs = [self._hdr, self._buf]
        # recv() hands out views of it, valid until the next recv(): the stack copies
        # only what it keeps (a payload), so a 64 KB GRO frame is not copied whole.
        self._view = memoryview(self._buf)
        self.vnet_drops: Counter[str] = Counter()  # received headers that made no sense
        self.stats: Counter[str] = Counter()
        # The last valid header without GSO, its csum_ok, and the shortest frame it is
        # valid for: a peer's frames mostly repeat one header (e.g. NEEDS_CSUM at the
        # same offsets), and parsing it costs more than the rest of the read.
        self._seen = vnet.PLAIN
        self._seen_min = 0
        self._seen_ok = False
        # The last GSO header and its parse: a GRO flow repeats it too, but what
        # validate() checks of a GSO frame depends on the frame, so that still runs.
        self._seen_gso = vnet.PLAIN
        self._seen_gso_h = vnet.VnetHeader()

    def _take(self, n: int) -> memoryview | None:
        """The frame of ``n`` bytes just read after the header (a view of the receive
        buffer), or None if dropped."""
        size = n - vnet.VNET_HDR_LEN
        if size < 0:
            self.vnet_drops["truncated"] += 1
            return None
        frame = self._view[:size]
        hdr = self._hdr
        if hdr == vnet.PLAIN:
            self.rx_csum_valid = False
            return frame
        if hdr == self._seen and size >= self._seen_min:
            # Without GSO, what validate() checks of the frame is its length only
            # (VnetHeader.shortest_frame).
            self.rx_csum_valid = self._seen_ok
            return frame
        try:
            h = self._seen_gso_h if hdr == self._seen_gso else vnet.VnetHeader.parse(hdr)
            h.validate(frame)
        except MalformedError as exc:
            self.vnet_drops[exc.reason] += 1
            return None
        self.rx_csum_valid = h.csum_ok
        if h.gso_type:
            self.stats["rx_gso_frames"] += 1
            if h is not self._seen_gso_h:
                self._seen_gso = bytes(hdr)
                self._seen_gso_h = h
        else:
            self._seen = bytes(hdr)
            self._seen_ok = h.csum_ok
            self._seen_min = h.shortest_frame()
        return frame

    rx_csum_valid = False
    _vnet = False

    def send(self, frame: Buffer, gso_size: int = 0, csum_partial: bool = False) -> bool:
        raise NotImplementedError  # each device's own

    def _send_vector(self, parts: tuple[Buffer, Buffer, Buffer]) -> None:
        raise NotImplementedError  # each device's own: writev, sendmsg

    def send_parts(
        self, head: Buffer, tail: Buffer, gso_size: int = 0, csum_partial: bool = False
    ) -> bool:
        """``send(head + tail)``, with ``head`` holding every header: one writev (or
        sendmsg) of the vnet header and both parts, so ``tail`` (a payload) is not
        copied to join them. The plain path's software offload needs the frame whole."""
        if not self._vnet:
            return self.send(bytes(head) + tail, gso_size, csum_partial)
        try:
            self._send_vector((vnet.header_for(head, gso_size, csum_partial), head, tail))
        except (OSError, ValueError):  # as send(): the queue is full, the link down
            return False
        if gso_size:
            self.stats["tx_gso_frames"] += 1
        return True


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


class TapDevice(_VnetRx):
    """One queue of a (multiqueue) TAP device: created if absent, attached if present.

    Every ``TapDevice`` opened on the same name adds a queue; the kernel picks a
    queue per flow by its hash, and remembers which queue last wrote a flow.
    With ``offload`` (the default) the queue speaks virtio-net headers where the
    kernel allows it (``offloads``).
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
        offload: bool = True,
    ) -> None:
        if not 0 < len(name.encode()) < 16:
            raise ValueError(f"tap device name {name!r} must be 1..15 bytes")
        super().__init__()
        self.name = name
        self.queue_index = queue_index
        self.queues = queues
        self.created = not os.path.exists(f"/sys/class/net/{name}")
        self.offloads: frozenset[str] = NO_OFFLOADS
        self._vnet = False
        self._fd = -1
        flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        if offload:
            try:
                self._open(flags | IFF_VNET_HDR, persist)
                self._negotiate()
            except OSError:
                self.close()  # refused: the plain path
                self.offloads, self._vnet = NO_OFFLOADS, False
        if self._fd < 0:
            self._open(flags, persist, user_errors=True)
            try:  # a persistent TAP keeps the offloads of its last user: none on this path
                _tun_ioctl(self._fd, TUNSETOFFLOAD, 0)
            except OSError:
                pass
        if up:
            try:
                _set_up(name)
            except OSError as exc:
                self.close()
                raise _device_error("tap", name, exc, "need CAP_NET_ADMIN") from None

    def _open(self, flags: int, persist: bool, user_errors: bool = False) -> None:
        name = self.name
        hint = "need CAP_NET_ADMIN and /dev/net/tun"
        try:
            self._fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _device_error("tap", name, exc, hint) from None
        try:
            fcntl.ioctl(self._fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
            if persist:
                fcntl.ioctl(self._fd, TUNSETPERSIST, 1)
        except OSError as exc:
            os.close(self._fd)
            self._fd = -1
            if not user_errors:
                raise
            if exc.errno == errno.EINVAL:
                hint = "does it exist as a TUN, or without multi_queue?"
            raise _device_error("tap", name, exc, hint) from None

    def _negotiate(self) -> None:
        """With IFF_VNET_HDR on: the header size, then what the kernel may hand us."""
        _tun_ioctl(self._fd, TUNSETVNETHDRSZ, vnet.VNET_HDR_LEN)
        self._vnet = True
        try:
            _tun_ioctl(self._fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
            self.offloads = ALL_OFFLOADS
        except OSError:  # we may still send with offloads; we receive plain frames
            _tun_ioctl(self._fd, TUNSETOFFLOAD, 0)
            self.offloads = frozenset((CSUM, TSO4))

    def fileno(self) -> int:
        return self._fd

    def recv(self) -> Buffer | None:
        if not self._vnet:
            try:
                return os.read(self._fd, _MAX_FRAME)
            except BlockingIOError:
                return None
        while True:
            try:
                n = os.readv(self._fd, self._bufs)
            except BlockingIOError:
                return None
            frame = self._take(n)
            if frame is not None:
                return frame

    def send(self, frame: Buffer, gso_size: int = 0, csum_partial: bool = False) -> bool:
        try:
            if not self._vnet:
                if gso_size or csum_partial:
                    return _send_all(
                        self._write, vnet.software_offload(frame, gso_size, csum_partial)
                    )
                os.write(self._fd, frame)
            else:
                os.writev(self._fd, (vnet.header_for(frame, gso_size, csum_partial), frame))
                if gso_size:
                    self.stats["tx_gso_frames"] += 1
        except (OSError, ValueError):  # EAGAIN when full, EIO while the link is down
            return False
        return True

    def _send_vector(self, parts: tuple[Buffer, Buffer, Buffer]) -> None:
        os.writev(self._fd, parts)

    def _write(self, frame: Buffer) -> None:
        os.write(self._fd, frame)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        return f"TapDevice({self.name!r}, queue {self.queue_index} of {self.queues})"


def _tun_ioctl_call(fd: int, request: int, value: int) -> None:
    """TUNSETOFFLOAD (an int by value) or TUNSETVNETHDRSZ (a pointer to an int)."""
    if request == TUNSETVNETHDRSZ:
        fcntl.ioctl(fd, request, struct.pack("i", value))
    else:
        fcntl.ioctl(fd, request, value)


# The kernel calls tests replace to make the kernel refuse (monkeypatch.setattr(devices,
# "_tun_ioctl", ...)): module variables, not functions, so that compiled code, which
# calls a function of its own module directly, looks them up at each call (at open only).
_tun_ioctl: Callable[[int, int, int], None] = _tun_ioctl_call


def _send_all(write: Callable[[bytes], object], frames: list[bytes]) -> bool:
    for frame in frames:
        write(frame)
    return True


class PacketDevice(_VnetRx):
    """An AF_PACKET socket on an interface (e.g. one end of a veth), in a fanout group.

    Every socket of the group (one per shard) gets a share of the flows, chosen by
    the kernel's symmetric flow hash (PACKET_FANOUT_HASH). Frames we send
    ourselves are not looped back. On the plain path, checksums left for offload
    (the peer's veth hands over CHECKSUM_PARTIAL frames) are completed here, as a
    NIC would; with ``PACKET_VNET_HDR`` (``offload``) the header says so instead.
    """

    def __init__(
        self,
        ifname: str,
        queue_index: int = 0,
        queues: int = 1,
        *,
        fanout_group: int | None = None,
        promiscuous: bool = True,
        offload: bool = True,
    ) -> None:
        super().__init__()
        self.name = ifname
        self.queue_index = queue_index
        self.queues = queues
        self.offloads: frozenset[str] = NO_OFFLOADS
        self._vnet = False
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
        if offload:
            try:  # before bind, so no frame is ever queued without its header
                _packet_setsockopt(self._sock, PACKET_VNET_HDR, 1)
                self._vnet = True
                self.offloads = ALL_OFFLOADS
            except OSError:
                pass  # refused: the plain path
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

    def recv(self) -> Buffer | None:
        if self._vnet:
            while True:
                try:
                    n, _anc, _flags, addr = self._sock.recvmsg_into(self._bufs)
                except BlockingIOError:
                    return None
                if addr[2] == PACKET_OUTGOING:
                    continue
                view = self._take(n)
                if view is not None:
                    return view
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

    def send(self, frame: Buffer, gso_size: int = 0, csum_partial: bool = False) -> bool:
        try:
            if self._vnet:
                self._sock.sendmsg((vnet.header_for(frame, gso_size, csum_partial), frame))
                if gso_size:
                    self.stats["tx_gso_frames"] += 1
            elif gso_size or csum_partial:
                return _send_all(
                    self._sock.send, vnet.software_offload(frame, gso_size, csum_partial)
                )
            else:
                self._sock.send(frame)
        except (OSError, ValueError):  # ENOBUFS/EAGAIN when the queue is full, ENETDOWN
            return False
        return True

    def _send_vector(self, parts: tuple[Buffer, Buffer, Buffer]) -> None:
        self._sock.sendmsg(parts)

    def close(self) -> None:
        self._sock.close()

    def __repr__(self) -> str:
        return f"PacketDevice({self.name!r}, queue {self.queue_index} of {self.queues})"


def _packet_setsockopt_call(sock: socket.socket, option: int, value: int) -> None:
    """A SOL_PACKET option."""
    sock.setsockopt(SOL_PACKET, option, value)


_packet_setsockopt: Callable[[socket.socket, int, int], None] = _packet_setsockopt_call  # as above


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

    With a ``peer``, sent frames are also injected into the peer (a virtual cable),
    as the kernel would pass them: whole with their offloads when the peer has
    "gro", else cut up and checksummed (``software_offload``).  ``offloads`` is
    settable; ``sent_info`` records ``(frame, gso_size, csum_partial)`` of each send.
    """

    def __init__(
        self,
        name: str = "mem0",
        *,
        peer: MemoryDevice | None = None,
        offloads: frozenset[str] = NO_OFFLOADS,
    ) -> None:
        self.name = name
        self.queue_index = 0
        self.queues = 1
        self.peer = peer
        self.offloads = frozenset(offloads)
        self.rx_csum_valid = False
        self.sent: list[Buffer] = []  # as sent: a bytearray from the TCP layer
        self.sent_info: list[tuple[Buffer, int, bool]] = []
        self._inbox: deque[tuple[bytes, bool]] = deque()
        self.vnet_drops: Counter[str] = Counter()
        self.closed = False

    def fileno(self) -> None:
        return None

    def inject(self, frame: Buffer, csum_valid: bool = False) -> None:
        """Queue ``frame`` for recv(); ``csum_valid``: its rx_csum_valid."""
        self._inbox.append((bytes(frame), csum_valid))

    def inject_vnet(self, data: bytes) -> None:
        """Queue a buffer as a TAP with IFF_VNET_HDR hands it over: header, then frame.
        A header that makes no sense is counted in ``vnet_drops`` and dropped."""
        try:
            hdr, frame = vnet.split(data)
        except MalformedError as exc:
            self.vnet_drops[exc.reason] += 1
            return
        self.inject(bytes(frame), hdr.csum_ok)

    def recv(self) -> bytes | None:
        if not self._inbox:
            return None
        frame, self.rx_csum_valid = self._inbox.popleft()
        return frame

    def send(self, frame: Buffer, gso_size: int = 0, csum_partial: bool = False) -> bool:
        self.sent.append(frame)
        self.sent_info.append((frame, gso_size, csum_partial))
        peer = self.peer
        if peer is not None:
            if GRO in peer.offloads:
                peer.inject(frame, csum_partial)
            elif not gso_size and not csum_partial:
                peer.inject(frame)  # software_offload's plain case: the frame as it is
            else:
                for f in vnet.software_offload(frame, gso_size, csum_partial):
                    peer.inject(f)
        return True

    def take_sent(self) -> list[Buffer]:
        sent, self.sent = self.sent, []
        self.sent_info = []
        return sent

    def take_sent_info(self) -> list[tuple[Buffer, int, bool]]:
        info, self.sent_info = self.sent_info, []
        self.sent = []
        return info

    def close(self) -> None:
        self.closed = True


def memory_pair(a: str = "mem0", b: str = "mem1") -> tuple[MemoryDevice, MemoryDevice]:
    """Two memory devices wired to each other."""
    first = MemoryDevice(a)
    second = MemoryDevice(b, peer=first)
    first.peer = second
    return first, second
