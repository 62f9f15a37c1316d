"""The step library: every step a scenario file may use, its keys, and what it does.

A scenario file (scenarios/*.toml) has a few top-level keys and two arrays
of steps::

    name = "my-bug"                    # default: the file's name
    about = "what it shows, one line"
    servers = ["posix", "native"]      # [[step]] runs once per server, in order

    [[setup]]                          # once, before the per-server steps
    do = "pause-clients"

    [[step]]
    do = "load"
    kind = "canned"
    connections = 20

Each step is a table whose ``do`` names its kind; the keys below are all it
may have (``scripts/lab scenario --check FILE`` checks a file).  ``server``
in a step means the current one of ``servers`` unless given ("posix" or
"native").  ``label`` (any step) is the start of the step's line;
``{stack}`` in it is the current server's stack.  Afterwards the lab is
always put back: client links unimpaired, default server arguments, the
clients' load running.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import steps as lab_steps
from ..capture import Capture
from ..lab import Background, Lab, LabError
from ..metrics import Metrics, delta, shares
from ..plan import CLIENTS, PORTS, SERVER_OF, STACK_OF

# ---------------------------------------------------------------- keys and their types


@dataclass(frozen=True)
class Param:
    # "int", "float", "number", "str", "bool", "list[str]", "list[int]", "str|list[str]", "int|str"
    type: str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None


def check_value(p: Param, value: Any) -> str | None:
    """What is wrong with ``value`` for ``p``, or None."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return is_int(v) or isinstance(v, float)

    ok = {
        "int": is_int(value),
        "float": is_num(value),
        "number": is_num(value),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "list[int]": isinstance(value, list) and all(is_int(v) for v in value),
        "str|list[str]": isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
        "int|str": is_int(value) or isinstance(value, str),
    }[p.type]
    if not ok:
        return f"must be {p.type.replace('|', ' or ')}, not {value!r}"
    values = value if isinstance(value, list) else [value]
    if p.choices:
        bad = [v for v in values if v not in p.choices]
        if bad:
            return f"must be one of {', '.join(p.choices)}, not {bad[0]!r}"
    for v in values:
        if is_num(v) and p.minimum is not None and v < p.minimum:
            return f"must be at least {p.minimum:g}, not {v!r}"
        if is_num(v) and p.maximum is not None and v > p.maximum:
            return f"must be at most {p.maximum:g}, not {v!r}"
    return None


STACKS = ("posix", "native")
CLIENT_NAMES = (*CLIENTS, "both")
SECTIONS = ("setup", "step")
TOP_KEYS = {
    "name": Param("str", help="the scenario's name"),
    "about": Param("str", help="one line: what it shows"),
    "servers": Param("list[str]", help="[[step]] runs once per server", choices=STACKS),
}
COMMON = {
    "label": Param("str", help="the start of this step's line ({stack}: the current stack)"),
}
SERVER = Param("str", help="posix or native (default: the current server)", choices=STACKS)
CLIENT_PARAM = Param(
    "str|list[str]", "client-1", "client-1, client-2, both, or a list", choices=CLIENT_NAMES
)
LOAD_KINDS = ("echo", "canned", "accept", "short", "hold", "steer")


@dataclass(frozen=True)
class StepSpec:
    help: str
    params: dict[str, Param]
    run: Callable[[Context, Any], None]
    check: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None


