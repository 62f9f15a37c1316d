"""A headless Chromium (Debian's `chromium`) that looks at a page the way a user would.

Two runs per page: one dumps the DOM after the page's scripts had
``budget_ms`` of virtual time (Prometheus' graph page fetches its series and
draws the legend in that time), one saves a screenshot.  Each run gets a new
empty profile directory and every flag that keeps Chromium from talking to
anything but the page (no sync, no component updates, no QUIC, no background
networking).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
]


class BrowserError(RuntimeError):
    pass


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no chromium on PATH (Debian: apt-get install chromium; scripts/test does)")


def _run(args: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="lab-chromium-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BrowserError(
                f"chromium did not finish in {timeout:g} s: {' '.join(cmd)}"
            ) from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise BrowserError(f"chromium exited {done.returncode}: {tail}")
    return done.stdout


def dump_dom(url: str, budget_ms: int = 10000, timeout: float = 90.0) -> str:
    return _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)


def screenshot(
    url: str, path: Path, budget_ms: int = 10000, size: str = "1280,1000", timeout: float = 90.0
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            f"--virtual-time-budget={budget_ms}",
            f"--window-size={size}",
            f"--screenshot={path.resolve()}",
            url,
        ],
        timeout,
    )
    if not path.exists() or path.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no screenshot to {path}")
    return path


class _Legend(HTMLParser):
    """The text of every ``<span class="label">`` inside ``<div class="legend ...">``."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[str] = []
        self._depth = 0  # >0 while inside the legend div
        self._in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self._depth:
            if tag == "div":
                self._depth += 1
            if tag == "span" and "label" in classes:
                self._in_label = True
                self.labels.append("")
        elif tag == "div" and "legend" in classes:
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._in_label = False
        elif tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_label:
            self.labels[-1] += data


def legend_labels(dom: str) -> list[str]:
    """The series names Prometheus' graph page drew in its legend, e.g.
    ``{service="posix-server",shard="0"}``."""
    parser = _Legend()
    parser.feed(dom)
    return [label.strip() for label in parser.labels]
