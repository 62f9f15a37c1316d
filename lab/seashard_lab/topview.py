"""The frame `scripts/lab top` draws: rich tables from `rates` rows, 80 columns wide.

Numbers are compact (1.2k, 3.4M) so that a native server's ten columns fit a
plain 80-column terminal; a service that did not answer is one red line that
says so and why, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from seashard_lab.rates import ShardRow, TargetRow


@dataclass
class ServerView:
    name: str  # service, e.g. posix-server
    url: str
    rows: list[ShardRow] = field(default_factory=list)
    error: str | None = None  # why it is down


@dataclass
class ClientView:
    name: str
    url: str
    rows: list[TargetRow] = field(default_factory=list)
    error: str | None = None


def compact(value: float | None, unit: str = "") -> str:
    """1234 -> 1.2k, 5e6 -> 5.0M; None -> '-' (no rate yet)."""
    if value is None:
        return "-"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f}{suffix}{unit}"
    if value == int(value):
        return f"{int(value)}{unit}"
    return f"{value:.1f}{unit}"


def duration(seconds: float | None) -> str:
    """Latency: 0.00042 -> 420µs, 0.0123 -> 12.3ms, 1.5 -> 1.50s."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def _table(title: str, columns: Sequence[str]) -> Table:
    t = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,  # no rules: two servers and the clients fit an 80x24 terminal
        pad_edge=False,
        padding=(0, 1),  # two spaces between columns
        show_edge=False,
    )
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=True)
    return t


def _down(name: str, url: str, error: str) -> Text:
    return Text.assemble((f"{name}: DOWN", "bold red"), f" ({url}: {error})")


def server_table(view: ServerView) -> RenderableType:
    if view.error is not None:
        return _down(view.name, view.url, view.error)
    native = any(r.frames_per_s is not None or r.drops is not None for r in view.rows)
    cols = ["shard", "pid", "cpus", "cpu%", "live", "conn/s", "in B/s", "out B/s"]
    if native:
        cols += ["frm/s", "drops", "fwd"]
    table = _table(view.name, cols)
    for r in view.rows:
        cells = [
            str(r.shard),
            str(r.pid) if r.pid is not None else "-",
            r.cpus or "-",
            "-" if r.cpu_percent is None else f"{r.cpu_percent:.0f}",
            compact(r.live),
            compact(r.connections_per_s),
            compact(r.bytes_in_per_s),
            compact(r.bytes_out_per_s),
        ]
        if native:
            cells += [compact(r.frames_per_s), compact(r.drops), compact(r.forwarded)]
        table.add_row(*cells)
    if not view.rows:
        return Text.assemble((f"{view.name}: ", "bold"), "answers, but reports no shard")
    return table


def short_target(target: str, names: dict[str, str]) -> str:
    """172.28.0.10 -> posix, 172.28.0.10:1234 -> posix:1234, when the address is known."""
    host, sep, port = target.rpartition(":")
    if not sep:
        return names.get(target, target)
    return f"{names[host]}:{port}" if host in names else target


def client_table(views: Sequence[ClientView], names: dict[str, str]) -> RenderableType:
    parts: list[RenderableType] = []
    table = _table("clients", ["client", "server", "kind", "req/s", "errors", "p50", "p99"])
    rows = 0
    for v in views:
        if v.error is not None:
            parts.append(_down(v.name, v.url, v.error))
            continue
        for r in v.rows:
            errors = compact(r.errors)
            if r.errors_per_s:
                errors += f" +{compact(r.errors_per_s)}/s"
            table.add_row(
                v.name,
                short_target(r.target, names),
                r.kind,
                compact(r.requests_per_s),
                errors,
                duration(r.p50),
                duration(r.p99),
            )
            rows += 1
        if not v.rows:
            parts.append(Text(f"{v.name}: answers, no load measured yet"))
    return Group(*([table] if rows else []), *parts)


def frame(
    servers: Sequence[ServerView],
    clients: Sequence[ClientView],
    names: dict[str, str],
    header: str,
) -> RenderableType:
    """The whole screen: a header line, one table per server, the clients."""
    parts: list[RenderableType] = [Text(header, style="dim")]
    for s in servers:
        parts.append(server_table(s))
    parts.append(client_table(clients, names))
    return Group(*parts)
