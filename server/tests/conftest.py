from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the seashard package

from tests import serverproc  # noqa: E402


@pytest.fixture
def serve() -> Iterator[Callable[..., serverproc.Server]]:
    """Start servers (``serve("-c", "2")``), ready; every one is stopped at teardown."""
    started: list[serverproc.Server] = []

    def _start(
        *args: str, services: tuple[str, ...] = (), ready: bool = True, prefix: tuple[str, ...] = ()
    ) -> serverproc.Server:
        server = serverproc.start(*args, services=services, prefix=prefix)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield _start
    for server in started:
        server.stop()
