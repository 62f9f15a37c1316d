"""The admin endpoint: per-shard metrics (Prometheus text) and the connection table (JSON).

It runs on shard 0, in a thread with the stdlib HTTP server; each request asks
every shard for its numbers with ``invoke_on_all`` on shard 0's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from seashard import net, smp

GATHER_TIMEOUT = 5.0
GAUGES = {"connections_time_wait", "arp_cache_entries"}  # besides every *_live
LABELS = {"tcp_syn_queue_live": "port", "tcp_accept_queue_live": "port"}  # else "reason"


def shard_metrics() -> dict[str, Any]:
    """Runs on each shard: who it is and what its stack counted."""
    return {
        "shard": smp.this_shard_id(),
        "pid": os.getpid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "stack": net.stack().name,
        "metrics": net.stack().metrics(),
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


class AdminServer:
    def __init__(self, host: str, port: int, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        admin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                admin._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep stderr for the servers' own lines

        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise smp.StartupError(f"admin: bind: {exc.strerror} ({host}:{port})") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="seashard-admin", daemon=True
        )
        self._thread.start()

    def _gather(self, fn: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(smp.invoke_on_all(fn), self._loop)
        return future.result(timeout=GATHER_TIMEOUT)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                body = prometheus_text(self._gather(shard_metrics)).encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif path == "/connections":
                table = [c for per_shard in self._gather(shard_connections) for c in per_shard]
                body = (json.dumps(table, indent=1) + "\n").encode()
                ctype = "application/json"
            elif path == "/shards":
                body = (json.dumps(self._gather(shard_metrics), indent=1) + "\n").encode()
                ctype = "application/json"
            else:
                req.send_error(404, "try /metrics, /connections or /shards")
                return
        except Exception as exc:  # a shard did not answer in time
            req.send_error(503, f"shards did not answer: {exc!r}")
            return
        req.send_response(200)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
