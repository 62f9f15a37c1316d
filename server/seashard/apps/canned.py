"""The canned response: one line, then the server closes first (its side goes to TIME_WAIT)."""

from __future__ import annotations

from seashard.net import AcceptResult

DEFAULT_PORT = 1235
CANNED_RESPONSE = b"Seastar is the future!\n"


async def handle_connection(res: AcceptResult) -> None:
    out = res.connection.output()
    await out.write(CANNED_RESPONSE)
    await out.close()
