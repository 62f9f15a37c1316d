"""Charts where people would rather look than read: PNGs in every artifacts folder.

Three charts of a lab run (a scenario, or a failing lab test), drawn from the
Prometheus of the same lab over the run's own time window:

* ``connections.png``: per-shard live connections and connections accepted
  per second over time, one column per server (both stacks);
* ``shares.png``: each shard's share of the connections its server accepted,
  and each client's share of the requests each server answered, as bars;
* ``latency-cdf.png``: the clients' latency CDF per target, before and during
  the impairment where there was one (else over the whole run).

And one of `scripts/bench`: ``bench_chart`` draws its ratios beside its JSON.

The drawing functions take plain data (`RunData`), so a test can feed known
numbers and read them back from the matplotlib artists; `collect` is the one
place that asks Prometheus.  `write_run_plots` never raises: a chart that could
not be drawn leaves ``plots-missing.txt`` saying why, beside whatever else the
run left (its summary, its pcap).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display here or in CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seashard_lab.rates import histogram_quantile  # noqa: E402

Series = list[tuple[float, float]]  # (seconds since the run's start, value)
Buckets = list[tuple[float, float]]  # cumulative (upper bound in seconds, count)

MISSING = "plots-missing.txt"
DATA = "plots-data.json"


@dataclass
class RunData:
    """What the charts of one run show; every time is seconds since the run's start."""

    title: str
    duration: float
    impairment: tuple[float, float] | None = None  # (start, end) of the impaired window
    impaired: str | None = None  # the client whose link was impaired: its latency is drawn
    # server -> shard -> series
    live: dict[str, dict[int, Series]] = field(default_factory=dict)
    accepted_rate: dict[str, dict[int, Series]] = field(default_factory=dict)
    # server -> shard -> connections accepted during the run
    shard_counts: dict[str, dict[int, float]] = field(default_factory=dict)
    # server (its stack's name) -> client -> requests answered during the run
    client_counts: dict[str, dict[str, float]] = field(default_factory=dict)
    # kind -> target -> phase ("before", "during" or "run") -> buckets
    latency: dict[str, dict[str, dict[str, Buckets]]] = field(default_factory=dict)


# ---------------------------------------------------------------- drawing


def _shade(ax, impairment: tuple[float, float] | None) -> None:
    if impairment is not None:
        ax.axvspan(*impairment, color="tab:red", alpha=0.12, label="impairment")


def plot_connections(data: RunData) -> Figure:
    """Per shard, over time: live connections (top) and accepted per second (bottom)."""
    servers = sorted(set(data.live) | set(data.accepted_rate))
    cols = max(1, len(servers))
    fig, axes = plt.subplots(2, cols, figsize=(6 * cols, 7), squeeze=False, sharex=True)
    fig.suptitle(f"{data.title}: connections per shard over time")
    for col, server in enumerate(servers):
        for row, (values, what) in enumerate(
            ((data.live, "live connections"), (data.accepted_rate, "accepted connections/s"))
        ):
            ax = axes[row][col]
            for i, (shard, series) in enumerate(sorted(values.get(server, {}).items())):
                xs, ys = zip(*series, strict=True) if series else ((), ())
                # equal counts on two shards draw one on top of the other: a style each
                style = ("-", "--", ":", "-.")[i % 4]
                ax.step(xs, ys, where="post", label=f"shard {shard}", linestyle=style)
            ax.set_ylim(bottom=0)
            _shade(ax, data.impairment)
            ax.set_title(f"{server}: {what}")
            ax.set_ylabel(what)
            ax.set_xlim(0, max(data.duration, 1.0))
            ax.grid(alpha=0.3)
            ax.legend(loc="upper right", fontsize="small")
            if row == 1:
                ax.set_xlabel("time since the run started (s)")
    if not servers:
        axes[0][0].set_title("no server reported connections")
    fig.tight_layout()
    return fig


