"""The posix stack in one process: the lean per-connection path keeps every promise of the API.

A shard without forking (a Shard object on this test's loop), real kernel sockets on
127.0.0.1, on uvloop (what shards run) and on the stdlib loop (SEASHARD_LOOP=asyncio).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest
import uvloop

from seashard import smp
from seashard.apps import canned, echo
from seashard.apps.common import service_loop
from seashard.net import ListenOptions, LoadBalancing, SocketAddress
from seashard.net.posix import ACCEPT_BATCH, PosixStack
from seashard.net.posix_streams import READ_HIGH_WATER, PosixConnection
from seashard.shm import SharedCounters

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Callable[..., object]]:
    """``run(body)``: ``await body(loop)`` on a fresh loop of the parametrized kind."""

    def _run(body: Callable[[asyncio.AbstractEventLoop], Awaitable[object]]) -> object:
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(asyncio.wait_for(body(loop), 30))
        finally:
            loop.close()

    yield _run


def _stack(loop: asyncio.AbstractEventLoop, shard_id: int = 0, count: int = 1) -> PosixStack:
    shard = smp.Shard(id=shard_id, count=count, cpu=None, loop=loop, counters=SharedCounters(count))
    return PosixStack(shard)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    return await reader.read()


def test_canned_and_echo_are_served_and_every_connection_is_counted_closed(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        canned_l = stack.listen(SocketAddress("127.0.0.1", 0))
        echo_l = stack.listen(SocketAddress("127.0.0.1", 0))
        tasks = [
            loop.create_task(service_loop(canned_l, canned.handle_connection)),
            loop.create_task(service_loop(echo_l, echo.handle_connection)),
        ]

        async def canned_once() -> bytes:
            r, w = await asyncio.open_connection("127.0.0.1", canned_l.local_address.port)
            data = await r.read()
            w.close()
            return data

        async def echo_once(payload: bytes) -> bytes:
            r, w = await asyncio.open_connection("127.0.0.1", echo_l.local_address.port)
            w.write(payload)
            w.write_eof()
            data = await r.read()
            w.close()
            return data

        replies = await asyncio.gather(*(canned_once() for _ in range(100)))
        assert replies == [canned.CANNED_RESPONSE] * 100
        payloads = [os.urandom(n) for n in (1, 1000, 300_000)]
        assert await asyncio.gather(*(echo_once(p) for p in payloads)) == payloads
        for _ in range(100):  # the last connection_lost callbacks
            if not stack.metrics()["connections_live"]:
                break
            await asyncio.sleep(0.01)
        m = stack.metrics()
        assert m["connections_total"] == 103 and m["connections_live"] == 0, m
        slots = stack._slots.values()
        assert all(stack.counters.live(s, 0) == 0 for s in slots)
        assert sum(stack.counters.assigned(s, 0) for s in slots) == 103
        canned_l.abort_accept()
        echo_l.abort_accept()
        await asyncio.gather(*tasks)

    run(body)


def test_addresses_are_the_kernel_s_and_made_on_first_read(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        listener = stack.listen(SocketAddress("127.0.0.1", 0))
        r, w = await asyncio.open_connection("127.0.0.1", listener.local_address.port)
        res = await listener.accept()
        conn = res.connection
        assert isinstance(conn, PosixConnection)
        client_port = w.get_extra_info("sockname")[1]
        assert conn._local is None  # not asked for yet: no getsockname() was made
        assert res.remote_address == SocketAddress("127.0.0.1", client_port)
        assert conn.remote_address is conn.remote_address  # made once
        assert conn.local_address == listener.local_address
        assert str(res.remote_address) == f"127.0.0.1:{client_port}"
        assert res.connection is conn and res == res
        await conn.close()
        assert await r.read() == b""
        w.close()
        assert stack.connections() == [] or stack.connections()[0]["remote"] == str(
            res.remote_address
        )
        listener.abort_accept()

    run(body)


def test_write_waits_while_the_peer_does_not_read(run) -> None:  # type: ignore[no-untyped-def]
    """Backpressure out: write() returns only once the kernel took the data."""

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        listener = stack.listen(SocketAddress("127.0.0.1", 0))
        client = socket.create_connection(("127.0.0.1", listener.local_address.port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn = (await listener.accept()).connection
        chunk = os.urandom(64 * 1024)
        total = 16 * 1024 * 1024

        async def writer() -> None:
            out = conn.output()
            for _ in range(total // len(chunk)):
                await out.write(chunk)
            await out.close()

        task = loop.create_task(writer())
        await asyncio.sleep(0.5)
        assert not task.done()  # the peer reads nothing: write() is holding the app back
        stalled = conn.bytes_out  # type: ignore[attr-defined]
        assert stalled < total
        await asyncio.sleep(0.2)
        assert conn.bytes_out == stalled  # type: ignore[attr-defined]  # no buffering meanwhile
        client.setblocking(False)
        got = bytearray()
        while True:
            try:
                data = await loop.sock_recv(client, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                break
            got += data
        await task
        assert len(got) == total and bytes(got[: len(chunk)]) == chunk
        client.close()
        listener.abort_accept()

    run(body)


def test_reading_pauses_past_the_high_water_mark_and_resumes(run) -> None:  # type: ignore[no-untyped-def]
    """Backpressure in: unread data stops the kernel reads; reading resumes them."""

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        listener = stack.listen(SocketAddress("127.0.0.1", 0))
        r, w = await asyncio.open_connection("127.0.0.1", listener.local_address.port)
        conn = (await listener.accept()).connection
        assert isinstance(conn, PosixConnection)
        payload = os.urandom(8 * 1024 * 1024)
        w.write(payload)
        sent = loop.create_task(w.drain())
        await asyncio.sleep(0.5)
        assert conn._reading_paused
        assert conn._buffered <= READ_HIGH_WATER + 1024 * 1024  # one kernel read past the mark
        assert not sent.done()  # the rest waits in the kernel, not in our buffer
        got = bytearray()
        while len(got) < len(payload):
            got += await conn.input().read()
        assert bytes(got) == payload
        await sent
        w.close()
        await conn.close()
        listener.abort_accept()

    run(body)


def _accepted_fds(n: int) -> tuple[list[socket.socket], list[int], list[tuple[str, int]]]:
    """n connections: the clients, the accepted fds (as shard 0 hands them over), their peers."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(n)
    clients, fds, addrs = [], [], []
    for _ in range(n):
        clients.append(socket.create_connection(ls.getsockname()))
        fd, addr = ls._accept()  # type: ignore[attr-defined]
        fds.append(fd)
        addrs.append(addr)
    ls.close()
    return clients, fds, addrs


