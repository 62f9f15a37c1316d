"""Lab clients that check what they get, run INSIDE a client container.

    python3 /tmp/seashard-lab/traffic.py MODE [OPTIONS]   (copied in by seashard_lab.lab)

Standard library only (the image has python3, nothing else is needed).  Every
mode prints one JSON summary line last (``"ok"``, ``"results"`` per
connection with its local port, ``"errors"``); ``hold`` also prints progress
lines ``{"event": ...}``.  Every wait is bounded by ``--timeout``.

Modes:
  echo    --sizes 1,1460,1048576 [--concurrency N] [--half-close]
          per size, N concurrent connections each send SIZE random bytes and
          must get exactly them back, then EOF after their own shutdown;
          --half-close: the client shuts its write side down as soon as the
          last byte is written and reads the rest of the echo after that
  canned  --count N [--concurrency K]   the response must be exact, and the
          server must close first (EOF while the client has neither written
          nor closed anything)
  accept  --count N    connect to the accept logger, wait for its close
  hold    --count N --seconds S [--interval I] [--size B]   N echo
          connections open for S seconds, a verified round trip on each every
          I seconds; prints {"event": "established", "ports": [...]} first
  short   --count N [--concurrency K] [--autobind]   connect, 1 byte echoed, RST
  steer   --count N    one connection after another: "served" (echo came
          back), "closed" (EOF), "reset", "refused" (RST to the SYN) or
          "hang" (nothing within --timeout)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

CANNED = b"Seastar is the future!\n"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    return f"{type(exc).__name__}: {exc}"


AUTOBIND = False  # --autobind


async def open_conn(
    host: str, port: int, timeout: float, info: dict[str, Any]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect from a port we know before the handshake (so failures name it too).

    With --autobind, connect() picks the port as any Linux client's would:
    it prefers even ports (bind(0) odd ones), which is what `--lba port` trips on."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if not AUTOBIND:
        sock.bind(("0.0.0.0", 0))
        info["port"] = sock.getsockname()[1]
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    info["ip"], info["port"] = sock.getsockname()
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


async def read_until_eof(reader: asyncio.StreamReader, limit: int) -> bytes:
    data = bytearray()
    while len(data) <= limit:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def one_connection(
    args: argparse.Namespace,
    info: dict[str, Any],
    work: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    abort: bool = False,
) -> dict[str, Any]:
    """Connect, run ``work``, close (``abort``: with a RST), and time it: every
    failure lands in info["error"], never in an exception."""
    start = time.monotonic()
    writer = None
    try:
        reader, writer = await open_conn(args.host, args.port, args.timeout, info)
        await work(reader, writer)
    except BaseException as exc:  # noqa: BLE001 - report every failure per connection
        info["error"] = describe(exc)
    finally:
        if writer is not None:
            sock = writer.get_extra_info("socket")
            if abort and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
    info["seconds"] = round(time.monotonic() - start, 4)
    return info


# ---------------------------------------------------------------- echo


async def echo_one(args: argparse.Namespace, size: int, index: int) -> dict[str, Any]:
    payload = random.Random(f"{args.seed}-{size}-{index}").randbytes(size)
    info: dict[str, Any] = {"size": size, "port": None, "ok": False}

    async def work(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        state = {"at_shutdown": None}

        async def send() -> None:
            view = memoryview(payload)
            for off in range(0, size, 256 * 1024):
                writer.write(view[off : off + 256 * 1024])
                await writer.drain()
            if args.half_close:
                writer.write_eof()
                state["at_shutdown"] = len(got)

        async def receive() -> None:
            while len(got) < size:
                chunk = await reader.read(min(65536, size - len(got)))
                if not chunk:
                    raise EOFError(f"EOF after {len(got)} of {size} bytes")
                got.extend(chunk)

        await asyncio.wait_for(asyncio.gather(send(), receive()), args.timeout)
        if not args.half_close:
            writer.write_eof()
            state["at_shutdown"] = len(got)
        rest = await asyncio.wait_for(read_until_eof(reader, 16), args.timeout)
        info["received"] = len(got)
        info["after_shutdown"] = (
            size - state["at_shutdown"] if state["at_shutdown"] is not None else None
        )
        info["eof"] = rest == b""
        info["exact"] = bytes(got) == payload
        if not info["exact"]:
            first = next(
                (i for i, (a, b) in enumerate(zip(got, payload, strict=False)) if a != b), None
            )
            info["error"] = f"echo differs (first difference at byte {first})"
        elif rest:
            info["error"] = f"{len(rest)} bytes after the echo instead of EOF"
        info["ok"] = info["exact"] and info["eof"]

    return await one_connection(args, info, work)


async def mode_echo(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: list[dict[str, Any]] = []
    for size in sizes:
        results += await asyncio.gather(*(echo_one(args, size, i) for i in range(args.concurrency)))
    return {"results": results}


# ---------------------------------------------------------------- canned / accept


RATE = 0.0  # --rate: connections started per second at most (0: no cap)


async def limited(n: int, coros: list[Any]) -> list[Any]:
    """At most ``n`` at a time, and (with --rate) started no faster than RATE a second."""
    sem = asyncio.Semaphore(max(1, n))
    t0 = time.monotonic()

    async def one(i: int, c: Any) -> Any:
        if RATE > 0:
            await asyncio.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
        async with sem:
            return await c

    return await asyncio.gather(*(one(i, c) for i, c in enumerate(coros)))


async def read_to_eof_one(args: argparse.Namespace, expected: bytes) -> dict[str, Any]:
    """Connect, send nothing, read to EOF (the canned server's reply, the logger's nothing)."""
    info: dict[str, Any] = {"port": None, "ok": False}

    async def work(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # nothing written, nothing closed: an EOF here means the server closed first
        data = await asyncio.wait_for(read_until_eof(reader, 4096), args.timeout)
        info["server_closed_first"] = True
        info["exact"] = data == expected
        if not info["exact"]:
            info["error"] = f"got {data[:60]!r}, expected {expected!r}"
        info["ok"] = info["exact"]

    return await one_connection(args, info, work)


async def mode_canned(args: argparse.Namespace) -> dict[str, Any]:
    coros = [read_to_eof_one(args, CANNED) for _ in range(args.count)]
    return {"results": await limited(args.concurrency, coros)}


async def mode_accept(args: argparse.Namespace) -> dict[str, Any]:
    coros = [read_to_eof_one(args, b"") for _ in range(args.count)]
    return {"results": await limited(args.concurrency, coros)}


# ---------------------------------------------------------------- short


async def short_one(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, one byte there and back, then an abortive close (RST): nothing is
    left in TIME_WAIT on either side, so runs can follow each other at once."""
    info: dict[str, Any] = {"port": None, "ok": False}

    async def work(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x")
        back = await asyncio.wait_for(reader.readexactly(1), args.timeout)
        info["exact"] = info["ok"] = back == b"x"
        if not info["ok"]:
            info["error"] = f"echo differs: {back!r}"

    return await one_connection(args, info, work, abort=True)


async def mode_short(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "results": await limited(args.concurrency, [short_one(args) for _ in range(args.count)])
    }


# ---------------------------------------------------------------- hold


async def mode_hold(args: argparse.Namespace) -> dict[str, Any]:
    infos: list[dict[str, Any]] = [
        {"port": None, "ok": False, "rounds": 0} for _ in range(args.count)
    ]
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = [None] * args.count

    async def connect(i: int) -> None:
        try:
            conns[i] = await open_conn(args.host, args.port, args.timeout, infos[i])
        except BaseException as exc:  # noqa: BLE001
            infos[i]["error"] = describe(exc)

    await limited(args.concurrency, [connect(i) for i in range(args.count)])
    emit(
        {
            "event": "established",
            "ports": [info["port"] for info, c in zip(infos, conns, strict=True) if c],
            "failed": sum(1 for c in conns if c is None),
        }
    )
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds

    async def round_trip(i: int) -> None:
        conn = conns[i]
        if conn is None or "error" in infos[i]:
            return
        reader, writer = conn
        payload = rng.randbytes(args.size)
        try:
            writer.write(payload)
            await writer.drain()
            back = await asyncio.wait_for(reader.readexactly(len(payload)), args.timeout)
            if back != payload:
                infos[i]["error"] = "echo differs"
            infos[i]["rounds"] += 1
        except BaseException as exc:  # noqa: BLE001
            infos[i]["error"] = describe(exc)

    while time.monotonic() < deadline:
        await asyncio.gather(*(round_trip(i) for i in range(args.count)))
        await asyncio.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))

    async def close(i: int) -> None:
        conn = conns[i]
        if conn is None:
            return
        reader, writer = conn
        try:
            if "error" not in infos[i]:
                writer.write_eof()
                rest = await asyncio.wait_for(read_until_eof(reader, 16), args.timeout)
                infos[i]["ok"] = rest == b"" and infos[i]["rounds"] > 0
                if rest:
                    infos[i]["error"] = f"{len(rest)} bytes instead of EOF"
        except BaseException as exc:  # noqa: BLE001
            infos[i]["error"] = describe(exc)
        finally:
            writer.close()

    await asyncio.gather(*(close(i) for i in range(args.count)))
    return {"results": infos}