def _grouped_bars(ax, groups: Mapping[str, Mapping[str, float]], member_name: str) -> None:
    """Bars of each group's members' shares (%), one colour per member."""
    names = sorted(g for g in groups if sum(groups[g].values()) > 0)
    members = sorted({m for g in names for m in groups[g]}, key=str)
    width = 0.8 / max(1, len(members))
    for i, member in enumerate(members):
        xs, hs = [], []
        for j, name in enumerate(names):
            total = sum(groups[name].values())
            xs.append(j - 0.4 + width * (i + 0.5))
            hs.append(100.0 * groups[name].get(member, 0.0) / total if total else 0.0)
        bars = ax.bar(xs, hs, width, label=f"{member_name} {member}".strip())
        ax.bar_label(bars, fmt="%.0f%%", fontsize="small")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 110)
    ax.set_ylabel("share (%)")
    ax.grid(axis="y", alpha=0.3)
    if members:
        ax.legend(loc="upper right", fontsize="small")


def plot_shares(data: RunData) -> Figure:
    """Left: each shard's share of its server's accepted connections; right: each
    client's share of the requests each server answered."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    fig.suptitle(f"{data.title}: how the load was shared")
    by_shard = {s: {str(k): v for k, v in c.items()} for s, c in data.shard_counts.items()}
    _grouped_bars(left, by_shard, "shard")
    totals = ", ".join(f"{s} {sum(c.values()):.0f}" for s, c in sorted(data.shard_counts.items()))
    left.set_title(f"connections accepted, per shard\n(in all: {totals or 'none'})", fontsize=10)
    left.set_xlabel("server")
    _grouped_bars(right, data.client_counts, "")
    totals = ", ".join(f"{s} {sum(c.values()):.0f}" for s, c in sorted(data.client_counts.items()))
    right.set_title(
        f"clients' requests (load generators), per client\n(in all: {totals or 'none'})",
        fontsize=10,
    )
    right.set_xlabel("server the requests went to (by stack)")
    fig.tight_layout()
    return fig


def cdf_points(buckets: Buckets) -> tuple[list[float], list[float]]:
    """Cumulative buckets -> (upper bounds in ms, fraction of requests at or below);
    the +Inf bucket has no place on a latency axis and is left out."""
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0.0
    xs, ys = [], []
    for bound, count in ordered:
        if math.isinf(bound) or total <= 0:
            continue
        xs.append(bound * 1e3)
        ys.append(count / total)
    return xs, ys


def plot_latency_cdf(data: RunData) -> Figure:
    """One panel per request kind: the latency CDF per target and phase, p99 in the legend."""
    kinds = sorted(data.latency)
    cols = max(1, len(kinds))
    fig, grid = plt.subplots(1, cols, figsize=(6 * cols, 5), squeeze=False)
    axes = list(grid[0])
    title = "latency CDF"
    if data.impairment is not None:
        title += f" of {data.impaired or 'the clients'}, before and during the impairment"
    fig.suptitle(f"{data.title}: {title}")
    for ax, kind in zip(axes, kinds, strict=False):
        for target, phases in sorted(data.latency[kind].items()):
            for phase, buckets in phases.items():
                xs, ys = cdf_points(buckets)
                if not xs:
                    continue
                p99 = histogram_quantile(0.99, buckets)
                n = max(c for _, c in buckets)
                label = f"{target}, {phase} (p99 {p99 * 1e3:.3g} ms, n={n:.0f})"
                ax.step(
                    xs, ys, where="post", label=label, linestyle="--" if phase == "during" else "-"
                )
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"requests of kind {kind!r}")
        ax.set_xlabel("latency (ms, log scale; bucket upper bounds)")
        ax.set_ylabel("fraction of requests at or below")
        ax.axhline(0.99, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right", fontsize="small")
    if not kinds:
        axes[0].set_title("no client reported latency")
    fig.tight_layout()
    return fig


BenchTable = Mapping[str, Mapping[str, float]]  # server -> measurement -> value

BENCH_LABELS = {
    "echo": "echo req/s",
    "canned": "connections/s",
    "mb_s": "bulk MB/s",
    "echo_cpu": "cpu µs per echo",
    "canned_cpu": "cpu µs per connection",
    "bulk_cpu": "cpu µs per MB (bulk)",
}


def bench_chart(panels: Sequence[tuple[str, BenchTable, str]], title: str) -> Figure:
    """`scripts/bench` tables as ratios to each table's baseline (same run): one panel
    per (title, table, baseline), one group per measurement, one bar per server."""
    fig, grid = plt.subplots(len(panels), 1, figsize=(11, 4.5 * len(panels)), squeeze=False)
    fig.suptitle(title)
    for ax, (panel_title, results, baseline) in zip(grid[:, 0], panels, strict=True):
        metrics = [m for m in results[baseline] if results[baseline][m]]
        servers = list(results)
        width = 0.8 / max(1, len(servers))
        for i, server in enumerate(servers):
            xs = [j - 0.4 + width * (i + 0.5) for j in range(len(metrics))]
            hs = [results[server].get(m, 0.0) / results[baseline][m] for m in metrics]
            bars = ax.bar(xs, hs, width, label=server)
            ax.bar_label(bars, fmt="%.2f", fontsize="x-small")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(metrics)), [BENCH_LABELS.get(m, m) for m in metrics])
        ax.set_ylabel(f"ratio to {baseline}")
        ax.set_xlabel(
            "measurement (req/s, conn/s, MB/s: higher is better; cpu µs: lower is better)"
        )
        ax.set_title(panel_title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- data from Prometheus


def _rel(series: Sequence[tuple[float, float]], start: float) -> Series:
    return [(t - start, v) for t, v in series if not math.isnan(v)]


BASELINE = 30.0  # seconds of latency "before" an impairment, reaching back before the run


@dataclass(frozen=True)
class RunWindow:
    """What a run's charts cover.

    ``start``/``end``/``impairment`` are wall-clock seconds; ``names`` maps a
    target host to a short name (172.28.0.10 -> posix).  With an impairment, the
    latency is ``impaired``'s (the client whose link it was; all clients' if None)
    in the `BASELINE` seconds before it (the lab's background load runs all the
    time, so "before" may reach back before the run) and during it.  ``clients``
    maps a client's Prometheus ``service`` label to its lab name where the two
    differ (a swarm replica is client@ADDRESS, the lab's client-N).
    """

    start: float
    end: float
    names: Mapping[str, str]
    title: str
    impairment: tuple[float, float] | None = None
    impaired: str | None = None
    clients: Mapping[str, str] | None = None


def collect(prom, run: RunWindow) -> RunData:
    """The run's data from Prometheus (``prom``: a `seashard_lab.prometheus.Prometheus`)."""
    start, end, names, title = run.start, run.end, run.names, run.title
    impairment, impaired = run.impairment, run.impaired
    clients = dict(run.clients or {})
    label_of = {name: label for label, name in clients.items()}
    data = RunData(title=title, duration=end - start, impaired=impaired)
    if impairment is not None:
        data.impairment = (impairment[0] - start, impairment[1] - start)
    for labels, series in prom.query_range("seashard_connections_live", start, end):
        server, shard = labels.get("service", "?"), int(labels.get("shard", 0))
        data.live.setdefault(server, {})[shard] = _rel(series, start)
    for labels, series in prom.query_range("rate(seashard_connections_total[5s])", start, end):
        server, shard = labels.get("service", "?"), int(labels.get("shard", 0))
        data.accepted_rate.setdefault(server, {})[shard] = _rel(series, start)

    for labels, value in _rise(prom, "seashard_connections_total", start, end):
        server, shard = labels.get("service", "?"), int(labels.get("shard", 0))
        data.shard_counts.setdefault(server, {})[shard] = value
    for labels, value in _rise(
        prom, "sum by (service, target) (seashard_load_requests_total)", start, end
    ):
        host = labels.get("target", "?").rpartition(":")[0]
        server = names.get(host, host)  # every port of a server together
        per_client = data.client_counts.setdefault(server, {})
        client = labels.get("service", "?")
        client = clients.get(client, client)
        per_client[client] = per_client.get(client, 0.0) + value

    phases = [("run", start, end)]
    if impairment is not None:
        on, off = impairment
        phases = [("before", on - max(BASELINE, on - start), on), ("during", on, off)]
    who = label_of.get(impaired, impaired) if impaired else None
    selector = f'{{service="{who}"}}' if impairment is not None and who else ""
    for phase, t0, t1 in phases:
        if t1 - t0 < 1:
            continue
        expr = (
            f"sum by (target, kind, le) (increase(seashard_load_latency_seconds_bucket{selector}"
            f"[{max(2, round(t1 - t0))}s]))"
        )
        for labels, value in prom.query(expr, at=t1):
            kind, target = labels.get("kind", "?"), _short(labels.get("target", "?"), names)
            buckets = data.latency.setdefault(kind, {}).setdefault(target, {}).setdefault(phase, [])
            buckets.append((float(labels["le"]), value))
    return data


def _rise(prom, expr: str, start: float, end: float) -> list[tuple[dict[str, str], float]]:
    """How much each counter series of ``expr`` rose from ``start`` to ``end``: its
    value at the end less its value at the start (the last scrape before each).
    Not ``increase(...[W])``, which sees only the samples inside the window and so
    misses what happened between ``start`` and the first scrape after it -- all of
    a short run's burst, at times.  A series that went down was reset (a restarted
    program): its value at the end is what it counted since."""
    before = {_key(labels): value for labels, value in prom.query(expr, at=start)}
    out = []
    for labels, value in prom.query(expr, at=end):
        was = before.get(_key(labels))
        out.append((labels, value - was if was is not None and value >= was else value))
    return out


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _short(target: str, names: Mapping[str, str]) -> str:
    host, _, port = target.rpartition(":")
    return f"{names[host]}:{port}" if host in names else target


# ---------------------------------------------------------------- one run's folder


def draw_run(data: RunData, folder: Path) -> list[Path]:
    """Every chart of a run into ``folder``; what failed is said in plots-missing.txt."""
    written, missing = [], []
    for name, draw in (
        ("connections.png", plot_connections),
        ("shares.png", plot_shares),
        ("latency-cdf.png", plot_latency_cdf),
    ):
        try:
            written.append(save(draw(data), folder / name))
        except Exception as exc:  # noqa: BLE001 - the run's other artifacts matter more
            plt.close("all")
            missing.append(f"{name}: {type(exc).__name__}: {exc}")
    if missing:
        _missing(folder, missing)
    return written


def write_run_plots(folder: Path, prom, run: RunWindow) -> tuple[list[Path], str | None]:
    """Collect and draw; never raises.  Returns (files written, why some are missing)."""
    try:
        data = collect(prom, run)
    except Exception as exc:  # noqa: BLE001 - Prometheus down, a bad answer, ...
        why = f"no data for the plots from Prometheus: {exc}"
        _missing(folder, [why], detail=traceback.format_exc())
        return [], why
    folder.mkdir(parents=True, exist_ok=True)
    # the numbers behind the charts, for a reader (and a test) to check against
    (folder / DATA).write_text(json.dumps(dataclasses.asdict(data), indent=1))
    written = draw_run(data, folder)
    why = (folder / MISSING).read_text().strip() if (folder / MISSING).exists() else None
    return written, why


def _missing(folder: Path, lines: list[str], detail: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "Plots missing from this folder, and why:\n" + "".join(f"  {x}\n" for x in lines)
    (folder / MISSING).write_text(text + (f"\n{detail}" if detail else ""))


def write_lab_plots(
    lab,
    folder: Path,
    start: float,
    end: float,
    title: str,
    impairment: tuple[float, float, str] | None = None,
    settle: float = 2.0,
) -> str:
    """The charts of a run on ``lab`` (a `seashard_lab.lab.Lab`: its servers' addresses
    and its Prometheus, whatever deployed it), after ``settle`` seconds for
    Prometheus' last scrape; one line for the summary."""
    from .plan import CLIENTS, SERVERS, STACK_OF
    from .prometheus import Prometheus

    time.sleep(settle)
    names = {lab.service_ip(s): STACK_OF[s] for s in SERVERS}
    window, impaired = (impairment[:2], impairment[2]) if impairment else (None, None)
    clients = {lab.prometheus_label(c): c for c in CLIENTS}
    run = RunWindow(start, end, names, title, window, impaired, clients)
    written, why = write_run_plots(folder, Prometheus(lab.prometheus_url()), run)
    line = "plots:     " + (", ".join(p.name for p in written) if written else "none")
    if why:
        line += f" ({MISSING}: {why.splitlines()[-1].strip()})"
    return line
