"""`seashard serve` refuses a busy port before anything starts: no shard, no admin thread."""

from __future__ import annotations

import os
import socket

import pytest

from seashard import serve
from seashard.net.stacks import PosixOptions
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
