"""Send and receive buffers.

``SendBuffer`` keeps every byte the application handed over and the peer has not
acknowledged yet (bytes in flight and bytes not yet sent), so retransmission can
slice any range out of it.  ``RecvBuffer`` keeps in-order data the application
has not read, as a list of chunks so that reading a whole segment costs no copy.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RecvBuffer", "SendBuffer"]


_EMPTY: Final = b""  # an empty buffer holds no bytearray (an idle connection's is empty)


class SendBuffer:
    __slots__ = ("_buf", "capacity")

    def __init__(self, capacity: int) -> None:
        self._buf: bytearray | bytes = _EMPTY
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def space(self) -> int:
        return max(0, self.capacity - len(self._buf))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append as much of ``data`` as fits; return how many bytes were taken."""
        n = min(len(data), self.capacity - len(self._buf))
        if n <= 0:
            return 0
        part = data if n == len(data) else data[:n]
        if self._buf:
            self._buf += part  # a bytearray: appended in place
        else:
            self._buf = bytearray(part)
        return n

    def peek(self, offset: int, n: int) -> bytes:
        """Bytes ``[offset, offset + n)`` (from the oldest unacknowledged byte)."""
        buf = self._buf
        if offset == 0 and n >= len(buf):
            return bytes(buf)  # all of it (a reply that fits in one segment): one copy
        with memoryview(buf) as mv:
            return mv[offset : offset + n].tobytes()

    def consume(self, n: int) -> None:
        """Drop ``n`` acknowledged bytes from the front (O(1) for a bytearray)."""
        if n > 0:
            buf = self._buf
            if n >= len(buf):
                self._buf = _EMPTY
            else:
                del buf[:n]  # type: ignore[union-attr]  # non-empty: a bytearray

    def clear(self) -> None:
        self._buf = _EMPTY


class RecvBuffer:
    """In-order chunks on a plain list, an empty tuple while there are none (a deque
    keeps a 64-slot block even while empty, and an idle connection's buffer is empty)."""

    __slots__ = ("_chunks", "size")

    def __init__(self) -> None:
        self._chunks: list[bytes] | tuple[()] = ()  # a list while data waits
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, data: bytes) -> None:
        if data:
            if self._chunks:
                self._chunks.append(data)  # type: ignore[union-attr]
            else:
                self._chunks = [data]
            self.size += len(data)

    def read(self, max_bytes: int | None = None) -> bytes:
        chunks = self._chunks
        if not chunks:
            return b""
        if max_bytes is None or max_bytes >= self.size:
            out = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = ()
            self.size = 0
            return bytes(out)
        if max_bytes <= 0:
            return b""
        parts: list[bytes] = []
        need = max_bytes
        taken = 0
        while need:
            c = chunks[taken]
            if len(c) <= need:
                parts.append(c)
                taken += 1
                need -= len(c)
            else:
                parts.append(c[:need])
                chunks[taken] = c[need:]  # type: ignore[index]
                need = 0
        del chunks[:taken]  # type: ignore[union-attr]  # non-empty: a list
        self.size -= max_bytes
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def clear(self) -> None:
        self._chunks = ()
        self.size = 0