# ---------------------------------------------------------------- running


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.problems: list[str] = []
        self.details: dict[str, Any] = {}

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def expect(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
            self.line(f"  UNEXPECTED: {problem}")
        return ok


@dataclass
class LoadOutcome:
    kind: str
    server: str
    clients: list[str]
    per_client: dict[str, dict[str, Any]]
    before: Metrics
    after: Metrics
    seconds: float
    retrans_before: dict[str, int]
    retrans_after: dict[str, int]
    hold: lab_steps.HoldResult | None = None

    @property
    def results(self) -> list[dict[str, Any]]:
        return [r for s in self.per_client.values() for r in s["results"]]

    @property
    def errors(self) -> list[str]:
        return [e for s in self.per_client.values() for e in s["errors"]]

    @property
    def server_restarted(self) -> bool:
        """The server's shards are other processes than when the load began."""
        pids = [
            {s: i.get("pid") for s, i in m.shard_info().items()} for m in (self.before, self.after)
        ]
        return pids[0] != pids[1]

    def rise(self, name: str, **match: str) -> dict[int, float]:
        """How much a counter rose during the load (since the restart, if the server restarted)."""
        if self.server_restarted:
            return self.after.per_shard(name, **match)
        return delta(self.after.per_shard(name, **match), self.before.per_shard(name, **match))

    @property
    def per_shard(self) -> dict[int, float]:
        if self.hold is not None:
            return dict(self.hold.per_shard())
        return self.rise("seashard_connections_total")

    def ours(self) -> set[str]:
        return {
            f"{s['local_ip']}:{r['port']}"
            for s in self.per_client.values()
            for r in s["results"]
            if r.get("port")
        }


@dataclass
class RestartOutcome:
    server: str
    args: list[str]
    rc: int
    first_line: str
    seconds: float  # the start alone: until ready, or until it failed
    stderr: str
    stop_seconds: float | None = None  # a restart's stop before it (its --grace included)


@dataclass
class Context:
    lab: Lab
    rep: Report
    path: Path
    folder: Path
    server: str = "posix-server"
    loads: dict[str, LoadOutcome] = field(default_factory=dict)
    pending: dict[str, Callable[[], LoadOutcome]] = field(default_factory=dict)
    restarts: list[RestartOutcome] = field(default_factory=list)
    captures: dict[str, Capture] = field(default_factory=dict)
    last_load: str | None = None
    step: Any = None  # parse.Step

    @property
    def stack(self) -> str:
        return STACK_OF[self.server]

    def server_of(self, params: dict[str, Any]) -> str:
        return SERVER_OF[params["server"]] if params.get("server") else self.server

    def label(self, params: dict[str, Any], default: str | None = None) -> str:
        return (params.get("label") or default or "{stack}").replace("{stack}", self.stack)

    def where(self, key: str | None = None) -> str:
        return self.step.where(self.path, key) if self.step is not None else str(self.path)


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def shard_counts(per_shard: dict[int, float]) -> str:
    total = sum(per_shard.values())
    if not per_shard:
        return "none"
    return ", ".join(f"shard {s} {v:.0f} ({pct(v, total)})" for s, v in sorted(per_shard.items()))


def clients_of(value: str | list[str]) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for n in names:
        out += list(CLIENTS) if n == "both" else [n]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- server steps


def _serve_args(ctx: Context, server: str, p: dict[str, Any]) -> list[str] | None:
    if p.get("defaults"):
        return None
    return ctx.lab.serve_args(
        server,
        reuse_address=p["reuse_address"],
        shard0_only=p["shard0_only"],
        smp=p.get("smp"),
        lba=p.get("lba"),
        grace=p["grace"],
        extra=p.get("args") or (),
        services=p.get("services") or (),
    )


def run_restart(ctx: Context, step: Any) -> None:
    p = step.params
    server = ctx.server_of(p)
    args = _serve_args(ctx, server, p)
    t0 = time.monotonic()
    if step.kind == "stop":
        res = ctx.lab.labctl(server, "stop", timeout=60)
        ctx.rep.line(f"{ctx.label(p)}: stopped ({res.stdout.strip().splitlines()[-1:]})")
        return
    # A restart is a stop, then a start, timed apart: the stop waits out the old
    # server's --grace, and how fast a start fails (a busy port: at once) or gets
    # ready is the start's own time.
    stop_seconds = None
    if step.kind == "restart":
        stopped = ctx.lab.labctl(server, "stop", timeout=60)
        stop_seconds = time.monotonic() - t0
        if not stopped.ok:
            raise LabError(f"{server}: labctl stop failed:\n{stopped.describe()}")
        t0 = time.monotonic()
    res = ctx.lab.labctl(server, "start", *(args or ["--defaults"]), timeout=90)
    seconds = time.monotonic() - t0
    lines = res.stderr.splitlines()
    first = lines[0] if lines and not res.ok else ""
    outcome = RestartOutcome(
        server, args or ["--defaults"], res.rc, first, seconds, res.stderr, stop_seconds
    )
    ctx.restarts.append(outcome)
    shown = " ".join(args) if args else "its default arguments"
    state = f"ready after {seconds:.1f} s" if res.ok else f"after {seconds:.1f} s: {first!r}"
    if stop_seconds is not None:
        state = f"stopped in {stop_seconds:.1f} s; start: exit {res.rc}, {state}"
    else:
        state = f"exit {res.rc}, {state}"
    ctx.rep.line(f"{ctx.label(p, '{stack}: ' + step.kind + ' with ' + shown)}: {state}")


def _check_restart(p: dict[str, Any]) -> tuple[str, str] | None:
    others = ("args", "smp", "lba", "shard0_only", "services")
    if p.get("defaults") and any(p.get(k) for k in others):
        return "defaults", "'defaults = true' takes no other server arguments"
    return None


RESTART_PARAMS = {
    "server": SERVER,
    "defaults": Param("bool", False, "the container's default arguments, as they are"),
    "reuse_address": Param("bool", True, "--reuse-address"),
    "shard0_only": Param("bool", False, "--shard0-only: listen on shard 0 only"),
    "smp": Param("int", None, "-c N: shards", minimum=1, maximum=64),
    "lba": Param("str", None, "--lba", choices=("connection_distribution", "port", "fixed")),
    "grace": Param("number", 0, "--grace seconds", minimum=0),
    "args": Param("list[str]", [], "more `seashard serve` arguments, as words"),
    "services": Param(
        "list[str]",
        [],
        "only these services (default: all three)",
        choices=("echo", "canned", "accept-logger"),
    ),  # fmt: skip
}


def run_clients(ctx: Context, step: Any) -> None:
    if step.kind == "pause-clients":
        ctx.lab.clients_quiet()
        ctx.rep.line(ctx.label(step.params, "clients") + ": background load paused")
    else:
        ctx.lab.clients_resume()
        ctx.rep.line(ctx.label(step.params, "clients") + ": background load running again")


# ---------------------------------------------------------------- load


def traffic_args(ctx: Context, server: str, p: dict[str, Any]) -> list[str]:
    kind = p["kind"]
    args = [kind, "--host", ctx.lab.service_ip(server), "--timeout", f"{p['timeout']:g}"]
    if p.get("port"):
        args += ["--port", str(p["port"])]
    if kind == "echo":
        args += ["--sizes", ",".join(map(str, p["sizes"])), "--concurrency", str(p["concurrency"])]
    else:
        args += ["--count", str(p["connections"]), "--concurrency", str(p["concurrency"])]
    if p["rate"]:
        args += ["--rate", f"{p['rate']:g}"]
    if p["autobind"]:
        args.append("--autobind")
    if p["half_close"]:
        args.append("--half-close")
    return args


def start_load(ctx: Context, p: dict[str, Any]) -> Callable[[], LoadOutcome]:
    """Start a load; the function returned waits for it and measures."""
    lab, server, kind = ctx.lab, ctx.server_of(p), p["kind"]
    clients = clients_of(p["from"])
    retrans_before = {c: lab_steps.tcp_retrans_segs(lab, c) for c in clients}
    before = lab.metrics(server)
    t0 = time.monotonic()
    if kind == "hold":
        hold = lab_steps.hold_step(
            lab,
            server,
            per_client=p["connections"],
            seconds=p["seconds"],
            samples=p["samples"],
            gap=p["gap"],
            clients=tuple(clients),
        )

        def done_hold() -> LoadOutcome:
            return LoadOutcome(
                kind, server, clients, hold.per_client, hold.metrics_before,
                hold.metrics_after, time.monotonic() - t0, retrans_before,
                {c: lab_steps.tcp_retrans_segs(lab, c) for c in clients}, hold,
            )  # fmt: skip

        return done_hold
    args = traffic_args(ctx, server, p)
    runs: dict[str, Background] = {
        c: lab.traffic_background(c, *args, "--seed", str(n + 1)) for n, c in enumerate(clients)
    }

    def done() -> LoadOutcome:
        per_client = {c: run.finish(timeout=p["limit"]) for c, run in runs.items()}
        seconds = time.monotonic() - t0
        return LoadOutcome(
            kind, server, clients, per_client, before, lab.metrics(server), seconds,
            retrans_before, {c: lab_steps.tcp_retrans_segs(lab, c) for c in clients},
        )  # fmt: skip

    return done


def describe_load(ctx: Context, out: LoadOutcome, label: str) -> None:
    results = out.results
    ok = sum(1 for r in results if r.get("ok"))
    who = "+".join(out.clients)
    head = f"{label}: {len(results)} {out.kind} connections from {who}"
    if out.kind == "steer":
        outcomes: dict[str, int] = {}
        for r in results:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        head += ": " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    elif out.kind == "echo":
        sizes = ", ".join(
            f"{r['size']}B {r['seconds']:.2f}s{'' if r.get('ok') else ' FAILED'}"
            for r in results[:12]
        )
        head += f": {sizes}" + (" ..." if len(results) > 12 else "")
    else:
        head += f": ok {ok}/{len(results)}"
    rise = "owners per shard" if out.hold is not None else "connections_total rise per shard"
    if out.hold is None and out.server_restarted:
        rise += " (since the server's restart)"
    parts = [head, f"{rise}: {shard_counts(out.per_shard)}"]
    if out.hold is not None:
        parts.append(
            f"by client per shard {out.hold.per_shard_client()}; owner changes over "
            f"{len(out.hold.samples)} samples: {len(out.hold.owner_changes())}"
        )
    retx = {c: out.retrans_after[c] - out.retrans_before[c] for c in out.clients}
    if any(retx.values()):
        server_retx = out.rise("seashard_tcp_retransmits_total")
        parts.append(
            "retransmitted segments: "
            + ", ".join(f"{c} {v}" for c, v in retx.items())
            + (f", server {sum(server_retx.values()):.0f}" if server_retx else "")
        )
    parts.append(f"errors {len(out.errors)}; {out.seconds:.1f} s")
    ctx.rep.line("; ".join(parts))
    ctx.rep.details.setdefault("loads", []).append(
        {
            "label": label,
            "kind": out.kind,
            "server": out.server,
            "per_shard": out.per_shard,
            "errors": out.errors[:20],
            "results": results[:50],
        }
    )


def run_load(ctx: Context, step: Any) -> None:
    p = step.params
    name = p.get("name") or f"load-{len(ctx.loads) + len(ctx.pending) + 1}"
    finish = start_load(ctx, p)
    if p["background"]:
        ctx.pending[name] = finish
        who = "+".join(clients_of(p["from"]))
        ctx.rep.line(f"{ctx.label(p)}: {p['kind']} load from {who} started in the background")
        return
    out = finish()
    ctx.loads[name] = out
    ctx.last_load = name
    describe_load(ctx, out, ctx.label(p))


def run_finish(ctx: Context, step: Any) -> None:
    p = step.params
    names = [p["name"]] if p.get("name") else list(ctx.pending)
    for name in names:
        if name not in ctx.pending:
            raise LabError(f"{ctx.where('name')}: no background load named {name!r} is running")
        out = ctx.pending.pop(name)()
        ctx.loads[name] = out
        ctx.last_load = name
        describe_load(ctx, out, ctx.label(p, f"{{stack}} {name}"))


def _check_load(p: dict[str, Any]) -> tuple[str, str] | None:
    if p["kind"] == "echo" and not p["sizes"]:
        return "sizes", "an echo load needs 'sizes' (bytes per connection)"
    if p["kind"] == "hold" and p["background"]:
        return "background", "a hold load samples owners while it runs: not in the background"
    return None


LOAD_PARAMS = {
    "kind": Param(
        "str",
        None,
        "echo (sizes, byte-exact), canned, accept, short (1-byte echo, RST close), "
        "hold (long-lived, owners sampled), steer (one after another: outcomes)",
        choices=LOAD_KINDS,
        required=True,
    ),
    "server": SERVER,
    "from": CLIENT_PARAM,
    "connections": Param("int", 10, "connections per client", minimum=1, maximum=100000),
    "concurrency": Param("int", 1, "connections at a time per client", minimum=1, maximum=1000),
    "rate": Param("number", 0, "connections started per second per client (0: no cap)", minimum=0),
    "sizes": Param("list[int]", [], "echo: bytes per connection, one connection per size"),
    "seconds": Param("number", 6, "hold: how long the connections live", minimum=0.5),
    "samples": Param("int", 3, "hold: owner samples while they live", minimum=1),
    "gap": Param("number", 1.0, "hold: seconds between samples", minimum=0),
    "port": Param("int", None, "the service port (default: the kind's)", minimum=1, maximum=65535),
    "autobind": Param("bool", False, "let connect() pick the local port, as Linux clients do"),
    "half_close": Param("bool", False, "echo: shut the write side right after the last byte"),
    "timeout": Param("number", 20, "seconds any one wait of a connection may take", minimum=0.1),
    "limit": Param("number", 300, "seconds the whole load may take", minimum=1),
    "background": Param("bool", False, 'start it and go on; `do = "finish"` waits for it'),
    "name": Param("str", None, "what `expect` and `finish` call it (default load-N)"),
}


# ---------------------------------------------------------------- impair, capture, wait


def link_restored(rep: Report, who: str, counts: dict[str, int]) -> None:
    rep.line(
        f"{who}: link restored; impairment: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


def run_impair(ctx: Context, step: Any) -> None:
    p = step.params
    client = p["client"]
    if p["off"]:
        link_restored(ctx.rep, ctx.label(p, client), ctx.lab.impair_off(client))
        return
    settings = {k: p[k] for k in ("loss", "reorder", "duplicate", "delay", "seed", "duration")}
    res = ctx.lab.impair_on(client, **settings)
    if not res.ok:
        ctx.lab.exec(client, ["lab-impair", "off"], timeout=30)
        raise LabError(f"{ctx.where()}: lab-impair on in {client} failed: {res.stderr.strip()}")
    ctx.rep.line(f"{ctx.label(p, client)}: {(res.stdout + res.stderr).strip().splitlines()[-1]}")


IMPAIR_PARAMS = {
    "client": Param("str", "client-2", "whose link", choices=CLIENTS),
    "loss": Param("number", 0.0, "fraction of frames dropped", minimum=0, maximum=0.99),
    "reorder": Param("number", 0.0, "fraction of frames held back", minimum=0, maximum=0.99),
    "duplicate": Param("number", 0.0, "fraction of frames sent twice", minimum=0, maximum=0.99),
    "delay": Param("number", 1, "ms of delay (netem only; its reordering needs 1)", minimum=0),
    "seed": Param("int", 1, "the relay's random seed (netem has none)"),
    "duration": Param("number", 240, "seconds, then the link restores itself", minimum=1),
    "off": Param("bool", False, "restore the link now (and say what the impairment did)"),
}


def run_capture(ctx: Context, step: Any) -> None:
    p = step.params
    name = p["name"]
    if p["stop"]:
        capture = ctx.captures.pop(name)
        dest = ctx.folder / f"capture-{name}.pcap"
        capture.save(dest)
        ctx.rep.line(
            f"{ctx.label(p, 'capture')}: {name} -> {dest.name} ({dest.stat().st_size} bytes)"
        )
        return
    service = None if p["service"] == "lab" else p["service"]
    ctx.captures[name] = ctx.lab.capture(service, p.get("iface"), p["filter"])
    ctx.rep.line(f"{ctx.label(p, 'capture')}: {name} on {ctx.captures[name].name} started")


CAPTURE_PARAMS = {
    "name": Param("str", "capture", "the capture's name (its file: capture-NAME.pcap)"),
    "service": Param("str", "lab", "a service, or lab (the lab bridge)"),
    "iface": Param("str", None, "interface (default eth0, or the bridge)"),
    "filter": Param("str", "", "tcpdump filter"),
    "stop": Param("bool", False, "stop capture NAME and keep its pcap (else: at the end)"),
}


def run_wait(ctx: Context, step: Any) -> None:
    time.sleep(step.params["seconds"])


# ---------------------------------------------------------------- expect


def run_expect(ctx: Context, step: Any) -> None:
    p = step.params
    rep, lab = ctx.rep, ctx.lab
    prefix = ctx.label(p)

    def fail(key: str, what: str) -> None:
        rep.expect(False, f"{ctx.where(key)}: {prefix}: {what}")

    restart_keys = ("exit_code", "message", "ready_within")
    if any(p.get(k) is not None for k in restart_keys):
        if not ctx.restarts:
            fail("exit_code", "no restart to look at")
        else:
            r = ctx.restarts[-1]
            want = p.get("exit_code")
            if want == "nonzero" and r.rc == 0:
                fail("exit_code", "the restart succeeded (exit 0); expected it to fail")
            elif isinstance(want, int) and r.rc != want:
                fail("exit_code", f"the restart's exit status is {r.rc}, expected {want}")
            if p.get("message") is not None and not r.first_line.startswith(p["message"]):
                fail(
                    "message", f"the restart's first line is {r.first_line!r}, not {p['message']!r}"
                )
            if p.get("ready_within") is not None and r.seconds > p["ready_within"]:
                fail("ready_within", f"the start took {r.seconds:.1f} s")

    load_keys = (
        "all_ok", "echo_exact", "max_errors", "min_errors", "outcomes", "unserved_logged",
        "min_share", "max_share", "on_shard", "shards", "owners_unchanged", "in_time_wait",
        "counter", "client_retransmits",
    )  # fmt: skip
    if not any(p.get(k) is not None for k in load_keys):
        return
    name = p.get("of") or ctx.last_load
    if name is None or name not in ctx.loads:
        fail("of", f"no finished load named {name!r} to look at")
        return
    out = ctx.loads[name]
    results = out.results
    if p.get("all_ok") and not all(r.get("ok") for r in results):
        bad = [r for r in results if not r.get("ok")]
        fail("all_ok", f"{len(bad)} of {len(results)} connections not ok: {out.errors[:3]}")
    if p.get("echo_exact") and not all(r.get("exact") and r.get("eof", True) for r in results):
        fail("echo_exact", f"echo not byte-exact: {out.errors[:3]}")
    if p.get("max_errors") is not None and len(out.errors) > p["max_errors"]:
        fail(
            "max_errors", f"{len(out.errors)} errors (at most {p['max_errors']}): {out.errors[:3]}"
        )
    if p.get("min_errors") is not None and len(out.errors) < p["min_errors"]:
        fail("min_errors", f"{len(out.errors)} errors (expected at least {p['min_errors']})")
    if p.get("outcomes") is not None:
        seen = {r.get("outcome") for r in results}
        if not seen <= set(p["outcomes"]):
            fail("outcomes", f"outcomes {sorted(map(str, seen - set(p['outcomes'])))} not allowed")
    if p.get("unserved_logged"):
        log = lab.run_log(out.server)
        unserved = [r for r in results if r.get("outcome") != "served"]
        ip = lab.ip(out.clients[0])
        unlogged = [r for r in unserved if f" connection from {ip}:{r['port']} " not in log + " "]
        rep.line(
            f"{prefix}: not served and logged by the server: "
            f"{len(unserved) - len(unlogged)}/{len(unserved)}"
        )
        if unlogged:
            fail("unserved_logged", f"{len(unlogged)} closes/resets the server did not log")
    per_shard, share = out.per_shard, shares(out.per_shard)
    if p.get("min_share") is not None and (
        len(per_shard) < 2 or min(share.values()) < p["min_share"]
    ):
        fail("min_share", f"a shard got less than {p['min_share']:.0%}: {shard_counts(per_shard)}")
    if p.get("max_share") is not None and share and max(share.values()) > p["max_share"]:
        fail("max_share", f"a shard got more than {p['max_share']:.0%}: {shard_counts(per_shard)}")
    if p.get("on_shard") is not None:
        others = {s: v for s, v in per_shard.items() if s != p["on_shard"] and v}
        if others or not per_shard.get(p["on_shard"]):
            fail("on_shard", f"not all on shard {p['on_shard']}: {shard_counts(per_shard)}")
    if p.get("shards") is not None and len([v for v in per_shard.values() if v]) != p["shards"]:
        fail("shards", f"connections on {len(per_shard)} shards, expected {p['shards']}")
    if p.get("owners_unchanged"):
        if out.hold is None:
            fail("owners_unchanged", "owners are sampled only by a hold load")
        elif out.hold.owner_changes():
            fail("owners_unchanged", f"connections changed shard: {out.hold.owner_changes()}")
    if p.get("in_time_wait"):
        port = p.get("port") or PORTS["canned"]
        ours = out.ours()
        tw = lab.time_wait_remotes(out.server, port)
        rep.line(
            f"{prefix}: TIME_WAIT on the server's :{port}: {len(tw)} ({len(ours & tw)} of ours)"
        )
        if not ours & tw:
            fail("in_time_wait", "none of our connections in TIME_WAIT on the server")
    if p.get("counter") is not None:
        rise = out.rise(p["counter"])
        total = rise.get(p["shard"], 0) if p.get("shard") is not None else sum(rise.values())
        if p.get("rise_at_least") is not None and total < p["rise_at_least"]:
            fail("rise_at_least", f"{p['counter']} rose by {total:g}, not {p['rise_at_least']}+")
        if p.get("rise_at_most") is not None and total > p["rise_at_most"]:
            fail("rise_at_most", f"{p['counter']} rose by {total:g}, more than {p['rise_at_most']}")
    if p.get("client_retransmits"):
        retx = sum(out.retrans_after[c] - out.retrans_before[c] for c in out.clients)
        if retx <= 0:
            fail(
                "client_retransmits",
                "the clients retransmitted nothing: the impairment did not bite",
            )


def _check_expect(p: dict[str, Any]) -> tuple[str, str] | None:
    if isinstance(p.get("exit_code"), str) and p["exit_code"] != "nonzero":
        return "exit_code", "'exit_code' is a number or \"nonzero\""
    has_rise = p.get("rise_at_least") is not None or p.get("rise_at_most") is not None
    if has_rise and not p.get("counter"):
        return "rise_at_least", "'rise_at_least'/'rise_at_most' need a 'counter'"
    if p.get("counter") and not has_rise:
        return "counter", "a 'counter' needs 'rise_at_least' or 'rise_at_most'"
    skip = ("label", "of", "port", "shard")
    # identity, not equality: exit_code = 0 is a check (0 == False)
    checks = [k for k, v in p.items() if v is not None and v is not False and k not in skip]
    if not checks:
        return "do", "an expect step with nothing to check"
    return None


EXPECT_PARAMS = {
    "of": Param("str", None, "the load to look at (default: the last one)"),
    "exit_code": Param("int|str", None, 'the last restart\'s exit status, or "nonzero"'),
    "message": Param("str", None, "the start of the last (failed) restart's first error line"),
    "ready_within": Param(
        "number", None, "the last (re)start got ready within this many seconds (the start alone)"
    ),
    "all_ok": Param("bool", None, "every connection of the load ok"),
    "echo_exact": Param("bool", None, "every echo byte-exact, then EOF"),
    "max_errors": Param("int", None, "at most this many connection errors", minimum=0),
    "min_errors": Param("int", None, "at least this many connection errors", minimum=0),
    "outcomes": Param(
        "list[str]",
        None,
        "steer: the outcomes allowed",
        choices=("served", "closed", "reset", "refused", "hang", "garbled", "error"),
    ),  # fmt: skip
    "unserved_logged": Param("bool", None, "steer: the server logged every close/reset"),
    "min_share": Param("number", None, "every shard got at least this share", minimum=0, maximum=1),
    "max_share": Param("number", None, "no shard got more than this share", minimum=0, maximum=1),
    "on_shard": Param("int", None, "every connection landed on this shard", minimum=0),
    "shards": Param("int", None, "the connections landed on exactly this many shards", minimum=1),
    "owners_unchanged": Param("bool", None, "hold: no connection changed shard while it lived"),
    "in_time_wait": Param("bool", None, "the load's connections sit in TIME_WAIT on the server"),
    "port": Param("int", None, "in_time_wait: the server port (default canned's)"),
    "counter": Param("str", None, "a server metric (e.g. seashard_tcp_rst_sent_total)"),
    "shard": Param("int", None, "counter: on this shard only", minimum=0),
    "rise_at_least": Param("number", None, "counter: rose by at least this during the load"),
    "rise_at_most": Param("number", None, "counter: rose by at most this during the load"),
    "client_retransmits": Param("bool", None, "the clients' kernels retransmitted"),
}


def run_note(ctx: Context, step: Any) -> None:
    ctx.rep.line(ctx.label(step.params) + ": " + step.params["text"])


def _with_common(params: dict[str, Param]) -> dict[str, Param]:
    return {**params, **COMMON}


KINDS: dict[str, StepSpec] = {
    "restart": StepSpec(
        "stop the server and start it again (labctl: TIME_WAIT survives)",
        _with_common(RESTART_PARAMS),
        run_restart,
        _check_restart,
    ),
    "start": StepSpec(
        "start a stopped server", _with_common(RESTART_PARAMS), run_restart, _check_restart
    ),
    "stop": StepSpec("stop the server", _with_common({"server": SERVER}), run_restart),
    "pause-clients": StepSpec("stop the clients' background load", _with_common({}), run_clients),
    "resume-clients": StepSpec("start it again", _with_common({}), run_clients),
    "load": StepSpec(
        "connections of a given shape", _with_common(LOAD_PARAMS), run_load, _check_load
    ),
    "finish": StepSpec(
        "wait for background loads (all, or NAME)",
        _with_common({"name": Param("str", None, "the load (default: every background one)")}),
        run_finish,
    ),
    "impair": StepSpec(
        "loss/reorder/duplicate/delay on a client's link", _with_common(IMPAIR_PARAMS), run_impair
    ),
    "capture": StepSpec(
        "a pcap of a service or the lab bridge", _with_common(CAPTURE_PARAMS), run_capture
    ),
    "wait": StepSpec(
        "sleep",
        _with_common(
            {"seconds": Param("number", None, "how long", required=True, minimum=0, maximum=600)}
        ),
        run_wait,
    ),
    "expect": StepSpec(
        "checks on the last load or restart", _with_common(EXPECT_PARAMS), run_expect, _check_expect
    ),
    "note": StepSpec(
        "a line of text",
        _with_common({"text": Param("str", None, "the line", required=True)}),
        run_note,
    ),
}


def stop_captures(ctx: Context) -> None:
    for name, capture in list(ctx.captures.items()):
        with contextlib.suppress(Exception):
            capture.save(ctx.folder / f"capture-{name}.pcap")
    ctx.captures.clear()


def describe_library() -> str:
    """The library as text (scripts/lab scenario --steps)."""
    out = []
    for kind, spec in KINDS.items():
        out.append(f'do = "{kind}"   {spec.help}')
        for key, p in spec.params.items():
            if key == "label":
                continue
            default = "" if p.default in (None, [], "") else f" (default {p.default!r})"
            req = " (required)" if p.required else ""
            out.append(f"    {key:<18} {p.type:<14} {p.help}{default}{req}")
    return "\n".join(out)