def test_a_handed_over_batch_keeps_every_connection_in_accept_order(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop, shard_id=1, count=2)  # the receiving shard: no kernel listener
        listener = stack.listen(SocketAddress("127.0.0.1", 4321))
        clients, fds, addrs = _accepted_fds(ACCEPT_BATCH)
        slot = 0
        for _ in fds:
            stack.counters.add_assigned(slot, 1)  # shard 0 counts them as it hands them out
        stack._on_handoff(0, (4321, slot, addrs), fds)
        conns = [(await listener.accept()).connection for _ in fds]
        assert [c.remote_address for c in conns] == [SocketAddress(*a) for a in addrs]
        for i, (c, client) in enumerate(zip(conns, clients, strict=True)):
            await c.output().write(b"%d" % i)  # each fd is the connection it was said to be
            assert client.recv(10) == b"%d" % i
            await c.close()
            client.close()
        await asyncio.sleep(0.05)
        assert stack.counters.live(slot, 1) == 0 and stack.metrics()["connections_total"] == 64
        listener.abort_accept()

    run(body)


def test_fds_the_kernel_dropped_from_a_batch_are_counted_lost(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop, shard_id=1, count=2)
        listener = stack.listen(SocketAddress("127.0.0.1", 4321))
        clients, fds, addrs = _accepted_fds(3)
        for _ in fds:
            stack.counters.add_assigned(0, 1)
        for fd in fds[1:]:  # out of fds, the receiver got only the first one (MSG_CTRUNC)
            os.close(fd)
        stack._on_handoff(0, (4321, 0, addrs), fds[:1])
        conn = (await listener.accept()).connection
        assert conn.remote_address == SocketAddress(*addrs[0])
        assert stack.handoffs_lost == 2
        assert stack.counters.live(0, 1) == 1  # the two lost ones are no longer counted live
        await conn.close()
        await asyncio.sleep(0.05)
        assert stack.counters.live(0, 1) == 0
        for c in clients:
            c.close()
        listener.abort_accept()

    run(body)


