"""The admin endpoint: where it listens, and what a malformed, slow or greedy client gets."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from seashard import httpd
from tests import kernelview, serverproc


def _get(port: int, path: str = "/metrics", timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


@pytest.fixture
def admin_server(serve):  # type: ignore[no-untyped-def]
    return serve("-c", "2", services=("echo",))


def _start_with_admin(*args: str) -> serverproc.Server:
    (admin,) = serverproc.free_ports(1)
    server = serverproc.start("-c", "1", "--admin-port", str(admin), *args, admin=False)
    server.admin_port = admin
    return server


def _listening_on(port: int) -> list[str]:
    return [line.split()[3] for line in kernelview._ss("-l", f"( sport = :{port} )")]


def test_admin_listens_on_loopback_by_default() -> None:
    server = _start_with_admin()
    try:
        server.wait_ready()
        assert server.admin_port is not None
        assert _listening_on(server.admin_port) == [f"127.0.0.1:{server.admin_port}"]
        assert f"admin http://127.0.0.1:{server.admin_port}/metrics" in server.stderr()
        assert _get(server.admin_port)[0] == 200
    finally:
        server.stop()


def test_admin_address_widens_it() -> None:
    server = _start_with_admin("--admin-address", "0.0.0.0")
    try:
        server.wait_ready()
        assert server.admin_port is not None
        assert _listening_on(server.admin_port) == [f"0.0.0.0:{server.admin_port}"]
        assert _get(server.admin_port)[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),  # no version
        (b"GET /metrics HTTP/9.9\r\n\r\n", 400),
        (b"GET metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", 400),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests_get_a_4xx(admin_server, request_bytes: bytes, status: int) -> None:  # type: ignore[no-untyped-def]
    assert _status(_raw(admin_server.admin_port, request_bytes)) == status
    assert _get(admin_server.admin_port)[0] == 200  # and it still serves


def test_head_gets_headers_only(admin_server) -> None:  # type: ignore[no-untyped-def]
    reply = _raw(admin_server.admin_port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert _status(reply) == 200 and b"Content-Length:" in head and body == b""


def test_slowloris_is_cut_off_and_others_are_served_meanwhile(admin_server) -> None:  # type: ignore[no-untyped-def]
    port = admin_server.admin_port
    silent = socket.create_connection(("127.0.0.1", port), timeout=30)  # says nothing at all
    dribbler = socket.create_connection(("127.0.0.1", port), timeout=30)
    started = time.monotonic()
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"  # never the blank line
    served = 0
    dribbled = b""
    # A byte every 0.2 s: each read of the server succeeds, but the head never ends.
    for i in range(int(3 * httpd.REQUEST_TIMEOUT / 0.2)):
        try:
            dribbler.sendall(request[i % len(request) : i % len(request) + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        if i % 5 == 0:
            status, body = _get(port, timeout=5)  # served while the slow ones hang on
            assert status == 200 and "seashard_shard_info" in body
            served += 1
        dribbler.settimeout(0.2)
        try:
            dribbled = dribbler.recv(4096)
            if dribbled:
                break
        except TimeoutError:
            pass
    cut_after = time.monotonic() - started
    assert served >= 3
    assert dribbled.startswith(b"HTTP/1.1 408"), dribbled
    assert cut_after < httpd.REQUEST_TIMEOUT + 3, cut_after  # the head timeout, not never
    silent.settimeout(10)
    assert silent.recv(4096).startswith(b"HTTP/1.1 408")
    silent.close()
    dribbler.close()


def test_connections_beyond_the_bound_get_503_at_once(admin_server) -> None:  # type: ignore[no-untyped-def]
    port = admin_server.admin_port
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    try:
        time.sleep(0.5)  # the server has taken them all
        started = time.monotonic()
        status, _ = _get(port, timeout=5)
        assert status == 503 and time.monotonic() - started < 2  # refused, not queued
        greedy = 0
        for s in held:  # the held ones beyond the bound were answered 503 at once
            s.settimeout(0.1)
            try:
                greedy += s.recv(100).startswith(b"HTTP/1.1 503")
            except TimeoutError:
                pass
        assert greedy == len(held) - httpd.MAX_CONNECTIONS
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while _get(port)[0] != 200:  # slots free again once those clients are gone
        assert time.monotonic() < deadline
        time.sleep(0.1)
