"""What `scripts/lab top` shows, derived from two scrapes: pure functions, no I/O.

A scrape is the parsed Prometheus text of one endpoint at one moment (a
`Scrape`): a server's admin endpoint (per-shard ``seashard_*`` families) or a
client's load-generator ``/metrics`` (``seashard_load_*`` per target and kind).
Rates are the difference of two scrapes over the time between them; a counter
that went backwards (the program restarted) gives no rate rather than a
negative one, as Prometheus' ``rate()`` would not either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    """Every sample of one endpoint at time ``t`` (seconds, any monotonic clock)."""

    t: float
    samples: Mapping[tuple[str, Labels], float] = field(default_factory=dict)

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, _key(labels)))

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(lb), v) for (n, lb), v in self.samples.items() if n == name]


def _key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def parse(text: str, t: float) -> Scrape:
    """Prometheus text format -> `Scrape` (prometheus_client's parser does the format)."""
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, _key(s.labels))] = float(s.value)
    return Scrape(t, samples)


def rate(prev: float | None, cur: float | None, dt: float) -> float | None:
    """Per-second increase of a counter; None without two samples or after a reset."""
    if prev is None or cur is None or dt <= 0 or cur < prev:
        return None
    return (cur - prev) / dt


# ---------------------------------------------------------------- servers


@dataclass(frozen=True)
class ShardRow:
    """One shard of one server, as `top` prints it."""

    shard: int
    pid: int | None
    cpus: str
    cpu_percent: float | None  # of one CPU; None until two scrapes of the same process
    live: int
    total: int
    connections_per_s: float | None
    bytes_in_per_s: float | None
    bytes_out_per_s: float | None
    # native stack only (None on posix)
    frames_per_s: float | None = None
    drops: int | None = None
    drops_per_s: float | None = None
    forwarded: int | None = None
    proxied: int | None = None


def _shards(scrape: Scrape) -> dict[int, dict[str, str]]:
    """shard -> its seashard_shard_info labels (pid, cpus, stack)."""
    return {int(lb["shard"]): lb for lb, _ in scrape.series("seashard_shard_info")}


def _per_shard(scrape: Scrape, name: str) -> dict[int, float]:
    """A per-shard family summed over its other labels (e.g. drops over reasons)."""
    out: dict[int, float] = {}
    for lb, v in scrape.series(name):
        if "shard" in lb:
            out[int(lb["shard"])] = out.get(int(lb["shard"]), 0.0) + v
    return out


def shard_rows(prev: Scrape | None, cur: Scrape) -> list[ShardRow]:
    """Per-shard rows of a server from its latest scrape and the one before (if any)."""
    info = _shards(cur)
    before = _shards(prev) if prev is not None else {}
    dt = cur.t - prev.t if prev is not None else 0.0
    native = any(lb.get("stack") == "native" for lb in info.values())
    fams = {
        "cpu": "seashard_cpu_seconds_total",
        "live": "seashard_connections_live",
        "total": "seashard_connections_total",
        "in": "seashard_bytes_in_total",
        "out": "seashard_bytes_out_total",
        "frames": "seashard_frames_received_total",
        "drops": "seashard_frames_dropped_total",
        "fwd": "seashard_frames_forwarded_total",
        "proxied": "seashard_frames_proxied_total",
    }
    now = {k: _per_shard(cur, f) for k, f in fams.items()}
    then = {k: _per_shard(prev, f) for k, f in fams.items()} if prev is not None else {}

    rows = []
    for shard in sorted(info):
        lb = info[shard]
        # a shard whose process changed restarted: its counters start again
        same = shard in before and before[shard].get("pid") == lb.get("pid")

        def r(k: str, shard: int = shard, same: bool = same) -> float | None:
            if not same:
                return None
            return rate(then.get(k, {}).get(shard), now[k].get(shard), dt)

        cpu = r("cpu")
        pid = lb.get("pid")
        rows.append(
            ShardRow(
                shard=shard,
                pid=int(pid) if pid and pid.isdigit() else None,
                cpus=lb.get("cpus", ""),
                cpu_percent=None if cpu is None else 100.0 * cpu,
                live=int(now["live"].get(shard, 0)),
                total=int(now["total"].get(shard, 0)),
                connections_per_s=r("total"),
                bytes_in_per_s=r("in"),
                bytes_out_per_s=r("out"),
                frames_per_s=r("frames") if native else None,
                drops=int(now["drops"].get(shard, 0)) if native else None,
                drops_per_s=r("drops") if native else None,
                forwarded=int(now["fwd"].get(shard, 0)) if native else None,
                proxied=int(now["proxied"].get(shard, 0)) if native else None,
            )
        )
    return rows


