"""Scenarios as files: scenarios/NAME.toml, a list of steps from a documented
library (library.py), checked before anything runs (parse.py) and run on a
live lab (run.py)."""

from __future__ import annotations

from pathlib import Path

from .. import SCENARIO_DIR
from .parse import Scenario, ScenarioError, load

__all__ = ["Scenario", "ScenarioError", "find", "listing", "load"]


def find(name_or_file: str) -> Path:
    """A scenario file: the path itself, or scenarios/NAME.toml."""
    path = Path(name_or_file)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{path}: no such scenario file")
        return path
    builtin = SCENARIO_DIR / f"{name_or_file}.toml"
    if builtin.is_file():
        return builtin
    names = ", ".join(p.stem for p in sorted(SCENARIO_DIR.glob("*.toml")))
    raise ScenarioError(f"unknown scenario {name_or_file!r}; one of: {names} (or a FILE.toml)")


def listing() -> list[tuple[str, str]]:
    out = []
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        try:
            s = load(path)
            out.append((s.name, " ".join(s.about.split())))
        except ScenarioError as exc:
            out.append((path.stem, f"(broken: {exc})"))
    return out