def test_abort_accept_closes_connections_made_but_not_accepted(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop, shard_id=1, count=2)
        listener = stack.listen(SocketAddress("127.0.0.1", 4321))
        clients, fds, addrs = _accepted_fds(5)
        for _ in fds:
            stack.counters.add_assigned(0, 1)
        stack._on_handoff(0, (4321, 0, addrs), fds)
        await asyncio.sleep(0.05)  # made, waiting for accept()
        listener.abort_accept()
        with pytest.raises(ConnectionAbortedError):
            await listener.accept()
        await asyncio.sleep(0.05)
        assert stack.counters.live(0, 1) == 0 and stack.metrics()["connections_live"] == 0
        for c in clients:
            c.settimeout(5)
            assert c.recv(10) == b""  # closed, not left hanging
            c.close()

    run(body)


def test_one_readiness_event_hands_its_connections_over_in_one_message(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop, shard_id=0, count=2)
        sent: list[tuple[int, str, object, list[int]]] = []
        stack.shard.send = lambda shard, kind, payload, fds=None: sent.append(  # type: ignore[method-assign]
            (shard, kind, payload, list(fds or []))
        )
        options = ListenOptions(lba=LoadBalancing.FIXED, fixed_cpu=1)
        listener = stack.listen(SocketAddress("127.0.0.1", 0), options)
        port = listener.local_address.port
        n = ACCEPT_BATCH + 6
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        kernel = stack._kernel[port]
        kernel._acceptable()  # what the loop calls when the listening socket is readable
        kernel._acceptable()
        assert [(s[0], s[1], len(s[3])) for s in sent] == [
            (1, "posix.conn", ACCEPT_BATCH),
            (1, "posix.conn", 6),
        ]
        addrs = [a for s in sent for a in s[2][2]]  # type: ignore[index]
        assert addrs == [c.getsockname() for c in clients]  # every one, in accept order
        assert all(s[2][:2] == (port, kernel.slot) for s in sent)  # type: ignore[index]
        assert stack.counters.assigned(kernel.slot, 1) == n
        assert stack.counters.assigned(kernel.slot, 0) == 0
        for s in sent:
            for fd in s[3]:
                os.close(fd)
        for c in clients:
            c.close()
        listener.abort_accept()

    run(body)


@pytest.mark.parametrize("bare_fd", [True, False])
def test_a_connection_the_loop_cannot_take_over_is_closed_and_counted(bare_fd: bool) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        stack = _stack(loop, shard_id=1, count=2)
        stack._uvloop = bare_fd  # either way of handing the fd to the loop
        listener = stack.listen(SocketAddress("127.0.0.1", 4321))
        said: list[str] = []
        stack.log_adopt = said.append  # type: ignore[assignment]

        async def refuse(*_: object) -> None:
            raise ConnectionResetError("reset before we got to it")

        loop.connect_accepted_socket = refuse  # type: ignore[method-assign]
        clients, fds, addrs = _accepted_fds(2)
        stack.counters.add_assigned(0, 1)
        stack.counters.add_assigned(0, 1)
        stack._on_handoff(0, (4321, 0, addrs), fds)
        await asyncio.sleep(0.05)
        assert stack.counters.live(0, 1) == 0 and stack.metrics()["connections_live"] == 0
        assert said == ["could not take over a connection: reset before we got to it"] * 2
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)  # closed, not leaked
        for c in clients:
            c.close()
        listener.abort_accept()

    asyncio.run(body())


