"""Scenario files: TOML (stdlib tomllib), checked against the step library.

tomllib reports syntax errors with a line; it keeps no positions for what it
parsed, so the semantic checks find the line of a step (its ``[[step]]``
header) and of a key inside it by scanning the text.  Every problem is one
line, ``FILE:LINE: what is wrong``, raised before anything runs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .library import KINDS, SECTIONS, TOP_KEYS, StepSpec, check_value

_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z_][\w-]*)\s*\]\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[")
_KEY = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*=")


class ScenarioError(ValueError):
    """A bad scenario file; the message is ``FILE:LINE: what is wrong``."""


@dataclass
class Step:
    kind: str
    params: dict[str, Any]
    section: str  # "setup" (once) or "step" (once per server)
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)

    def where(self, path: Path, key: str | None = None) -> str:
        return f"{path}:{self.key_lines.get(key, self.line) if key else self.line}"


@dataclass
class Scenario:
    path: Path
    name: str
    about: str
    servers: list[str]
    setup: list[Step]
    steps: list[Step]

    @property
    def all_steps(self) -> list[Step]:
        return self.setup + self.steps


def _lines(text: str) -> tuple[dict[str, int], dict[str, list[tuple[int, dict[str, int]]]]]:
    """Top-level key -> line, and section -> [(header line, key -> line)] per array entry."""
    top: dict[str, int] = {}
    sections: dict[str, list[tuple[int, dict[str, int]]]] = {}
    current: dict[str, int] | None = top
    for n, raw in enumerate(text.splitlines(), 1):
        m = _HEADER.match(raw)
        if m:
            current = {}
            sections.setdefault(m.group(1), []).append((n, current))
            continue
        if _TABLE.match(raw):
            current = None  # some other table: its keys are not a step's
            continue
        k = _KEY.match(raw)
        if k and current is not None:
            current.setdefault(k.group(1), n)
    return top, sections


def load(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}:1: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = m.group(1) if m else "1"
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg) if m else msg
        raise ScenarioError(f"{path}:{line}: not valid TOML: {msg}") from None
    top_lines, section_lines = _lines(text)

    def fail(line: int, what: str) -> ScenarioError:
        return ScenarioError(f"{path}:{line}: {what}")

    for key, value in data.items():
        line = top_lines.get(key, 1)
        if key in SECTIONS:
            if not isinstance(value, list):
                raise fail(line, f"'{key}' must be an array of tables: [[{key}]]")
            continue
        if key not in TOP_KEYS:
            known = ", ".join(sorted(TOP_KEYS) + [f"[[{s}]]" for s in SECTIONS])
            raise fail(line, f"unknown key '{key}' (known: {known})")
        problem = check_value(TOP_KEYS[key], value)
        if problem:
            raise fail(line, f"'{key}' {problem}")
    if not data.get("step") and not data.get("setup"):
        raise fail(1, "no steps: add at least one [[step]] table")
    servers = data.get("servers", ["posix", "native"])
    if not servers:
        raise fail(top_lines.get("servers", 1), "'servers' is empty")
    parsed: dict[str, list[Step]] = {}
    for section in SECTIONS:
        entries = data.get(section, [])
        positions = section_lines.get(section, [])
        parsed[section] = [
            _step(path, section, n, entry, positions[n] if n < len(positions) else (1, {}))
            for n, entry in enumerate(entries)
        ]
    return Scenario(
        path=path,
        name=data.get("name", path.stem),
        about=data.get("about", ""),
        servers=list(servers),
        setup=parsed["setup"],
        steps=parsed["step"],
    )


def _step(
    path: Path, section: str, index: int, entry: Any, position: tuple[int, dict[str, int]]
) -> Step:
    line, key_lines = position

    def fail(key: str | None, what: str) -> ScenarioError:
        return ScenarioError(f"{path}:{key_lines.get(key, line) if key else line}: {what}")

    if not isinstance(entry, dict):
        raise fail(None, f"[[{section}]] #{index + 1} must be a table")
    kind = entry.get("do")
    if kind is None:
        raise fail(None, f"[[{section}]] #{index + 1} has no 'do' (one of: {', '.join(KINDS)})")
    if kind not in KINDS:
        raise fail("do", f"unknown step '{kind}' (one of: {', '.join(KINDS)})")
    spec: StepSpec = KINDS[kind]
    params: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "do":
            continue
        if key not in spec.params:
            known = ", ".join(sorted(spec.params)) or "none"
            raise fail(key, f"step '{kind}' has no key '{key}' (its keys: {known})")
        problem = check_value(spec.params[key], value)
        if problem:
            raise fail(key, f"step '{kind}': '{key}' {problem}")
        params[key] = value
    for key, p in spec.params.items():
        if p.required and key not in params:
            raise fail(None, f"step '{kind}' needs '{key}' ({p.help})")
        params.setdefault(key, p.default)
    problem = spec.check(params) if spec.check else None
    if problem:
        key, what = problem
        raise fail(key, f"step '{kind}': {what}")
    return Step(kind, params, section, line, key_lines)
