"""The admin endpoint: per-shard metrics (Prometheus text) and the connection table (JSON).

Its socket is bound by the supervisor before any shard starts (a busy admin port
fails the start at once); it is served from shard 0 by ``httpd.HttpEndpoint`` (a
thread of its own, hardened against malformed and slow clients), and each request
asks every shard for its numbers with ``invoke_on_all`` on shard 0's event loop.
It listens on 127.0.0.1 unless told otherwise (``--admin-address``): the
connection table names every client.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import seashard
from seashard import accel, httpd, net, smp

DEFAULT_ADDRESS = "127.0.0.1"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
GAUGES = {"connections_time_wait", "arp_cache_entries", "device_offloads"}  # and *_live
LABELS = {  # else "reason"
    "tcp_syn_queue_live": "port",
    "tcp_accept_queue_live": "port",
    "device_offloads": "offloads",
}


def shard_metrics() -> dict[str, Any]:
    """Runs on each shard: who it is and what its stack counted."""
    return {
        "shard": smp.this_shard_id(),
        "pid": os.getpid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "stack": net.stack().name,
        "code": accel.mode(),  # compiled (mypyc) or pure Python
        # the shard process's own CPU time (user + system), for `lab top`'s cpu%
        "metrics": {**net.stack().metrics(), "cpu_seconds_total": round(sum(os.times()[:2]), 3)},
    }


def shard_connections() -> list[dict[str, Any]]:
    shard, pid = smp.this_shard_id(), os.getpid()
    return [{"shard": shard, "pid": pid, **c} for c in net.stack().connections()]


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(shards: list[dict[str, Any]]) -> str:
    """Render every shard's metrics; a dict value becomes a family labelled by its keys."""
    lines = [
        "# HELP seashard_shard_info A shard: its process and the CPUs it may run on.",
        "# TYPE seashard_shard_info gauge",
    ]
    if any("code" in s for s in shards):
        lines += [
            "# HELP seashard_build_info The version, and the code a shard runs: compiled or pure.",
            "# TYPE seashard_build_info gauge",
        ]
        lines += [
            f'seashard_build_info{{shard="{s["shard"]}",version="{seashard.__version__}",'
            f'code="{s["code"]}"}} 1'
            for s in shards
            if "code" in s
        ]
    for s in shards:
        cpus = ",".join(map(str, s["cpus"]))
        lines.append(
            f'seashard_shard_info{{shard="{s["shard"]}",pid="{s["pid"]}",'
            f'cpus="{cpus}",stack="{_label(s["stack"])}"}} 1'
        )
    keys: list[str] = []
    for s in shards:
        keys += [k for k in s["metrics"] if k not in keys]
    for key in keys:
        gauge = key.endswith("_live") or key in GAUGES
        name = f"seashard_{key}" if gauge or key.endswith("_total") else f"seashard_{key}_total"
        lines.append(f"# TYPE {name} {'gauge' if gauge else 'counter'}")
        for s in shards:
            value = s["metrics"].get(key)
            shard = s["shard"]
            if isinstance(value, dict):
                for label, v in sorted(value.items()):
                    lab = LABELS.get(key, "reason")
                    lines.append(f'{name}{{shard="{shard}",{lab}="{_label(label)}"}} {v}')
            elif value is not None:
                lines.append(f'{name}{{shard="{shard}"}} {value}')
    return "\n".join(lines) + "\n"


async def _metrics() -> tuple[str, bytes]:
    return PROMETHEUS_TEXT, prometheus_text(await smp.invoke_on_all(shard_metrics)).encode()


async def _connections() -> tuple[str, bytes]:
    per_shard = await smp.invoke_on_all(shard_connections)
    table = [c for rows in per_shard for c in rows]
    return "application/json", (json.dumps(table, indent=1) + "\n").encode()


async def _shards() -> tuple[str, bytes]:
    shards = await smp.invoke_on_all(shard_metrics)
    return "application/json", (json.dumps(shards, indent=1) + "\n").encode()


ROUTES: dict[str, httpd.Route] = {
    "/metrics": _metrics,
    "/connections": _connections,
    "/shards": _shards,
}


class AdminServer:
    """Bound where it is made (the supervisor); ``start`` serves it from shard 0."""

    def __init__(self, host: str, port: int) -> None:
        self._sock = httpd.bind(host, port, "admin")
        self.port = self._sock.getsockname()[1]
        self._endpoint: httpd.HttpEndpoint | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._endpoint = httpd.HttpEndpoint(self._sock, ROUTES, loop, "admin")
        self._endpoint.start()

    def close(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()
        else:
            self._sock.close()
