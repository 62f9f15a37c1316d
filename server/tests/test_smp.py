"""Cross-shard calls between real shard processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import pytest

from seashard import smp
from seashard.channel import CHUNK, MAX_FDS, Channel, channel_pair


def whoami(tag: str) -> dict[str, object]:
    return {"shard": smp.this_shard_id(), "pid": os.getpid(), "tag": tag}


async def slow_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


def fails() -> None:
    raise KeyError("on purpose")


def _run_in_shards(tmp_path: Path, body) -> dict:  # type: ignore[no-untyped-def]
    out = tmp_path / "result.json"

    async def main(shard: smp.Shard) -> None:
        smp.announce_started()
        if shard.id == 0:
            out.write_text(json.dumps(await body()))
            await smp.invoke_on_all(_stop)
        await shard.stopping.wait()

    code = smp.run(2, main, pin=False, until_done=True)
    assert code == 0
    return json.loads(out.read_text())


def _stop() -> None:
    smp.current().stopping.set()


def test_submit_to_and_invoke_on_all(tmp_path: Path) -> None:
    async def body() -> dict:
        other = await smp.submit_to(1, whoami, "hi")
        here = await smp.submit_to(0, whoami, "self")
        doubled = await smp.submit_to(1, slow_double, 21)
        everyone = await smp.invoke_on_all(whoami, "all")
        try:
            await smp.submit_to(1, fails)
            error = None
        except KeyError as exc:
            error = str(exc)
        try:
            await smp.submit_to(5, whoami, "nowhere")
            bad_shard = None
        except ValueError as exc:
            bad_shard = str(exc)
        return {
            "other": other,
            "here": here,
            "doubled": doubled,
            "everyone": everyone,
            "error": error,
            "bad_shard": bad_shard,
            "me": os.getpid(),
        }

    r = _run_in_shards(tmp_path, body)
    assert r["other"]["shard"] == 1 and r["other"]["tag"] == "hi"
    assert r["here"] == {"shard": 0, "pid": r["me"], "tag": "self"}
    assert r["other"]["pid"] != r["me"]
    assert r["doubled"] == 42
    assert [e["shard"] for e in r["everyone"]] == [0, 1]
    assert r["error"] == "'on purpose'"
    assert "no shard 5" in r["bad_shard"]


def test_large_results_cross_in_chunks(tmp_path: Path) -> None:
    async def body() -> dict:
        blob = await smp.submit_to(1, os.urandom, 1_000_000)
        return {"len": len(blob)}

    assert _run_in_shards(tmp_path, body) == {"len": 1_000_000}


def test_startup_failure_is_one_line_and_exit_1(capfd: pytest.CaptureFixture[str]) -> None:
    async def main(shard: smp.Shard) -> None:
        if shard.id == 1:
            raise smp.StartupError("bind: Address already in use (test)")
        smp.announce_started()
        await shard.stopping.wait()

    assert smp.run(2, main, pin=False) == smp.EXIT_START_FAILED
    assert capfd.readouterr().err.strip() == "bind: Address already in use (test)"


def _started_channels(
    expect: int,
) -> tuple[Channel, Channel, list[tuple[object, list[int]]], asyncio.Event]:
    """Two linked channels on the running loop; the event is set once ``expect``
    messages (with their fds) have reached the second one."""
    a, b = channel_pair()
    received: list[tuple[object, list[int]]] = []
    got = asyncio.Event()

    def on_message(msg: object, fds: list[int]) -> None:
        received.append((msg, fds))
        if len(received) == expect:
            got.set()

    loop = asyncio.get_running_loop()
    ca, cb = Channel(a, lambda m, f: None), Channel(b, on_message)
    ca.start(loop)
    cb.start(loop)
    return ca, cb, received, got


def test_channel_passes_file_descriptors() -> None:
    async def main() -> None:
        ca, cb, received, got = _started_channels(1)
        left, right = socket.socketpair()
        ca.send(("conn", 1), [left.detach()])
        await asyncio.wait_for(got.wait(), 5)
        ((msg, fds),) = received
        assert msg == ("conn", 1) and len(fds) == 1
        passed = socket.socket(fileno=fds[0])
        passed.sendall(b"through the fd")
        assert right.recv(100) == b"through the fd"
        passed.close()
        right.close()
        ca.close()
        cb.close()

    asyncio.run(main())


def test_channel_passes_a_full_batch_of_fds_and_fds_with_a_chunked_message() -> None:
    async def main() -> None:
        ca, cb, received, got = _started_channels(2)
        pairs = [socket.socketpair() for _ in range(MAX_FDS + 1)]
        ca.send("batch", [p[0].detach() for p in pairs[:MAX_FDS]])
        big = b"x" * (3 * CHUNK)  # split over several datagrams; the fd rides the last
        ca.send(("big", big), [pairs[MAX_FDS][0].detach()])
        await asyncio.wait_for(got.wait(), 5)
        (msg1, fds1), (msg2, fds2) = received
        assert msg1 == "batch" and len(fds1) == MAX_FDS
        assert msg2 == ("big", big) and len(fds2) == 1
        for fd, (_, right) in zip(fds1 + fds2, pairs, strict=True):
            with socket.socket(fileno=fd) as passed:
                passed.sendall(b"%d" % fd)  # each fd is its own connection, in order
            assert right.recv(100) == b"%d" % fd
            right.close()
        ca.close()  # the other end sees the link go, though it read no EAGAIN before
        for _ in range(100):
            if cb.closed:
                break
            await asyncio.sleep(0.01)
        assert cb.closed
        cb.close()

    asyncio.run(main())
