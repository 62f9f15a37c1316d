"""Run scripts on one stack or both, and print what a bug report needs.

Exit status: 0 when nothing failed (pass or unsupported), 1 when a script
failed on some stack, 2 for a syntax error (one line, ``FILE:LINE: what``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from .engine import Engine, Result
from .model import (
    DEFAULT_TOLERANCE,
    Command,
    Event,
    Script,
    ScriptError,
    Syscall,
    TcpSpec,
    Time,
    Unsupported,
)
from .native import NativeTarget
from .parser import parse_file
from .syscalls import SUPPORTED, check_names

STACKS = ("native", "linux", "both")


def prescan(script: Script) -> None:
    """Mark the script unsupported by its first feature outside the subset, before any
    stack runs it: a script must not pass or fail on the part the runner does model.
    (Commands are judged per stack when played: a sysctl may map on one only.)"""
    if script.unsupported is not None:
        return
    for ev in script.events:
        what = ev.what
        try:
            if isinstance(what, TcpSpec):
                if what.flags.startswith("<"):
                    raise Unsupported(f"packet type {what.flags[1:-1]}")
                for o in what.options or ():
                    if o.kind.startswith("unsupported:"):
                        raise Unsupported(f"TCP option {o.kind.split(':')[1]}")
            elif isinstance(what, Syscall):
                if what.name not in SUPPORTED:
                    raise Unsupported(f"syscall {what.name}")
                for a in what.args:
                    check_names(a)
            elif isinstance(what, Command) and what.text == "%{python}%":
                raise Unsupported("%{ }% python blocks (TCP_INFO checks)")
        except Unsupported as u:
            script.unsupported = Unsupported(u.feature, ev.line)
            return


def run_native(script: Script, tolerance: float = DEFAULT_TOLERANCE) -> Result:
    target = NativeTarget()
    try:
        return Engine(script, target, tolerance).run()
    finally:
        target.close()


def with_init(script: Script, init_scripts: Iterable[str]) -> Script:
    """packetdrill's --init_scripts: shell scripts run at time 0, before the script's events."""
    first = [Event(0, Time("abs", 0.0), Command(str(Path(p).resolve())), p) for p in init_scripts]
    script.events[:0] = first
    return script


def run_one(
    path: str,
    stack: str,
    tolerance: float = DEFAULT_TOLERANCE,
    init_scripts: tuple[str, ...] = (),
) -> list[Result]:
    """Parse (ScriptError propagates) and run on the stack(s) asked for."""
    script = with_init(parse_file(path), init_scripts)
    prescan(script)
    if "tolerance_usecs" in script.options:  # the script's own, as packetdrill reads it
        tolerance = int(script.options["tolerance_usecs"]) / 1e6
    results = []
    if stack in ("native", "both"):
        results.append(run_native(script, tolerance))
    if stack in ("linux", "both"):
        if script.unsupported is not None:
            u = script.unsupported
            results.append(Result(path, "linux", "unsupported", u.line, message=u.feature))
        else:
            from .linux import run_linux

            results.append(run_linux(path, tolerance, init_scripts=init_scripts))
    return results


def side_by_side(
    native: Result, linux: Result, out: TextIO, tolerance: float = DEFAULT_TOLERANCE
) -> None:
    """The outbound packets of both runs in two columns; the first row where they differ
    in what a script compares (window aside, which scripts rarely pin) or in time beyond
    the tolerance is marked."""

    def split(row: str) -> tuple[float, str]:
        when, _, text = row.partition(" ")
        return float(when), re.sub(r" win \d+", "", text)

    n, lx = native.seen, linux.seen
    width = max([len(r) for r in n] + [20])
    out.write(f"    {'native':<{width}}  | linux\n")
    parted = False
    for i in range(max(len(n), len(lx))):
        a = n[i] if i < len(n) else "-"
        b = lx[i] if i < len(lx) else "-"
        mark = ""
        if not parted:
            if a == "-" or b == "-":
                mark = "   <-- the stacks part here"
            else:
                (ta, pa), (tb, pb) = split(a), split(b)
                if pa != pb:
                    mark = "   <-- the stacks part here"
                elif abs(ta - tb) > tolerance:
                    mark = f"   <-- the stacks part here ({(ta - tb) * 1000:+.0f} ms)"
            parted = bool(mark)
        out.write(f"    {a:<{width}}  | {b}{mark}\n")


def _ends(r: Result) -> tuple[str, int, str]:
    return r.status, r.line, r.message


def main_run(
    paths: Iterable[str],
    stack: str,
    tolerance: float = DEFAULT_TOLERANCE,
    out: TextIO = sys.stdout,
    verbose: bool = False,
    init_scripts: tuple[str, ...] = (),
) -> int:
    counts: dict[str, dict[str, int]] = {}
    failed = False
    for path in paths:
        try:
            results = run_one(path, stack, tolerance, init_scripts)
        except ScriptError as exc:
            where = f"{path}:{exc.line}" if exc.line else path
            print(f"{where}: {exc.message}", file=sys.stderr)
            return 2
        for r in results:
            counts.setdefault(r.stack, {}).setdefault(r.status, 0)
            counts[r.stack][r.status] += 1
            failed |= r.status in ("fail", "error")
            out.write(r.summary() + "\n")
            if verbose and r.seen and r.status != "unsupported":
                for row in r.seen:
                    out.write(f"      {row}\n")
        if stack == "both" and len(results) == 2 and _ends(results[0]) != _ends(results[1]):
            side_by_side(results[0], results[1], out, tolerance)
    for name, c in counts.items():
        text = ", ".join(f"{c.get(k, 0)} {k}" for k in ("pass", "fail", "unsupported", "error"))
        out.write(f"{name}: {text}\n")
    return 1 if failed else 0
