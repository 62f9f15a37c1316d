"""`seashard load`: a sharded load generator for the three services, verifying every byte.

Each shard runs its share of the workers on its own connections. Modes:
echo (persistent ping-pong connections, random payloads checked byte for
byte), canned (connect, read the whole response, check it, close), connect
(the accept logger: connect, wait for the server's close), mixed (all three).
Shard 0 gathers the counters every report interval and prints one line; at the
end a summary (JSON with --json). Exit code 1 if anything failed verification.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seashard import net, smp
from seashard.apps.canned import CANNED_RESPONSE
from seashard.net import SocketAddress


@dataclass
class LoadConfig:
    host: str
    mode: str = "echo"
    connections: int = 10
    size: int = 1024
    duration: float = 10.0  # 0 = until stopped
    rate: float = 0.0  # new connections (or echo requests) per second, all shards; 0 = open loop
    requests_per_connection: int = 0  # echo: reconnect after this many round trips; 0 = never
    echo_port: int = 1234
    canned_port: int = 1235
    accept_logger_port: int = 1236
    report_interval: float = 5.0
    timeout: float = 10.0
    seed: int | None = None
    json_out: bool = False


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latency_sum: Counter[str] = field(default_factory=Counter)


_stats = Stats()
_done: asyncio.Event | None = None  # shard 0 says: summary printed, you may exit
_workers_stopped: asyncio.Event | None = None  # this shard's workers have all ended


def shard_stats() -> dict[str, dict[str, float]]:
    return {
        "requests": dict(_stats.requests),
        "bytes": dict(_stats.bytes),
        "errors": dict(_stats.errors),
        "latency_sum": dict(_stats.latency_sum),
    }


async def workers_stopped() -> None:
    """Runs on each shard: returns once its counters are final."""
    if _workers_stopped is not None:
        await _workers_stopped.wait()


def finish() -> None:
    if _done is not None:
        _done.set()


class VerificationError(Exception):
    pass


class _Pacer:
    """Spaces out starts to ``rate`` per second on this shard (no-op when rate is 0)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        self.next = max(self.next + self.interval, now - 1.0)
        if self.next > now:
            await asyncio.sleep(self.next - now)


