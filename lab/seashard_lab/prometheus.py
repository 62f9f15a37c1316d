"""The lab's Prometheus: the queries worth knowing, and a small client of its HTTP API.

The recording rules in images/lab/prometheus/rules.yml precompute the same
questions every second; `QUERIES` names them for `scripts/lab up`, the README,
the plots and the lab suites.  The client is stdlib urllib (the API is four
GET endpoints returning JSON): nothing to gain from a dependency here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

PROMETHEUS_PORT = 9090
TIMEOUT = 5.0

# name -> (PromQL, what it answers).  The first one is what `scripts/lab up` shows.
QUERIES: dict[str, tuple[str, str]] = {
    "live": (
        "sum by (service, shard) (seashard_connections_live)",
        "live connections per server and shard",
    ),
    "share": (
        "service_shard:seashard_connections:share1m",
        "each shard's share of the connections its server accepted in the last minute",
    ),
    "live-share": (
        "service_shard:seashard_connections_live:share",
        "each shard's share of its server's open connections",
    ),
    "conn-rate": (
        "service_shard:seashard_connections:rate10s",
        "connections accepted per second, per shard",
    ),
    "p99": (
        "target_kind:seashard_load_latency_seconds:p99_10s",
        "the clients' p99 latency per target and kind, seconds",
    ),
    "forwarded": (
        "service_shard:seashard_frames_forwarded:rate10s",
        "native: frames forwarded to the owning shard per second, per shard",
    ),
    "dropped": (
        "service_shard:seashard_frames_dropped:rate10s",
        "native: frames dropped per second (all reasons), per shard",
    ),
    "proxied": (
        "service_shard:seashard_frames_proxied:rate10s",
        "native: frames proxied to another shard's TX queue per second, per shard",
    ),
}


class PrometheusError(RuntimeError):
    pass


def graph_url(base: str, expr: str, range_input: str = "5m") -> str:
    """Prometheus' graph page (the classic UI Debian ships) showing ``expr`` as a graph."""
    query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input})
    return f"{base.rstrip('/')}/graph?{query}"


@dataclass(frozen=True)
class Target:
    job: str
    service: str
    url: str
    health: str  # "up", "down", "unknown"
    last_error: str


class Prometheus:
    def __init__(self, base: str, timeout: float = TIMEOUT) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", exc.reason)
            except Exception:  # noqa: BLE001 - not Prometheus' JSON: the status says it
                detail = exc.reason
            raise PrometheusError(f"{url}: HTTP {exc.code}: {detail}") from None
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"{url}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body.get('error', body)}")
        return body["data"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=self.timeout) as r:
                return r.status == 200
        except OSError:
            return False

    def targets(self) -> list[Target]:
        data = self._get("/api/v1/targets", state="active")
        return [
            Target(
                job=t["labels"].get("job", ""),
                service=t["labels"].get("service", t["labels"].get("instance", "")),
                url=t.get("scrapeUrl", ""),
                health=t.get("health", "unknown"),
                last_error=t.get("lastError", ""),
            )
            for t in data["activeTargets"]
        ]

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """Instant vector: [(labels, value)]."""
        data = self._get("/api/v1/query", query=expr, time=at)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: a {data['resultType']}, not a vector")
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """Range matrix: [(labels, [(t, value)])]."""
        data = self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        return [
            (r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]
        ]
