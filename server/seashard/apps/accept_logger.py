"""The tutorial's first server: log each connection's remote address, then drop it."""

from __future__ import annotations

import sys

from seashard.net import AcceptResult

DEFAULT_PORT = 1236


async def handle_connection(res: AcceptResult) -> None:
    sys.stdout.write(f"Accepted connection from {res.remote_address}\n")
    sys.stdout.flush()
    await res.connection.close()
