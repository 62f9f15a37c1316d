"""`seashard load`: a sharded load generator for the three services, verifying every byte.

Each shard runs its share of the workers on its own connections. Modes:
echo (persistent ping-pong connections, random payloads checked byte for
byte), canned (connect, read the whole response, check it, close), connect
(the accept logger: connect, wait for the server's close), mixed (all three).
Every echo round trip, canned read and connect is timed into a log-bucket
histogram (loadstats.py). Shard 0 merges the shards' numbers every report
interval and prints one line (rates and the interval's p50/p90/p99/max); at the
end a summary (JSON with --json); with ``metrics_port`` it serves them as
Prometheus text on /metrics. Exit code 1 if anything failed verification.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from seashard import httpd, net, smp
from seashard.apps import loadstats
from seashard.apps.canned import CANNED_RESPONSE
from seashard.apps.loadstats import Key, Series, Stats
from seashard.net import SocketAddress

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
# Echo payloads are windows of one random pool per size, at a random offset each:
# ``randbytes`` per request cost the driver two thirds of its CPU at 256 KiB (the
# Mersenne Twister and two big-integer conversions), so a bulk benchmark measured
# the driver. POOL_SLACK + 1 offsets: a reply to another request, or shifted by a
# few bytes, still differs.
POOL_SLACK = 64 * 1024
_pools: dict[int, bytes] = {}  # payload size -> pool, for this shard's workers


def echo_payload(size: int, rng: random.Random) -> bytes:
    """``size`` random bytes for one echo request: a window of this shard's pool."""
    pool = _pools.get(size)
    if pool is None:
        pool = _pools[size] = rng.randbytes(size + POOL_SLACK)
    start = rng.randrange(POOL_SLACK + 1)
    return pool[start : start + size]


@dataclass
class LoadConfig:
    hosts: list[str]  # servers; each gets the whole shape (connections, rate)
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
    smp: int = 1
    pin: bool = False
    stack: str = "posix"
    stack_options: Any = None  # net.STACKS[stack]'s typed options
    metrics_port: int | None = None  # serve /metrics (Prometheus text) here, from shard 0
    metrics_address: str = "0.0.0.0"
    metrics_linger: float = 0.0  # seconds /metrics stays up after the summary

    def kinds(self) -> list[str]:
        return list(loadstats.KINDS) if self.mode == "mixed" else [self.mode]

    def port(self, kind: str) -> int:
        return {"echo": self.echo_port, "canned": self.canned_port}.get(
            kind, self.accept_logger_port
        )

    def target(self, host: str, kind: str) -> str:
        return f"{host}:{self.port(kind)}"

    def name(self) -> str:
        return ",".join(self.hosts)


_stats = Stats()
_final: dict[Key, Series] | None = None  # shard 0, once the run is over: what /metrics shows
_done: asyncio.Event | None = None  # shard 0 says: summary printed, you may exit
_workers_stopped: asyncio.Event | None = None  # this shard's workers have all ended


def shard_stats() -> dict[Key, Series]:
    return _stats.series


async def workers_stopped() -> None:
    """Runs on each shard: returns once its counters are final."""
    if _workers_stopped is not None:
        await _workers_stopped.wait()


def finish() -> None:
    if _done is not None:
        _done.set()


