"""What `seashard load` counts, per target and kind, and how it is shown.

A series is one (target, kind): target ``HOST:PORT``, kind ``echo`` (a verified
round trip), ``canned`` (a connect and the whole canned response, verified) or
``connect`` (a TCP connect, by any worker, to that target's port). Each series
counts its requests, errors by reason, bytes sent and received, live
connections, and a latency histogram recorded at the moment the request is
counted, so the histogram's count is the request count. Shards keep their own
series; shard 0 merges them for the periodic line, the summary and /metrics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seashard.histogram import LogHistogram

KINDS = ("echo", "canned", "connect")
Key = tuple[str, str]  # (target, kind)


@dataclass
class Series:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # reason -> count
    bytes_sent: int = 0
    bytes_received: int = 0
    verified_bytes: int = 0  # payload bytes of verified requests (echo and canned)
    live: int = 0  # open connections of this kind's workers to this target
    latency: LogHistogram = field(default_factory=LogHistogram)

    def merge(self, other: Series) -> Series:
        self.requests += other.requests
        self.errors.update(other.errors)
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        self.verified_bytes += other.verified_bytes
        self.live += other.live
        self.latency.merge(other.latency)
        return self

    def copy(self) -> Series:
        return Series().merge(self)


class Stats:
    """One shard's series (shard 0 also holds merged ones)."""

    def __init__(self) -> None:
        self.series: dict[Key, Series] = {}

    def get(self, target: str, kind: str) -> Series:
        s = self.series.get((target, kind))
        if s is None:
            s = self.series[(target, kind)] = Series()
        return s


def merge(per_shard: list[dict[Key, Series]]) -> dict[Key, Series]:
    totals: dict[Key, Series] = {}
    for series in per_shard:
        for key, s in series.items():
            totals.setdefault(key, Series()).merge(s)
    return dict(sorted(totals.items(), key=lambda kv: (kv[0][0], KINDS.index(kv[0][1]))))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def latency_ms(h: LogHistogram) -> dict[str, float | None]:
    return {k: _ms(v) for k, v in h.percentiles().items()}


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3g}"


def describe(key: Key, s: Series, seconds: float, latency: LogHistogram | None = None) -> str:
    """``echo 127.0.0.1:1234 412.0/s (total 4120, errors 0) p50/p90/p99/max 0.3/... ms``."""
    h = latency if latency is not None else s.latency
    p = h.percentiles()
    rate = (h.count if latency is not None else s.requests) / seconds if seconds > 0 else 0.0
    return (
        f"{key[1]} {key[0]} {rate:.1f}/s (total {s.requests}, errors {sum(s.errors.values())}) "
        f"p50/p90/p99/max {'/'.join(_fmt(p[q]) for q in ('p50', 'p90', 'p99', 'max'))} ms"
    )


def summary(
    hosts: list[str],
    mode: str,
    kinds: list[str],
    port_of: Callable[[str], int],
    totals: dict[Key, Series],
    elapsed: float,
) -> dict[str, Any]:
    """The final summary: per host and mode kind (that target's series), and every series.

    With one host, its kinds are also at the top level (``summary["echo"]``...).
    """
    out: dict[str, Any] = {"host": ",".join(hosts), "mode": mode, "seconds": round(elapsed, 3)}
    by_host: dict[str, dict[str, Any]] = {}
    for host in hosts:
        by_host[host] = {}
        for kind in kinds:
            target = f"{host}:{port_of(kind)}"
            s = totals.get((target, kind), Series())
            errors = sum(sum(v.errors.values()) for (t, _), v in totals.items() if t == target)
            mean = s.latency.sum / s.latency.count if s.latency.count else None
            by_host[host][kind] = {
                "target": target,
                "requests": s.requests,
                "per_second": round(s.requests / elapsed, 1) if elapsed else 0.0,
                "bytes": s.verified_bytes,  # payload of verified requests
                "mean_latency_ms": _ms(mean),
                "latency_ms": latency_ms(s.latency),
                "errors": errors,  # on this target, its connects' included
            }
    if len(hosts) == 1:
        out.update(by_host[hosts[0]])
    out["by_host"] = by_host
    out["series"] = [
        {
            "target": t,
            "kind": k,
            "requests": s.requests,
            "errors": dict(s.errors),
            "bytes_sent": s.bytes_sent,
            "bytes_received": s.bytes_received,
            "latency_count": s.latency.count,
            "latency_ms": latency_ms(s.latency),
        }
        for (t, k), s in totals.items()
    ]
    out["error_kinds"] = {
        f"{k} {t}: {reason}": n for (t, k), s in totals.items() for reason, n in s.errors.items()
    }
    return out


# ------------------------------------------------------------------- Prometheus


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _le(value: float) -> str:
    return "+Inf" if math.isinf(value) else f"{value:.6g}"


def prometheus_text(totals: dict[Key, Series]) -> str:
    """The families the lab's Prometheus, `top` and plots read (names agreed in PLAN.md)."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    def labels(key: Key, **more: str) -> str:
        pairs = [("target", key[0]), ("kind", key[1]), *more.items()]
        return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}"

    family(
        "seashard_load_requests_total",
        "counter",
        "Verified requests: echo round trips, canned responses, TCP connects.",
    )
    for key, s in totals.items():
        out.append(f"seashard_load_requests_total{labels(key)} {s.requests}")
    family("seashard_load_errors_total", "counter", "Failed requests by reason.")
    for key, s in totals.items():
        for reason, n in sorted(s.errors.items()):
            out.append(f"seashard_load_errors_total{labels(key, reason=reason)} {n}")
    family("seashard_load_bytes_total", "counter", "Payload bytes sent and received.")
    for key, s in totals.items():
        out.append(f"seashard_load_bytes_total{labels(key, direction='sent')} {s.bytes_sent}")
        out.append(
            f"seashard_load_bytes_total{labels(key, direction='received')} {s.bytes_received}"
        )
    family(
        "seashard_load_latency_seconds",
        "histogram",
        "Latency of each verified request (echo round trip, canned read, connect).",
    )
    for key, s in totals.items():
        for le, n in s.latency.cumulative():
            out.append(f"seashard_load_latency_seconds_bucket{labels(key, le=_le(le))} {n}")
        out.append(f"seashard_load_latency_seconds_sum{labels(key)} {s.latency.sum!r}")
        out.append(f"seashard_load_latency_seconds_count{labels(key)} {s.latency.count}")
    family("seashard_load_connections_live", "gauge", "Open connections of the workers.")
    for key, s in totals.items():
        out.append(f"seashard_load_connections_live{labels(key)} {s.live}")
    return "\n".join(out) + "\n"
