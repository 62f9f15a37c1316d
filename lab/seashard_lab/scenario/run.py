"""Run a checked scenario on a live lab and leave its artifacts folder:

lab-network.pcap       every frame on the lab's bridge during the scenario
capture-NAME.pcap      the scenario's own captures
<service>.log          each container's log during the scenario
<server>.run.log       the server program's current run (after the restore)
admin-before/, admin-after/   /metrics, /connections, /shards of both servers
summary.txt            what was printed, the details as JSON, and how to replay
connections.png, shares.png, latency-cdf.png
                       per-shard connections over time, the shares per shard and
                       per client, the clients' latency CDF (before and during an
                       impairment), from the lab's Prometheus; plots-missing.txt
                       says why one is not there
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from ..capture import CaptureHelper
from ..deployment import Deployment
from ..lab import Lab
from ..plan import CLIENTS, DEFAULT_PROJECT, SERVER_OF, SERVERS
from .library import KINDS, Context, Report, link_restored, stop_captures
from .parse import Scenario


def save_admin(lab: Lab, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for server in SERVERS:
        for path, text in lab.snapshot(server).items():
            (folder / f"{server}{path.replace('/', '-')}.txt").write_text(text)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, set):
        return sorted(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return str(obj)


def restore(lab: Lab, rep: Report) -> list[str]:
    """The lab back to normal, saying what an impairment still on did."""
    for client in CLIENTS:
        try:
            if lab.impaired_now(client):
                link_restored(rep, client, lab.impair_off(client))
        except Exception as exc:  # noqa: BLE001 - restore_all tries again and reports
            rep.line(f"{client}: could not restore the link: {exc}")
    return lab.restore_all()


def _plots(lab: Lab, folder: Path, name: str, started_wall: float) -> str:
    """The charts of this run; whatever goes wrong, one line saying so (never a raise:
    the summary and the pcap matter more)."""
    end = time.time()
    try:
        from ..plots import write_lab_plots

        return write_lab_plots(
            lab, folder, started_wall, end, f"scenario {name}", lab.impairment_window(end)
        )
    except Exception as exc:  # noqa: BLE001 - e.g. matplotlib not installed
        (folder / "plots-missing.txt").write_text(f"no plots: {type(exc).__name__}: {exc}\n")
        return f"plots:     none (plots-missing.txt: {exc})"


def run_steps(ctx: Context, scenario: Scenario) -> None:
    for step in scenario.setup:
        ctx.step = step
        KINDS[step.kind].run(ctx, step)
    for stack in scenario.servers:
        ctx.server = SERVER_OF[stack]
        for step in scenario.steps:
            ctx.step = step
            KINDS[step.kind].run(ctx, step)
    ctx.step = None
    for name in list(ctx.pending):  # background loads nobody waited for
        ctx.loads[name] = ctx.pending.pop(name)()


def run_scenario(deployment: Deployment, scenario: Scenario, artifacts: Path) -> int:
    """0: as expected; 1: an expectation failed; 2: an error (or the lab not restored)."""
    # a deployment may bring its own Lab (swarm_deployment.SwarmLab: admin pages, captures)
    lab = getattr(deployment, "lab_class", Lab)(deployment)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = artifacts / f"scenario-{scenario.name}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    rep = Report()
    ctx = Context(lab, rep, scenario.path, folder)
    started_wall, started = time.time(), time.monotonic()
    print(
        f"scenario {scenario.name} on lab '{lab.project}' ({lab.subnet}): "
        f"{' '.join(scenario.about.split())}"
    )
    helper: CaptureHelper | None = None
    try:
        helper = lab.bridge_capture()
        helper.start("scenario")
    except Exception as exc:  # noqa: BLE001 - the scenario matters more
        rep.line(f"(no capture of the lab network: {exc})")
        helper = None
    save_admin(lab, folder / "admin-before")
    error = None
    try:
        run_steps(ctx, scenario)
    except Exception as exc:  # noqa: BLE001 - report, restore, and say so
        error = "".join(traceback.format_exception(exc))
        where = ctx.where() if ctx.step is not None else str(scenario.path)
        first = str(exc).splitlines()[0] if str(exc) else ""
        kind = ctx.step.kind if ctx.step else "-"
        rep.line(f"ERROR at {where} ({kind}): {type(exc).__name__}: {first}")
    finally:
        stop_captures(ctx)
        save_admin(lab, folder / "admin-after")
        problems = restore(lab, rep)
        elapsed = time.monotonic() - started
        if helper is not None:
            try:
                helper.stop("scenario", folder / "lab-network.pcap")
            except Exception as exc:  # noqa: BLE001
                rep.line(f"(lab network capture lost: {exc})")
        lab.close()
        for service in deployment.services():
            try:
                (folder / f"{service}.log").write_text(lab.logs(service, since=started_wall - 1))
            except Exception as exc:  # noqa: BLE001
                (folder / f"{service}.log").write_text(f"could not read logs: {exc}\n")
        for server in SERVERS:
            try:
                (folder / f"{server}.run.log").write_text(lab.run_log(server))
            except Exception:  # noqa: BLE001
                pass
        plots_line = _plots(lab, folder, scenario.name, started_wall)
    restored = "lab restored to its normal state" if not problems else f"RESTORE FAILED: {problems}"
    verdict = "as expected" if not rep.problems and error is None else "UNEXPECTED results"
    rep.line(f"{scenario.name}: {verdict} in {elapsed:.1f} s; {restored}")
    rep.line(f"artifacts: {folder}")
    rep.line(" ".join(plots_line.split(None, 1)))
    project_note = (
        f"   (SEASHARD_LAB_PROJECT={lab.project})" if lab.project != DEFAULT_PROJECT else ""
    )
    header = [
        f"scenario:  {scenario.name} -- {' '.join(scenario.about.split())}",
        f"file:      {scenario.path}",
        f"lab:       {lab.project} on {lab.subnet}",
        f"started:   {datetime.fromtimestamp(started_wall).isoformat(timespec='seconds')}",
        f"duration:  {elapsed:.1f} s",
        f"replay:    scripts/lab scenario {scenario.name}{project_note}",
        "pcap:      lab-network.pcap (tcpdump on the lab bridge; tshark -r / Wireshark)",
        plots_line,
        "",
    ]
    body = header + rep.lines
    if rep.problems:
        body += ["", "unexpected:"] + [f"  {p}" for p in rep.problems]
    if error:
        body += ["", "error:", error]
    body += ["", "details:", json.dumps(rep.details, indent=1, default=_json_default)]
    (folder / "summary.txt").write_text("\n".join(body) + "\n")
    if error or problems:
        return 2
    return 1 if rep.problems else 0