def test_a_served_listener_runs_each_handler_in_its_own_task_until_aborted(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        listener = stack.listen(SocketAddress("127.0.0.1", 0))
        port = listener.local_address.port
        early = socket.create_connection(("127.0.0.1", port))  # made before serve() begins
        await asyncio.sleep(0.05)
        seen: list[tuple[SocketAddress, asyncio.Task[object] | None]] = []
        release = asyncio.Event()

        async def handle(res) -> None:  # type: ignore[no-untyped-def]
            seen.append((res.remote_address, asyncio.current_task()))
            await res.connection.output().write(b"hello")
            await release.wait()  # every handler is still running when the listener goes
            await res.connection.output().close()

        served = loop.create_task(listener.serve(handle))
        clients = [early] + [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for c in clients:
            c.settimeout(5)
            assert await loop.run_in_executor(None, c.recv, 5) == b"hello"
        with pytest.raises(RuntimeError, match="being served"):
            await listener.accept()
        assert {a for a, _ in seen} == {SocketAddress(*c.getsockname()) for c in clients}
        tasks = {t for _, t in seen}
        assert len(tasks) == 6 and served not in tasks  # a task per connection, not the server's
        listener.abort_accept()
        await asyncio.sleep(0.05)
        assert not served.done()  # serve() waits for the handlers still running
        release.set()
        await asyncio.wait_for(served, 5)
        for c in clients:
            assert c.recv(10) == b""  # each one closed by its handler
            c.close()
        assert not listener._tasks  # each finished task let go of itself

    run(body)


def test_a_served_handler_s_exception_goes_to_on_error_and_the_rest_go_on(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        listener = stack.listen(SocketAddress("127.0.0.1", 0))
        port = listener.local_address.port
        failed: list[tuple[object, Exception]] = []

        async def handle(res) -> None:  # type: ignore[no-untyped-def]
            data = await res.connection.input().read()
            if data == b"boom":
                raise ValueError("boom")
            await res.connection.output().write(data)
            await res.connection.output().close()

        def on_error(res, exc: Exception) -> None:  # type: ignore[no-untyped-def]
            failed.append((res.remote_address, exc))
            res.connection.abort()

        served = loop.create_task(listener.serve(handle, on_error))
        bad = socket.create_connection(("127.0.0.1", port))
        bad.sendall(b"boom")
        good = socket.create_connection(("127.0.0.1", port))
        good.sendall(b"fine")
        good.settimeout(5)
        assert await loop.run_in_executor(None, good.recv, 10) == b"fine"
        for _ in range(100):
            if failed:
                break
            await asyncio.sleep(0.01)
        ((where, exc),) = failed
        assert where == SocketAddress(*bad.getsockname()) and str(exc) == "boom"
        listener.abort_accept()
        await asyncio.wait_for(served, 5)
        for _ in range(100):  # the aborted one's connection_lost
            if not stack.metrics()["connections_live"]:
                break
            await asyncio.sleep(0.01)
        assert stack.metrics()["connections_live"] == 0
        assert all(stack.counters.live(s, 0) == 0 for s in stack._slots.values())
        bad.close()
        good.close()

    run(body)


class _CountingSocket:
    """The listening socket, with every accept() counted and every failure kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.accepts = 0
        self.failures: list[BaseException] = []

    def _accept(self) -> tuple[int, tuple[str, int]]:
        self.accepts += 1
        try:
            return self.sock._accept()  # type: ignore[attr-defined, no-any-return]
        except OSError as exc:
            self.failures.append(exc)
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_a_wakeup_accepts_what_is_queued_without_a_failed_accept(run) -> None:  # type: ignore[no-untyped-def]
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        stack = _stack(loop)
        listener = stack.listen(SocketAddress("127.0.0.1", 0))
        port = listener.local_address.port
        kernel = stack._kernel[port]
        counting = _CountingSocket(kernel.sock)
        kernel.sock = counting  # type: ignore[assignment]
        loop.remove_reader(counting.fileno())  # this test calls the wakeup itself
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        await asyncio.sleep(0.05)  # the handshakes are done: 3 in the accept queue
        kernel._acceptable()
        assert counting.accepts == 3 and not counting.failures
        kernel._acceptable()  # a wakeup that finds nothing (a race lost): one try, no spin
        assert counting.accepts == 4 and [type(e) for e in counting.failures] == [BlockingIOError]
        conns = [(await listener.accept()).connection for _ in clients]
        assert {c.remote_address for c in conns} == {
            SocketAddress(*c.getsockname()) for c in clients
        }
        for c in conns:
            await c.close()
        for c in clients:
            c.close()
        listener.abort_accept()

    run(body)