# ---------------------------------------------------------------- clients


@dataclass(frozen=True)
class TargetRow:
    """One target server (HOST, all its ports) and kind of one client's load generator."""

    target: str
    kind: str
    requests: int
    requests_per_s: float | None
    errors: int
    errors_per_s: float | None
    p50: float | None  # seconds, over the requests since the previous scrape
    p99: float | None
    live: int | None = None


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile on cumulative (upper bound, count) buckets.

    Linear interpolation inside the bucket the rank falls in; the lowest bucket
    starts at 0; a rank in the +Inf bucket gives the highest finite bound.
    None when the buckets hold no observation.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _host(target: str) -> str:
    """HOST:PORT -> HOST: the kind says the port (echo 1234, canned 1235; connects go to
    every port), and one row per server and kind keeps `top` within a screen."""
    host, sep, _ = target.rpartition(":")
    return host if sep else target


def _buckets(scrape: Scrape, target: str, kind: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for lb, v in scrape.series("seashard_load_latency_seconds_bucket"):
        if _host(lb.get("target", "?")) == target and lb.get("kind") == kind:
            le = float(lb["le"])
            out[le] = out.get(le, 0.0) + v
    return out


def _sum_by(scrape: Scrape, name: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for lb, v in scrape.series(name):
        key = (_host(lb.get("target", "?")), lb.get("kind", "?"))
        out[key] = out.get(key, 0.0) + v
    return out


def target_rows(prev: Scrape | None, cur: Scrape, base: Scrape | None = None) -> list[TargetRow]:
    """Per (target, kind) rows of one client: rates since the previous scrape, and
    p50/p99 of the latencies observed since ``base`` (an older scrape, for a steadier
    quantile; default ``prev``; of all so far without either).  A target and kind
    with neither a request nor an error yet is left out."""
    base = base if base is not None else prev
    dt = cur.t - prev.t if prev is not None else 0.0
    req = _sum_by(cur, "seashard_load_requests_total")
    err = _sum_by(cur, "seashard_load_errors_total")
    live = _sum_by(cur, "seashard_load_connections_live")
    req0 = _sum_by(prev, "seashard_load_requests_total") if prev is not None else {}
    err0 = _sum_by(prev, "seashard_load_errors_total") if prev is not None else {}
    rows = []
    for key in sorted(set(req) | set(err)):
        target, kind = key
        if not req.get(key) and not err.get(key):
            continue
        now_b = _buckets(cur, target, kind)
        then_b = _buckets(base, target, kind) if base is not None else {}
        window = {le: c - then_b.get(le, 0.0) for le, c in now_b.items()}
        if any(v < 0 for v in window.values()):  # restarted: what it has is all it has
            window = now_b
        rows.append(
            TargetRow(
                target=target,
                kind=kind,
                requests=int(req.get(key, 0)),
                requests_per_s=rate(req0.get(key), req.get(key), dt),
                errors=int(err.get(key, 0)),
                errors_per_s=rate(
                    err0.get(key, 0.0) if prev is not None else None, err.get(key, 0.0), dt
                ),
                p50=histogram_quantile(0.5, window.items()),
                p99=histogram_quantile(0.99, window.items()),
                live=int(live[key]) if key in live else None,
            )
        )
    return rows