class VerificationError(Exception):
    """A reply that is not what the service must send; ``reason`` is its metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Counted(Exception):
    """A failure already counted where it happened (a connect); the worker only retries."""


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


async def _read_exactly(inp: net.InputStream, n: int, s: Series) -> bytes:
    chunks, got = [], 0
    while got < n:
        data = await inp.read()
        if not data:
            raise VerificationError("short_reply", f"echo: EOF after {got} of {n} bytes")
        chunks.append(data)
        got += len(data)
        s.bytes_received += len(data)
    return b"".join(chunks)


async def _read_all(inp: net.InputStream, s: Series) -> bytes:
    chunks = []
    while data := await inp.read():
        chunks.append(data)
        s.bytes_received += len(data)
    return b"".join(chunks)


@asynccontextmanager
async def _connection(cfg: LoadConfig, host: str, kind: str) -> AsyncIterator[net.ConnectedSocket]:
    """A timed connect (the target's ``connect`` series) held by a ``kind`` worker."""
    target = cfg.target(host, kind)
    connects = _stats.get(target, "connect")
    start = time.monotonic()
    try:
        conn = await net.connect(SocketAddress(host, cfg.port(kind)))
    except (TimeoutError, OSError, EOFError) as exc:
        connects.errors[type(exc).__name__] += 1
        raise _Counted() from exc
    connects.latency.record(time.monotonic() - start)
    connects.requests += 1
    mine = _stats.get(target, kind)
    mine.live += 1
    try:
        yield conn
    finally:
        mine.live -= 1
        await conn.close()


async def _echo_worker(
    cfg: LoadConfig, host: str, stop: asyncio.Event, pacer: _Pacer, rng: random.Random
) -> None:
    s = _stats.get(cfg.target(host, "echo"), "echo")
    while not stop.is_set():
        async with _connection(cfg, host, "echo") as conn:
            inp, out = conn.input(), conn.output()
            done = 0
            while not stop.is_set():
                if cfg.requests_per_connection and done >= cfg.requests_per_connection:
                    break
                await pacer.wait()
                payload = echo_payload(cfg.size, rng)
                start = time.monotonic()
                await out.write(payload)
                await out.flush()
                s.bytes_sent += len(payload)
                back = await _read_exactly(inp, len(payload), s)
                if back != payload:
                    raise VerificationError("mismatch", "echo: reply differs from what was sent")
                s.latency.record(time.monotonic() - start)
                s.requests += 1
                s.verified_bytes += len(payload)
                done += 1
            conn.shutdown_output()
            rest = await _read_all(inp, s)
            if rest:
                raise VerificationError(
                    "unexpected_bytes", f"echo: {len(rest)} unexpected bytes before EOF"
                )


async def _canned_worker(
    cfg: LoadConfig, host: str, stop: asyncio.Event, pacer: _Pacer, _: random.Random
) -> None:
    """Connect, read until the server closes, check it is the canned response, repeat."""
    s = _stats.get(cfg.target(host, "canned"), "canned")
    while not stop.is_set():
        await pacer.wait()
        start = time.monotonic()
        async with _connection(cfg, host, "canned") as conn:
            got = await _read_all(conn.input(), s)
        if got != CANNED_RESPONSE:
            raise VerificationError(
                "wrong_response", f"canned: got {got[:40]!r}, expected {CANNED_RESPONSE!r}"
            )
        s.latency.record(time.monotonic() - start)
        s.requests += 1
        s.verified_bytes += len(got)


async def _connect_worker(
    cfg: LoadConfig, host: str, stop: asyncio.Event, pacer: _Pacer, _: random.Random
) -> None:
    """Connect (the request: counted and timed by ``_connection``), wait for the close."""
    s = _stats.get(cfg.target(host, "connect"), "connect")
    while not stop.is_set():
        await pacer.wait()
        async with _connection(cfg, host, "connect") as conn:
            got = await _read_all(conn.input(), s)
        if got:
            raise VerificationError("unexpected_bytes", f"connect: got {got[:40]!r}, expected none")


WORKERS: dict[str, Callable[..., Any]] = {
    "echo": _echo_worker,
    "canned": _canned_worker,
    "connect": _connect_worker,
}


async def _resilient(
    kind: str, cfg: LoadConfig, host: str, stop: asyncio.Event, pacer: _Pacer, seed: int
) -> None:
    """Run a worker; count each failure and start over, so one error is not the end."""
    rng = random.Random(seed)
    s = _stats.get(cfg.target(host, kind), kind)
    logged = 0
    while not stop.is_set():
        try:
            await _until_stop(WORKERS[kind](cfg, host, stop, pacer, rng), stop)
        except VerificationError as exc:
            s.errors[exc.reason] += 1
            logged += 1
            if logged <= 3:  # the summary has the full count
                smp.log(f"load: {exc}")
        except _Counted:
            await asyncio.sleep(0.05)  # do not spin on a refused port
        except (TimeoutError, OSError, EOFError) as exc:
            s.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)


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


async def _gather() -> dict[Key, Series]:
    return loadstats.merge(await smp.invoke_on_all(shard_stats))


async def _metrics_route() -> tuple[str, bytes]:
    totals = _final if _final is not None else await _gather()
    return PROMETHEUS_TEXT, loadstats.prometheus_text(totals).encode()