# ---------------------------------------------------------------- steer


def steer_one(args: argparse.Namespace) -> dict[str, Any]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    s.bind(("0.0.0.0", 0))
    info: dict[str, Any] = {"port": s.getsockname()[1], "outcome": None}
    start = time.monotonic()
    try:
        s.connect((args.host, args.port))
        info["ip"] = s.getsockname()[0]
        s.sendall(b"ping\n")
        got = b""
        while len(got) < 5:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        info["outcome"] = "served" if got == b"ping\n" else "closed" if got == b"" else "garbled"
    except ConnectionRefusedError:
        info["outcome"] = "refused"
    except (ConnectionResetError, BrokenPipeError):
        info["outcome"] = "reset"
    except TimeoutError:
        info["outcome"] = "hang"
    except OSError as exc:
        info["outcome"] = "error"
        info["error"] = describe(exc)
    finally:
        s.close()
    info["seconds"] = round(time.monotonic() - start, 4)
    info["ok"] = info["outcome"] != "hang"
    return info


async def mode_steer(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    for _ in range(args.count):
        results.append(await asyncio.to_thread(steer_one, args))
    return {"results": results}


MODES = {
    "echo": mode_echo,
    "canned": mode_canned,
    "accept": mode_accept,
    "hold": mode_hold,
    "steer": mode_steer,
    "short": mode_short,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="labtraffic")
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("--host", required=True)
    # the service's port: seashard_lab.lab passes it (plan.PORTS, the one place)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sizes", default="1,1024")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--half-close", action="store_true")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--autobind", action="store_true", help="let connect() pick the local port")
    p.add_argument("--rate", type=float, default=0.0, help="connections started per second")
    args = p.parse_args(argv)
    global AUTOBIND, RATE
    AUTOBIND, RATE = args.autobind, args.rate
    if args.mode == "hold" and args.concurrency == 1:
        args.concurrency = 32
    start = time.monotonic()
    summary: dict[str, Any] = {"mode": args.mode, "host": args.host, "port": args.port}
    summary.update(asyncio.run(MODES[args.mode](args)))
    results = summary["results"]
    summary["local_ip"] = next((r["ip"] for r in results if r.get("ip")), None)
    summary["errors"] = [f"{r.get('port')}: {r['error']}" for r in results if r.get("error")]
    summary["ok"] = bool(results) and all(r.get("ok") for r in results)
    summary["seconds"] = round(time.monotonic() - start, 3)
    emit(summary)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
