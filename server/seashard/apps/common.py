"""The accept loop every service shares: accept, handle each connection as its own task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from seashard.net import AcceptResult, ServerSocket
from seashard.smp import log

Handler = Callable[[AcceptResult], Awaitable[None]]


async def service_loop(listener: ServerSocket, handle: Handler) -> None:
    """Accept until the listener is aborted; errors stay with their connection."""
    serve = getattr(listener, "serve", None)
    if serve is not None:  # the stack starts each handler's task itself (posix: cheaper)
        await serve(handle, _failed)
        return
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    while True:
        try:
            res = await listener.accept()
        except ConnectionAbortedError:
            break
        # Not awaited: the next accept must not wait for this connection to finish.
        task = loop.create_task(_guarded(handle, res))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def _guarded(handle: Handler, res: AcceptResult) -> None:
    try:
        await handle(res)
    except Exception as exc:  # one bad connection must not take the service down
        _failed(res, exc)


def _failed(res: AcceptResult, exc: Exception) -> None:
    log(f"Could not handle connection: {exc!r} (from {res.remote_address})")
    res.connection.abort()
