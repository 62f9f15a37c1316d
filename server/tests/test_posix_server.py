"""The posix stack end to end: real `seashard serve` processes, real kernel sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
import urllib.request
from collections import Counter

import pytest

from tests import kernelview
from tests.serverproc import run_cli

CANNED = b"Seastar is the future!\n"


async def _echo_once(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def _admin(server, path: str) -> str:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}{path}", timeout=10) as r:
        return r.read().decode()


def test_500_echo_connections_get_every_byte_back(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", services=("echo",))
    rng = random.Random(862)
    payloads = [rng.randbytes(rng.randint(1, 64 * 1024)) for _ in range(500)]

    async def main() -> list[bytes]:
        sem = asyncio.Semaphore(100)

        async def one(p: bytes) -> bytes:
            async with sem:
                return await _echo_once(server.ports["echo"], p)

        return await asyncio.gather(*(one(p) for p in payloads))

    results = asyncio.run(main())
    assert [len(r) for r in results] == [len(p) for p in payloads]
    assert results == payloads
    metrics = _admin(server, "/metrics")
    totals = [
        int(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("seashard_connections_total{")
    ]
    assert sum(totals) == 500 and all(t > 0 for t in totals), metrics


def _hold_connections(port: int, n: int) -> list[socket.socket]:
    """n established connections, each proven served (one echo round trip)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    for i, s in enumerate(socks):
        msg = f"ping {i}\n".encode()
        s.sendall(msg)
        assert s.recv(100) == msg
    return socks


