"""Send and receive buffers.

``SendBuffer`` keeps every byte the application handed over and the peer has not
acknowledged yet (bytes in flight and bytes not yet sent), so retransmission can
slice any range out of it.  ``RecvBuffer`` keeps in-order data the application
has not read, as a list of chunks so that reading a whole segment costs no copy.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RecvBuffer", "SendBuffer"]


_KEEP: Final = 1024  # bytes written at least this long are kept as they are, uncopied
_TAIL_MAX: Final = 64 * 1024  # shorter writes gather in a bytearray of at most this


class SendBuffer:
    """The chunks the application wrote, from the oldest unacknowledged byte on.

    ``bytes`` never change, so a write of ``bytes`` is kept as it is (no copy) and a
    peek inside one such chunk is a ``memoryview`` of it (no copy, and safe to keep).
    A bulk echo used to copy every byte twice here: into one bytearray, and out of
    it for each segment. Writes shorter than ``_KEEP``, and the ``bytearray`` or
    ``memoryview`` a caller may change later, are copied into a bytearray tail, so a
    stream of small writes does not make a long list; a peek into a bytearray (or
    across chunks) is a copy.  An idle connection's buffer is an empty tuple.
    """

    __slots__ = ("_chunks", "_head", "_size", "capacity")

    def __init__(self, capacity: int) -> None:
        self._chunks: list[bytes | bytearray] | tuple[()] = ()
        self._head = 0  # acknowledged bytes still at the front of the first chunk
        self._size = 0
        self.capacity = capacity

    def __len__(self) -> int:
        return self._size

    @property
    def space(self) -> int:
        return max(0, self.capacity - self._size)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append as much of ``data`` as fits; return how many bytes were taken."""
        n = min(len(data), self.capacity - self._size)
        if n <= 0:
            return 0
        part = data if n == len(data) else data[:n]
        chunks = self._chunks
        if type(part) is bytes and (n >= _KEEP or not chunks):
            if chunks:
                chunks.append(part)  # type: ignore[union-attr]  # non-empty: a list
            else:
                self._chunks = [part]
        elif not chunks:
            self._chunks = [bytearray(part)]
        else:
            tail = chunks[-1]
            if type(tail) is bytearray and len(tail) < _TAIL_MAX:
                tail += part  # never exported: peeks into a bytearray copy
            else:
                chunks.append(bytearray(part))  # type: ignore[union-attr]
        self._size += n
        return n

    def peek(self, offset: int, n: int) -> bytes | memoryview:
        """Bytes ``[offset, offset + n)`` (from the oldest unacknowledged byte)."""
        n = min(n, self._size - offset)
        if n <= 0 or offset < 0:
            return b""
        pos = self._head + offset
        chunks: list[bytes | bytearray] = self._chunks  # type: ignore[assignment]  # n > 0
        i = 0
        chunk = chunks[0]
        while pos >= len(chunk):
            pos -= len(chunk)
            i += 1
            chunk = chunks[i]
        if pos + n <= len(chunk):  # inside one chunk: a segment of a large write
            if type(chunk) is bytes:
                if pos == 0 and n == len(chunk):
                    return chunk
                return memoryview(chunk)[pos : pos + n]
            return memoryview(chunk)[pos : pos + n].tobytes()  # the view dies here
        parts: list[memoryview] = []  # across chunks: one join (the views die with it)
        while n > 0:
            chunk = chunks[i]
            take = min(n, len(chunk) - pos)
            parts.append(memoryview(chunk)[pos : pos + take])
            n -= take
            pos = 0
            i += 1
        return b"".join(parts)

    def consume(self, n: int) -> None:
        """Drop ``n`` acknowledged bytes from the front."""
        if n <= 0:
            return
        if n >= self._size:
            self.clear()
            return
        self._size -= n
        head = self._head + n
        chunks: list[bytes | bytearray] = self._chunks  # type: ignore[assignment]  # not empty
        k = 0
        while head >= len(chunks[k]):
            head -= len(chunks[k])
            k += 1
        if k:
            del chunks[:k]
        self._head = head

    def clear(self) -> None:
        self._chunks = ()
        self._head = 0
        self._size = 0


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

    def read_some(self, limit: int) -> bytes:
        """Whole chunks from the front: all of them when they total at most ``limit``,
        else as many as fit in it, at least one (returned alone, it is not copied)."""
        chunks = self._chunks
        if self.size <= limit or not chunks:
            return self.read()
        total = len(chunks[0])
        k = 1
        while k < len(chunks) and total + len(chunks[k]) <= limit:
            total += len(chunks[k])
            k += 1
        out = chunks[0] if k == 1 else b"".join(chunks[:k])
        del chunks[:k]  # type: ignore[union-attr]  # non-empty: a list
        self.size -= total
        return out

    def clear(self) -> None:
        self._chunks = ()
        self.size = 0
