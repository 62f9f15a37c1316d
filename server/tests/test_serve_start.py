"""`seashard serve` refuses a busy port before anything starts: no shard, no admin thread."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from seashard import serve
from seashard.net.stacks import NativeOptions, PosixOptions
from tests import kernelview
from tests.serverproc import free_ports


def _time_wait_on_a_port() -> int:
    """A port whose server side closed first: its connection sits in TIME_WAIT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as seashard's are
    accepted.close()  # the server closes first
    client.recv(1)
    client.close()
    listener.close()
    assert kernelview.time_wait_on_port(port)
    return port


def test_time_wait_port_fails_before_any_shard_is_forked(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    busy = _time_wait_on_a_port()
    echo, admin = free_ports(2)
    forked: list[int] = []

    def no_fork() -> int:
        forked.append(1)
        raise AssertionError("a shard was forked before the bind failed")

    monkeypatch.setattr(os, "fork", no_fork)
    config = serve.ServeConfig(
        smp=2,
        services={"echo": echo, "canned": busy},  # echo binds first, then canned fails
        address="127.0.0.1",
        admin_port=admin,
        pin=False,
        stack_options=PosixOptions(),
    )
    assert serve.run(config) == 1
    assert forked == []
    assert capfd.readouterr().err.strip() == (
        f"bind: Address already in use (127.0.0.1:{busy}, canned)"
    )
    # what was bound before the failure is given back: nothing listens
    assert not kernelview.listening(echo) and not kernelview.listening(admin)


def test_reuse_address_binds_past_time_wait_in_the_supervisor() -> None:
    busy = _time_wait_on_a_port()
    config = serve.ServeConfig(
        smp=1, services={"canned": busy}, address="127.0.0.1", reuse_address=True
    )
    config.stack_options = PosixOptions()
    prepared = serve.prepare(config)
    try:
        assert kernelview.listening(busy)  # bound and listening before any shard exists
    finally:
        prepared.close()
    assert not kernelview.listening(busy)


def test_native_time_wait_left_by_the_last_run_fails_before_any_shard_is_forked(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The native stack's TIME_WAIT outlives its run in --state-dir; the rule is checked
    in the supervisor, so no shard is forked and no device queue opened."""
    ip, port = "192.168.77.2", 1235
    entry = {"local_port": port, "remote": "192.168.77.1:40000", "until": time.time() + 60}
    (tmp_path / f"native-{ip}-shard1.timewait.json").write_text(json.dumps([entry]))
    forked: list[int] = []

    def no_fork() -> int:
        forked.append(1)
        raise AssertionError("a shard was forked before the bind failed")

    monkeypatch.setattr(os, "fork", no_fork)
    options = NativeOptions(tap_device="ss-never", host_ipv4_addr=ip, state_dir=str(tmp_path))
    config = serve.ServeConfig(
        smp=2,
        services={"echo": 1234, "canned": port},
        pin=False,
        stack="native",
        stack_options=options,
    )
    assert serve.run(config) == 1
    assert forked == []
    assert (
        capfd.readouterr().err.strip() == f"bind: Address already in use (0.0.0.0:{port}, canned)"
    )
    # with --reuse-address the same state lets the listeners through
    config.reuse_address = True
    serve.prepare(config).close()
    # an expired entry binds as well
    entry["until"] = time.time() - 1
    (tmp_path / f"native-{ip}-shard1.timewait.json").write_text(json.dumps([entry]))
    config.reuse_address = False
    serve.prepare(config).close()
