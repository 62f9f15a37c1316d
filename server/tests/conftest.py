from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests import serverproc  # server/ is on pytest's pythonpath (pyproject.toml)


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