def test_each_connection_owned_by_one_pinned_shard_and_balanced(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", services=("echo",))
    port = server.ports["echo"]
    socks = _hold_connections(port, 200)
    try:
        owners = kernelview.established_on_port(port)
        assert len(owners) == 200
        assert all(len(o.pids) == 1 for o in owners), "a socket held by more than one process"
        per_pid = Counter(next(iter(o.pids)) for o in owners)
        assert set(per_pid) == set(server.pids), (per_pid, server.pids)
        counts = list(per_pid.values())
        assert max(counts) - min(counts) <= 0.1 * max(counts), per_pid
        cpus = [kernelview.cpus_allowed(pid) for pid in server.pids]
        assert len(set(cpus)) == 2 and all(c.isdigit() for c in cpus), cpus
        # The admin table agrees with the kernel on who owns what.
        table = json.loads(_admin(server, "/connections"))
        by_remote = {row["remote"]: row["pid"] for row in table}
        for o in owners:
            assert by_remote[o.remote] in o.pids
        assert {row["state"] for row in table} == {"ESTABLISHED"}
    finally:
        for s in socks:
            s.close()


def _assert_owned_by_client_port(server, port: int, socks: list[socket.socket]) -> None:  # type: ignore[no-untyped-def]
    """--lba port: each connection is held by shard (client port mod 2), says the kernel."""
    owner_of = {o.remote: next(iter(o.pids)) for o in kernelview.established_on_port(port)}
    for s in socks:
        local_port = s.getsockname()[1]
        assert owner_of[f"127.0.0.1:{local_port}"] == server.pids[local_port % 2]


def test_port_balancing_maps_remote_port_mod_shards(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", "--lba", "port", services=("echo",))
    port = server.ports["echo"]
    socks = _hold_connections(port, 60)
    try:
        _assert_owned_by_client_port(server, port, socks)
    finally:
        for s in socks:
            s.close()


def test_fixed_balancing_sends_everything_to_one_shard(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", "--lba", "fixed", "--fixed-cpu", "1", services=("echo",))
    socks = _hold_connections(server.ports["echo"], 20)
    try:
        owners = kernelview.established_on_port(server.ports["echo"])
        assert {next(iter(o.pids)) for o in owners} == {server.pids[1]}
    finally:
        for s in socks:
            s.close()


def test_canned_response_is_exact_and_server_closes_first(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", services=("canned",))
    port = server.ports["canned"]
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            assert _read_all(s) == CANNED  # EOF without our sending or closing anything
    # The side that closes first keeps TIME_WAIT: the server's port holds them.
    assert len(kernelview.time_wait_on_port(port)) >= 10


def test_accept_logger_prints_the_remote_address(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", services=("accept-logger",))
    expected = []
    for _ in range(6):
        with socket.create_connection(
            ("127.0.0.1", server.ports["accept-logger"]), timeout=10
        ) as s:
            expected.append(f"Accepted connection from 127.0.0.1:{s.getsockname()[1]}")
            assert _read_all(s) == b""
    for line in expected:
        assert server.wait_for_output(line, stream="stdout"), server.stdout()
    assert sorted(server.stdout_lines) == sorted(expected)


def test_echo_half_close_gets_the_rest_then_eof(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "1", services=("echo",))
    with socket.create_connection(("127.0.0.1", server.ports["echo"]), timeout=10) as s:
        payload = os.urandom(1000)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)  # the FIN follows the data: the server owes us all of it
        assert _read_all(s) == payload


def test_one_failing_connection_does_not_affect_others(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "1", services=("echo",))
    port = server.ports["echo"]
    good = socket.create_connection(("127.0.0.1", port), timeout=10)
    bad = socket.create_connection(("127.0.0.1", port), timeout=10)
    bad.sendall(b"x" * 10)
    bad.recv(10)
    bad.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    bad.sendall(os.urandom(4 * 1024 * 1024 - 1000))  # server is busy echoing back
    bad.close()  # RST, with unread echo in flight
    good.sendall(b"still here")
    assert good.recv(100) == b"still here"
    good.close()
    assert server.wait_for_output("Could not handle connection:"), server.stderr()


def _restart_after_time_wait(serve, *first_args: str):  # type: ignore[no-untyped-def]
    first = serve("-c", "2", *first_args, services=("canned",))
    port = first.ports["canned"]
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            assert _read_all(s) == CANNED
    assert first.stop() == 0
    assert kernelview.time_wait_on_port(port), "expected TIME_WAIT connections on the port"
    return first


@pytest.mark.parametrize("first_run_reuse", [False, True])
def test_time_wait_restart_needs_reuse_address(serve, first_run_reuse: bool) -> None:  # type: ignore[no-untyped-def]
    first = _restart_after_time_wait(serve, *(["--reuse-address"] if first_run_reuse else []))
    port = first.ports["canned"]
    args = [
        "serve",
        "canned",
        "echo",
        "-c",
        "2",
        "--address",
        "127.0.0.1",
        "--canned-port",
        str(port),
        "--echo-port",
        str(first.ports["echo"]),
    ]
    started = time.monotonic()
    failed = run_cli(*args)
    assert failed.returncode == 1
    assert "bind: Address already in use" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "serving" not in failed.stderr
    assert not kernelview.listening(first.ports["echo"])  # nothing else started either
    assert time.monotonic() - started < 10

    second = serve("-c", "2", "--reuse-address", "--canned-port", str(port), services=("canned",))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert _read_all(s) == CANNED
    assert second.stop() == 0


def test_shard0_only_listener_closes_steered_connections_and_logs(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", "--shard0-only", services=("echo",))
    served = refused = 0
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.ports["echo"]), timeout=5) as s:
            try:
                s.sendall(b"hi")
                got = s.recv(10)
            except ConnectionResetError:
                got = b""
            if got == b"hi":
                served += 1
            else:
                assert got == b""  # closed, not left hanging (the 5 s timeout would raise)
                refused += 1
    assert served >= 5 and refused >= 5, (served, refused)
    assert server.wait_for_output("shard 1: no listener on port")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logged = [line for line in server.stderr_lines if "no listener on port" in line]
        if len(logged) >= refused:
            break
        time.sleep(0.05)
    assert len(logged) == refused


def test_shard0_only_with_one_shard_serves_everything(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "1", "--shard0-only", services=("echo",))
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.ports["echo"]), timeout=5) as s:
            s.sendall(b"hi")
            assert s.recv(10) == b"hi"


def test_sigterm_stops_every_shard_cleanly(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2")
    held = socket.create_connection(("127.0.0.1", server.ports["echo"]), timeout=5)
    assert server.stop(signal.SIGTERM) == 0
    assert not any(kernelview.alive(pid) for pid in server.pids)
    assert _read_all(held) == b""  # the live connection was closed within the grace period
    held.close()


def test_a_dying_shard_brings_the_server_down(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2")
    os.kill(server.pids[1], signal.SIGKILL)
    assert server.proc.wait(15) == 3
    assert server.wait_for_output(f"shard 1 (pid {server.pids[1]}) was killed by SIGKILL")
    time.sleep(0.2)
    assert not kernelview.alive(server.pids[0])


def test_admin_metrics_per_shard(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", services=("echo",))
    asyncio.run(_echo_once(server.ports["echo"], b"x" * 1000))
    text = _admin(server, "/metrics")
    for pid in server.pids:
        assert f'pid="{pid}"' in text
    assert 'seashard_shard_info{shard="1"' in text
    bytes_in = sum(
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("seashard_bytes_in_total{")
    )
    assert bytes_in == 1000
    assert "# TYPE seashard_connections_live gauge" in text


def _connect_while_shard0_is_stopped(server, port: int, n: int) -> list[socket.socket]:  # type: ignore[no-untyped-def]
    """n connections that wait in the backlog together: shard 0 then accepts them in batches."""
    os.kill(server.pids[0], signal.SIGSTOP)
    try:  # the kernel completes the handshakes meanwhile
        return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    finally:
        os.kill(server.pids[0], signal.SIGCONT)


def test_batched_hand_off_keeps_every_connection_in_accept_order(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", "--lba", "fixed", "--fixed-cpu", "1", services=("accept-logger",))
    socks = _connect_while_shard0_is_stopped(server, server.ports["accept-logger"], 150)
    expected = [f"Accepted connection from 127.0.0.1:{s.getsockname()[1]}" for s in socks]
    for s in socks:
        assert _read_all(s) == b""  # each one served (the logger closes it)
        s.close()
    assert server.wait_for_output(expected[-1], stream="stdout"), server.stdout()
    assert server.stdout_lines == expected  # all of them, once each, in the order they came
    metrics = _admin(server, "/metrics")
    assert 'seashard_connections_total{shard="1"} 150' in metrics, metrics
    assert 'seashard_connections_total{shard="0"} 0' in metrics, metrics


def test_batched_hand_off_keeps_port_affinity(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2", "--lba", "port", services=("echo",))
    port = server.ports["echo"]
    socks = _connect_while_shard0_is_stopped(server, port, 100)
    try:
        for i, s in enumerate(socks):
            s.sendall(b"ping %d" % i)
            assert s.recv(100) == b"ping %d" % i
        _assert_owned_by_client_port(server, port, socks)
    finally:
        for s in socks:
            s.close()
