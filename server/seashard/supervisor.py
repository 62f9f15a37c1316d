"""The supervisor: the process the user started, watching its shard processes.

It waits for every shard to report ready (or one to fail), forwards SIGINT and
SIGTERM as SIGTERM, brings the whole server down if any shard dies, and turns
what happened into the exit code: 0 clean shutdown, 1 a shard failed to start,
3 a shard died while serving (a finite job such as the load generator ends with
its first failing shard's code).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_SHARD_DIED = 3


@dataclass
class Child:
    """A forked shard: its pid, its end of the control socket (ready/failed lines)."""

    shard: int
    pid: int
    control: socket.socket
    ready: bool = False
    status: int | None = None


def supervise(
    children: list[Child],
    on_ready: Callable[[list[int]], None] | None,
    stop_timeout: float,
    until_done: bool,
) -> int:
    """Watch ``children`` until all have exited; return the exit code."""
    sel = selectors.DefaultSelector()
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
    stop_requested = False
    exit_code: int | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector
    sel.register(wake_r, selectors.EVENT_READ)
    for c in children:
        c.control.setblocking(False)
        sel.register(c.control, selectors.EVENT_READ, c)
    first_error: str | None = None
    stop_sent_at: float | None = None
    announced = False

    def read_control(child: Child) -> None:
        nonlocal first_error
        while True:
            try:
                data = child.control.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                if child.control.fileno() in sel.get_map():
                    sel.unregister(child.control)
                return
            for line in data.decode(errors="replace").splitlines():
                if line == "ready":
                    child.ready = True
                elif line.startswith("failed ") and first_error is None:
                    first_error = line[len("failed ") :]

    try:
        while any(c.status is None for c in children):
            for key, _ in sel.select(timeout=0.5):
                if key.data is None:
                    _drain(wake_r)
                else:
                    read_control(key.data)
            _reap(children)
            for c in children:  # a dead shard's last words may still be unread
                if c.status is not None and c.control.fileno() in sel.get_map():
                    read_control(c)
            if exit_code is None:
                exit_code, messages = _verdict(children, first_error, stop_requested, until_done)
                for message in messages:
                    print(message, file=sys.stderr, flush=True)
            if exit_code is not None and stop_sent_at is None:
                stop_sent_at = time.monotonic()
                _signal_all(children, signal.SIGTERM)
            if stop_sent_at is not None and time.monotonic() - stop_sent_at > stop_timeout:
                print("seashard: shards did not stop in time; killing them", file=sys.stderr)
                _signal_all(children, signal.SIGKILL)
                stop_sent_at = time.monotonic() + 3600
            if not announced and exit_code is None and all(c.ready for c in children):
                announced = True
                if on_ready is not None:
                    on_ready([c.pid for c in children])
    finally:
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGCHLD, old_chld)
        sel.close()
        wake_r.close()
        wake_w.close()
        for c in children:
            c.control.close()
    if until_done and exit_code is None:
        return EXIT_OK
    if exit_code == EXIT_OK and any(c.status != 0 for c in children):
        bad = next(c for c in children if c.status != 0)
        print(
            f"seashard: shard {bad.shard} {_describe(bad.status)} while stopping", file=sys.stderr
        )
        return EXIT_SHARD_DIED
    return exit_code if exit_code is not None else EXIT_OK


def _verdict(
    children: list[Child], first_error: str | None, stop_requested: bool, until_done: bool
) -> tuple[int | None, list[str]]:
    """The run's exit code once it is decided (None: go on) and what to tell the user."""
    if first_error is not None:
        return EXIT_START_FAILED, [first_error]
    dead = [c for c in children if c.status is not None]
    if until_done:  # a finite job: shards may end on their own; the first failure decides
        failed = [c for c in dead if c.status != 0]
        if failed:
            c = failed[0]
            if c.status is not None and c.status > 0:
                return c.status, []
            return EXIT_SHARD_DIED, [
                f"seashard: shard {c.shard} (pid {c.pid}) {_describe(c.status)}"
            ]
        return (EXIT_OK if stop_requested else None), []
    if stop_requested:
        return EXIT_OK, []
    if dead:  # a server's shards never end on their own
        code = EXIT_SHARD_DIED if all(c.ready for c in children) else EXIT_START_FAILED
        return code, [
            f"seashard: shard {c.shard} (pid {c.pid}) {_describe(c.status)}; stopping the server"
            for c in dead
        ]
    return None, []


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _reap(children: list[Child]) -> None:
    for c in children:
        if c.status is not None:
            continue
        try:
            pid, status = os.waitpid(c.pid, os.WNOHANG)
        except ChildProcessError:
            c.status = -1
            continue
        if pid:
            c.status = os.waitstatus_to_exitcode(status)


def _signal_all(children: list[Child], signum: int) -> None:
    for c in children:
        if c.status is None:
            try:
                os.kill(c.pid, signum)
            except ProcessLookupError:
                pass


def _describe(status: int | None) -> str:
    if status is None:
        return "is running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        return f"was killed by {name}"
    return f"exited with code {status}"