async def _read_exactly(inp: net.InputStream, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        data = await inp.read()
        if not data:
            raise VerificationError(f"echo: EOF after {got} of {n} bytes")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


async def _read_all(inp: net.InputStream) -> bytes:
    chunks = []
    while data := await inp.read():
        chunks.append(data)
    return b"".join(chunks)


async def _echo_worker(cfg: LoadConfig, stop: asyncio.Event, pacer: _Pacer, rng: random.Random):
    addr = SocketAddress(cfg.host, cfg.echo_port)
    while not stop.is_set():
        conn = await net.connect(addr)
        try:
            inp, out = conn.input(), conn.output()
            done = 0
            while not stop.is_set():
                if cfg.requests_per_connection and done >= cfg.requests_per_connection:
                    break
                await pacer.wait()
                payload = rng.randbytes(cfg.size)
                start = time.monotonic()
                await out.write(payload)
                await out.flush()
                back = await _read_exactly(inp, len(payload))
                if back != payload:
                    raise VerificationError("echo: reply differs from what was sent")
                _stats.requests["echo"] += 1
                _stats.bytes["echo"] += len(payload)
                _stats.latency_sum["echo"] += time.monotonic() - start
                done += 1
            conn.shutdown_output()
            rest = await _read_all(inp)
            if rest:
                raise VerificationError(f"echo: {len(rest)} unexpected bytes before EOF")
        finally:
            await conn.close()


async def _one_shot_worker(
    kind: str, port: int, expected: bytes, cfg: LoadConfig, stop: asyncio.Event, pacer: _Pacer
) -> None:
    """Connect, read until the server closes, check what came, repeat."""
    addr = SocketAddress(cfg.host, port)
    while not stop.is_set():
        await pacer.wait()
        start = time.monotonic()
        conn = await net.connect(addr)
        try:
            got = await _read_all(conn.input())
        finally:
            await conn.close()
        if got != expected:
            raise VerificationError(f"{kind}: got {got[:40]!r}, expected {expected!r}")
        _stats.requests[kind] += 1
        _stats.latency_sum[kind] += time.monotonic() - start


async def _canned_worker(cfg: LoadConfig, stop: asyncio.Event, pacer: _Pacer, _: random.Random):
    await _one_shot_worker("canned", cfg.canned_port, CANNED_RESPONSE, cfg, stop, pacer)


async def _connect_worker(cfg: LoadConfig, stop: asyncio.Event, pacer: _Pacer, _: random.Random):
    await _one_shot_worker("connect", cfg.accept_logger_port, b"", cfg, stop, pacer)


WORKERS: dict[str, Callable[..., Any]] = {
    "echo": _echo_worker,
    "canned": _canned_worker,
    "connect": _connect_worker,
}


async def _resilient(kind: str, cfg: LoadConfig, stop: asyncio.Event, pacer: _Pacer, seed: int):
    """Run a worker; count each failure and start over, so one error is not the end."""
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            await _until_stop(WORKERS[kind](cfg, stop, pacer, rng), stop)
        except VerificationError as exc:
            _stats.errors[f"{kind}: {exc}"] += 1
            if _stats.errors[f"{kind}: {exc}"] <= 3:  # the summary has the full count
                smp.log(f"load: {exc}")
        except (TimeoutError, OSError, EOFError) as exc:
            _stats.errors[f"{kind}: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)  # do not spin on a refused port


async def _until_stop(coro: Any, stop: asyncio.Event) -> None:
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return
    task.result()


def _share(total: int, shard: int, shards: int) -> int:
    return total // shards + (1 if shard < total % shards else 0)


def _kinds(mode: str) -> list[str]:
    return ["echo", "canned", "connect"] if mode == "mixed" else [mode]


async def shard_main(cfg: LoadConfig, shard: smp.Shard) -> None:
    global _done, _workers_stopped
    from seashard.net.posix import PosixStack

    net.set_stack(PosixStack(shard))
    _done = asyncio.Event()
    _workers_stopped = asyncio.Event()
    stop = asyncio.Event()
    smp.announce_started()
    kinds = _kinds(cfg.mode)
    tasks = []
    base_seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 30)
    for k, kind in enumerate(kinds):
        n = _share(_share(cfg.connections, k, len(kinds)), shard.id, shard.count)
        pacer = _Pacer(cfg.rate / len(kinds) / shard.count if cfg.rate else 0.0)
        for i in range(n):
            seed = base_seed + 1_000_003 * shard.id + 1009 * k + i
            tasks.append(asyncio.ensure_future(_resilient(kind, cfg, stop, pacer, seed)))
    started = time.monotonic()
    if shard.id == 0:
        reporter = asyncio.ensure_future(_report(cfg, started, stop))
    stopping = asyncio.ensure_future(shard.stopping.wait())
    done = asyncio.ensure_future(_done.wait())
    await asyncio.wait(
        {stopping, done},
        timeout=cfg.duration if cfg.duration > 0 else None,
        return_when=asyncio.FIRST_COMPLETED,
    )
    stop.set()
    await asyncio.wait(tasks, timeout=cfg.timeout)
    _workers_stopped.set()
    if shard.id == 0:
        reporter.cancel()
        await smp.invoke_on_all(workers_stopped)  # every shard's counts are final
        totals = _merge(await smp.invoke_on_all(shard_stats))
        elapsed = time.monotonic() - started
        _print_summary(cfg, totals, elapsed)
        await smp.invoke_on_all(finish)
        if sum(totals["errors"].values()):
            raise SystemExit(1)
    else:
        await asyncio.wait(
            {stopping, done}, timeout=cfg.timeout + 30, return_when=asyncio.FIRST_COMPLETED
        )
    stopping.cancel()
    done.cancel()


def _merge(per_shard: list[dict[str, dict[str, float]]]) -> dict[str, Counter[str]]:
    totals: dict[str, Counter[str]] = {}
    for s in per_shard:
        for key, values in s.items():
            totals.setdefault(key, Counter()).update(values)
    return totals


async def _report(cfg: LoadConfig, started: float, stop: asyncio.Event) -> None:
    last: Counter[str] = Counter()
    last_t = started
    while not stop.is_set():
        await asyncio.sleep(cfg.report_interval)
        totals = _merge(await smp.invoke_on_all(shard_stats))
        now = time.monotonic()
        parts = []
        for kind in _kinds(cfg.mode):
            n = totals["requests"][kind]
            errs = sum(v for k, v in totals["errors"].items() if k.startswith(kind + ":"))
            rate = (n - last[kind]) / (now - last_t)
            parts.append(f"{kind} {rate:.1f}/s (total {n}, errors {errs})")
            last[kind] = n
        last_t = now
        print(f"load {cfg.host}: t={now - started:.0f}s " + " | ".join(parts), flush=True)


def _print_summary(cfg: LoadConfig, totals: dict[str, Counter[str]], elapsed: float) -> None:
    summary: dict[str, Any] = {"host": cfg.host, "mode": cfg.mode, "seconds": round(elapsed, 3)}
    for kind in _kinds(cfg.mode):
        n = totals["requests"][kind]
        summary[kind] = {
            "requests": n,
            "per_second": round(n / elapsed, 1) if elapsed else 0.0,
            "bytes": totals["bytes"][kind],
            "mean_latency_ms": round(1000 * totals["latency_sum"][kind] / n, 3) if n else None,
            "errors": sum(v for k, v in totals["errors"].items() if k.startswith(kind + ":")),
        }
    summary["error_kinds"] = dict(totals["errors"])
    if cfg.json_out:
        print(json.dumps(summary), flush=True)
    else:
        for kind in _kinds(cfg.mode):
            s = summary[kind]
            print(
                f"load {cfg.host}: {kind}: {s['requests']} in {elapsed:.1f}s = "
                f"{s['per_second']}/s, errors {s['errors']}",
                flush=True,
            )
        for kind, n in sorted(totals["errors"].items()):
            print(f"load {cfg.host}: error x{n}: {kind}", file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser, add_smp: Callable[[argparse.ArgumentParser], None]):
    from seashard.cli import _ipv4, _port, _positive

    p.add_argument("--host", type=_ipv4, required=True, help="server address")
    p.add_argument("--mode", choices=["echo", "canned", "connect", "mixed"], default="echo")
    p.add_argument("--connections", type=_positive, default=10, help="concurrent workers")
    p.add_argument("--size", type=_positive, default=1024, help="echo payload bytes")
    p.add_argument("--duration", type=float, default=10.0, help="seconds; 0 runs until stopped")
    p.add_argument("--rate", type=float, default=0.0, help="starts per second in all (0: no cap)")
    p.add_argument("--requests-per-connection", type=int, default=0)
    p.add_argument("--echo-port", type=_port, default=1234)
    p.add_argument("--canned-port", type=_port, default=1235)
    p.add_argument("--accept-logger-port", type=_port, default=1236)
    p.add_argument("--report-interval", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--pin", action="store_true", help="pin load shards to CPUs (default: not)")
    add_smp(p)


def run_from_args(args: argparse.Namespace) -> int:
    if args.duration < 0 or args.report_interval <= 0 or args.rate < 0:
        print("seashard load: error: durations and rates must not be negative", file=sys.stderr)
        return 2
    cfg = LoadConfig(
        host=args.host,
        mode=args.mode,
        connections=args.connections,
        size=args.size,
        duration=args.duration,
        rate=args.rate,
        requests_per_connection=args.requests_per_connection,
        echo_port=args.echo_port,
        canned_port=args.canned_port,
        accept_logger_port=args.accept_logger_port,
        report_interval=args.report_interval,
        seed=args.seed,
        json_out=args.json,
    )
    cpus = smp.available_cpus()
    count = args.smp or 1
    pin = args.pin and count <= len(cpus)

    async def main(shard: smp.Shard) -> None:
        await shard_main(cfg, shard)

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return smp.run(count, main, cpus=cpus, pin=pin, until_done=True)
