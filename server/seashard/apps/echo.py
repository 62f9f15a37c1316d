"""RFC 862 echo: send back every byte, until the client shuts down its side."""

from __future__ import annotations

from seashard.net import AcceptResult

DEFAULT_PORT = 1234


async def handle_connection(res: AcceptResult) -> None:
    conn = res.connection
    inp, out = conn.input(), conn.output()
    while buf := await inp.read():
        await out.write(buf)
        await out.flush()
    await out.close()