async def shard_main(cfg: LoadConfig, shard: smp.Shard, metrics_sock: socket.socket | None):
    global _done, _workers_stopped, _final
    net.set_stack(net.STACKS[cfg.stack].create(shard, cfg.stack_options))
    _done = asyncio.Event()
    _workers_stopped = asyncio.Event()
    stop = asyncio.Event()
    kinds = cfg.kinds()
    for host in cfg.hosts:  # every series from the start: /metrics shows zeros, not gaps
        for kind in kinds:
            _stats.get(cfg.target(host, kind), kind)
            _stats.get(cfg.target(host, kind), "connect")
    endpoint = None
    if metrics_sock is not None:
        if shard.id == 0:
            endpoint = httpd.HttpEndpoint(
                metrics_sock, {"/metrics": _metrics_route}, shard.loop, "load metrics"
            )
            endpoint.start()
        else:
            metrics_sock.close()  # an inherited copy: shard 0 serves it
    smp.announce_started()
    tasks = []
    base_seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 30)
    for h, host in enumerate(cfg.hosts):
        for k, kind in enumerate(kinds):
            n = _share(_share(cfg.connections, k, len(kinds)), shard.id, shard.count)
            pacer = _Pacer(cfg.rate / len(kinds) / shard.count if cfg.rate else 0.0)
            for i in range(n):
                seed = base_seed + 1_000_003 * shard.id + 100_003 * h + 1009 * k + i
                worker = _resilient(kind, cfg, host, stop, pacer, seed)
                tasks.append(asyncio.ensure_future(worker))
    started = time.monotonic()
    if shard.id == 0:
        reporter = asyncio.ensure_future(_report(cfg, started, stop))
    stopping = asyncio.ensure_future(shard.stopping.wait())
    done = asyncio.ensure_future(_done.wait())
    try:
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
            _final = await _gather()
            elapsed = time.monotonic() - started
            _print_summary(cfg, _final, elapsed)
            await smp.invoke_on_all(finish)
            if endpoint is not None and cfg.metrics_linger > 0:
                await asyncio.wait({stopping}, timeout=cfg.metrics_linger)
            if any(s.errors for s in _final.values()):
                raise SystemExit(1)
        else:
            await asyncio.wait(
                {stopping, done}, timeout=cfg.timeout + 30, return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        stopping.cancel()
        done.cancel()
        if endpoint is not None:
            endpoint.close()


async def _report(cfg: LoadConfig, started: float, stop: asyncio.Event) -> None:
    """Every interval, one line: per series, the interval's rate and latency quantiles."""
    last: dict[Key, Series] = {}
    last_t = started
    while not stop.is_set():
        await asyncio.sleep(cfg.report_interval)
        totals = await _gather()
        now = time.monotonic()
        parts = []
        for key, s in totals.items():
            before = last.get(key, Series())
            if s.requests or s.errors:
                window = s.latency.since(before.latency)
                parts.append(loadstats.describe(key, s, now - last_t, window))
        last = {k: s.copy() for k, s in totals.items()}
        last_t = now
        print(f"load {cfg.name()}: t={now - started:.0f}s " + " | ".join(parts), flush=True)


def _print_summary(cfg: LoadConfig, totals: dict[Key, Series], elapsed: float) -> None:
    kinds = cfg.kinds()
    summary = loadstats.summary(cfg.hosts, cfg.mode, kinds, cfg.port, totals, elapsed)
    if cfg.json_out:
        print(json.dumps(summary), flush=True)
        return
    for host in cfg.hosts:
        for kind in kinds:
            s = summary["by_host"][host][kind]
            p = {q: "-" if v is None else v for q, v in s["latency_ms"].items()}
            print(
                f"load {host}: {kind}: {s['requests']} in {elapsed:.1f}s = "
                f"{s['per_second']}/s, errors {s['errors']}, latency ms p50 {p['p50']} "
                f"p90 {p['p90']} p99 {p['p99']} max {p['max']}",
                flush=True,
            )
    shown = {(cfg.target(host, kind), kind) for host in cfg.hosts for kind in kinds}
    for key, s in totals.items():  # the connects of echo and canned workers
        if key not in shown:
            print(f"load {cfg.name()}: connects: {loadstats.describe(key, s, elapsed)}", flush=True)
    for what, n in sorted(summary["error_kinds"].items()):
        print(f"load {cfg.name()}: error x{n}: {what}", file=sys.stderr, flush=True)


def run(cfg: LoadConfig) -> int:
    """Run the load on ``cfg.smp`` shards until ``cfg.duration`` is over; the exit code."""
    metrics_sock = None
    if cfg.metrics_port is not None:
        try:  # bound before any shard starts: a busy port is a one-line failure
            metrics_sock = httpd.bind(cfg.metrics_address, cfg.metrics_port, "metrics")
        except smp.StartupError as exc:
            print(exc, file=sys.stderr, flush=True)
            return smp.EXIT_START_FAILED

    async def main(shard: smp.Shard) -> None:
        await shard_main(cfg, shard, metrics_sock)

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return smp.run(
        cfg.smp,
        main,
        cpus=smp.available_cpus(),
        pin=cfg.pin,
        until_done=True,
        after_fork=metrics_sock.close if metrics_sock is not None else None,
    )
