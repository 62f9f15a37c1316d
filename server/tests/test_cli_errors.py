"""Bad input: one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import socket

import pytest

from tests.serverproc import free_ports, run_cli


def _one_line_error(result, needle: str, code: int | None = None) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    if code is not None:
        assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (["serve", "--echo-port", "70000"], "invalid port 70000"),
        (["serve", "--echo-port", "http"], "invalid port 'http'"),
        (["serve", "-c", "0"], "invalid count 0"),
        (["serve", "-c", str(len(os.sched_getaffinity(0)) + 1)], "CPUs available"),
        (["serve", "gopher"], "unknown service 'gopher'"),
        (["serve", "--lba", "random"], "invalid choice: 'random'"),
        (["serve", "--network-stack", "native"], "--tap-device or --packet-device"),
        (["serve", "--lba", "fixed", "--fixed-cpu", "7", "-c", "1"], "no such shard"),
        (["serve", "--host-ipv4-addr", "10.0.0.300"], "invalid IPv4 address"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["load"], "--host"),
        (["serve", "--tap-device", "tap0"], "--tap-device needs --network-stack native"),
        (["load", "--host", "127.0.0.1", "--network-stack", "native"], "--packet-device"),
        (
            ["load", "--host", "127.0.0.1", "--packet-device", "lo", "--state-dir", "/tmp"],
            "--packet-device/--state-dir need --network-stack native",
        ),
        (["load", "--host", "127.0.0.1", "--duration", "-1"], "must not be negative"),
        (["load", "--host", "127.0.0.1", "--report-interval", "0"], "must be positive"),
        (["load", "--host", "127.0.0.1", "--metrics-port", "0"], "invalid port 0"),
        (["serve", "--admin-address", "localhost"], "invalid IPv4 address"),
    ],
)
def test_usage_errors(args: list[str], needle: str) -> None:
    _one_line_error(run_cli(*args), needle, code=2)


def test_port_held_by_another_program() -> None:
    (port,) = free_ports(1)
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        result = run_cli(
            "serve", "echo", "-c", "1", "--address", "127.0.0.1", "--echo-port", str(port)
        )
    finally:
        holder.close()
    _one_line_error(result, "bind: Address already in use", code=1)


def test_admin_port_held_by_another_program() -> None:
    echo, admin = free_ports(2)
    holder = socket.socket()
    holder.bind(("0.0.0.0", admin))
    holder.listen()
    try:
        result = run_cli(
            "serve",
            "echo",
            "-c",
            "1",
            "--address",
            "127.0.0.1",
            "--echo-port",
            str(echo),
            "--admin-port",
            str(admin),
        )
    finally:
        holder.close()
    _one_line_error(result, "admin: bind: Address already in use", code=1)


def _without_cap(cap: str, *args: str):  # type: ignore[no-untyped-def]
    """Run `seashard` with ``cap`` dropped from the bounding set (so root loses it too)."""
    import shutil
    import subprocess

    from tests.serverproc import env, seashard_cmd

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop a capability")
    return subprocess.run(
        ["setpriv", "--bounding-set", f"-{cap}", *seashard_cmd(*args)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )


def test_native_without_tap_permission() -> None:
    result = _without_cap(
        "net_admin",
        "serve",
        "echo",
        "-c",
        "2",
        "--network-stack",
        "native",
        "--tap-device",
        "sstnoperm0",
        "--host-ipv4-addr",
        "10.9.9.2",
    )
    _one_line_error(result, "tap device sstnoperm0: Operation not permitted", code=1)


def test_native_without_packet_permission() -> None:
    result = _without_cap(
        "net_raw", "serve", "echo", "-c", "1", "--network-stack", "native", "--packet-device", "lo"
    )
    _one_line_error(result, "packet device lo: Operation not permitted", code=1)


def test_native_missing_packet_device() -> None:
    result = run_cli(
        "serve", "echo", "-c", "1", "--network-stack", "native", "--packet-device", "nosuchdev0"
    )
    _one_line_error(result, "packet device nosuchdev0: No such device", code=1)
