"""`seashard load` against a real server: it counts what it verified and flags what it could not."""

from __future__ import annotations

import json
import time

from tests.serverproc import run_cli


def _load(server, *args: str):  # type: ignore[no-untyped-def]
    return run_cli(
        "load",
        "--host",
        "127.0.0.1",
        "--echo-port",
        str(server.ports["echo"]),
        "--canned-port",
        str(server.ports["canned"]),
        "--accept-logger-port",
        str(server.ports["accept-logger"]),
        "--json",
        *args,
        timeout=60,
    )


def test_mixed_load_on_two_shards_verifies_everything(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "2")
    result = _load(
        server,
        "-c",
        "2",
        "--mode",
        "mixed",
        "--connections",
        "12",
        "--duration",
        "2",
        "--size",
        "3000",
        "--requests-per-connection",
        "20",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for kind in ("echo", "canned", "connect"):
        assert summary[kind]["requests"] > 10, summary
        assert summary[kind]["errors"] == 0, summary
    assert summary["echo"]["bytes"] == 3000 * summary["echo"]["requests"]
    # The accept logger logged every connect the load generator counted; at most the 4
    # connect workers' last, unfinished attempts (cut off at the deadline) come on top.
    counted = summary["connect"]["requests"]
    deadline = time.monotonic() + 10
    while len(server.stdout_lines) < counted and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = [line for line in server.stdout_lines if line.startswith("Accepted connection from")]
    assert counted <= len(logged) <= counted + 4, (counted, len(logged))


def test_wrong_replies_are_counted_and_fail_the_run(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("-c", "1", services=("canned",))
    result = run_cli(
        "load",
        "--host",
        "127.0.0.1",
        "--echo-port",
        str(server.ports["canned"]),
        "--json",
        "--mode",
        "echo",
        "--connections",
        "2",
        "--duration",
        "1",
        timeout=60,
    )
    assert result.returncode == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["echo"]["errors"] > 0 and summary["echo"]["requests"] == 0
