"""A kernel-socket client the native-stack tests run inside the peer namespace.

python -m tests.netclient echo HOST PORT COUNT CONCURRENCY MAX_SIZE SEED
    COUNT connections, each sends a random payload (1..MAX_SIZE bytes), shuts
    down its write side and reads the echo to EOF; prints one JSON line.
python -m tests.netclient refused HOST PORT
    prints {"refused": true} if the connection is refused (RST), else false.
python -m tests.netclient canned HOST PORT COUNT
    COUNT connections reading to EOF; prints the distinct replies.
python -m tests.netclient bulk HOST PORT CONNECTIONS BYTES SEED
    CONNECTIONS at once, each sends BYTES of seeded random data while reading the echo
    back, checked byte by byte as it comes; prints exact/mismatched, bytes each way and
    the seconds it took.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys


async def _echo(host: str, port: int, payload: bytes, timeout: float) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    return data


async def echo(host: str, port: int, count: int, concurrency: int, max_size: int, seed: int):
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randint(1, max_size)) for _ in range(count)]
    sem = asyncio.Semaphore(concurrency)
    results = {"exact": 0, "mismatched": 0, "errors": []}

    async def one(p: bytes) -> None:
        async with sem:
            try:
                got = await _echo(host, port, p, 60)
            except Exception as exc:  # noqa: BLE001 (reported to the test)
                results["errors"].append(repr(exc))
                return
            results["exact" if got == p else "mismatched"] += 1

    await asyncio.gather(*(one(p) for p in payloads))
    return results


async def _bulk_one(host: str, port: int, payload: bytes, timeout: float) -> bool:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)

    async def send() -> None:
        view = memoryview(payload)
        for i in range(0, len(view), 1 << 18):
            writer.write(view[i : i + (1 << 18)])
            await asyncio.wait_for(writer.drain(), timeout)
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = 0
    exact = True
    while True:
        chunk = await asyncio.wait_for(reader.read(1 << 20), timeout)
        if not chunk:
            break
        if payload[got : got + len(chunk)] != chunk:
            exact = False
        got += len(chunk)
    await sender
    writer.close()
    return exact and got == len(payload)


async def bulk(host: str, port: int, connections: int, size: int, seed: int):
    import time

    rng = random.Random(seed)
    payloads = [rng.randbytes(size) for _ in range(connections)]
    start = time.monotonic()
    done = await asyncio.gather(
        *(_bulk_one(host, port, p, 60) for p in payloads), return_exceptions=True
    )
    seconds = time.monotonic() - start
    return {
        "exact": sum(1 for d in done if d is True),
        "mismatched": sum(1 for d in done if d is False),
        "errors": [repr(d) for d in done if isinstance(d, BaseException)],
        "bytes_each_way": connections * size,
        "seconds": round(seconds, 3),
    }


def refused(host: str, port: int) -> dict[str, bool]:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return {"refused": True}
    return {"refused": False}


def canned(host: str, port: int, count: int) -> dict[str, list[str]]:
    replies = set()
    for _ in range(count):
        with socket.create_connection((host, port), timeout=10) as s:
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
            replies.add(b"".join(chunks).decode(errors="replace"))
    return {"replies": sorted(replies)}


def main(argv: list[str]) -> None:
    mode, host, port, *rest = argv
    if mode == "echo":
        count, conc, size, seed = map(int, rest)
        out = asyncio.run(echo(host, int(port), count, conc, size, seed))
    elif mode == "bulk":
        conns, size, seed = map(int, rest)
        out = asyncio.run(bulk(host, int(port), conns, size, seed))
    elif mode == "refused":
        out = refused(host, int(port))
    else:
        out = canned(host, int(port), int(rest[0]))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
