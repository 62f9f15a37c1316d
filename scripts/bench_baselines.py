"""Baseline servers for scripts/bench: the same echo and canned services, without seashard.

    python3 bench_baselines.py asyncio|uvloop ECHO_PORT CANNED_PORT

asyncio: the stdlib's streams API, the way most asyncio servers are written.
uvloop: a bare asyncio.Protocol on uvloop, about as fast as Python networking gets.
"""

from __future__ import annotations

import asyncio
import sys

CANNED = b"Seastar is the future!\n"


async def _stream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _stream_canned(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(CANNED)
    await writer.drain()
    writer.close()


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        self.transport.close()
        return False


class _CannedProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(CANNED)  # type: ignore[attr-defined]
        transport.close()


async def main(kind: str, echo_port: int, canned_port: int) -> None:
    loop = asyncio.get_running_loop()
    if kind == "asyncio":
        servers = [
            await asyncio.start_server(_stream_echo, "127.0.0.1", echo_port, reuse_address=True),
            await asyncio.start_server(
                _stream_canned, "127.0.0.1", canned_port, reuse_address=True
            ),
        ]
    else:
        servers = [
            await loop.create_server(_EchoProtocol, "127.0.0.1", echo_port, reuse_address=True),
            await loop.create_server(_CannedProtocol, "127.0.0.1", canned_port, reuse_address=True),
        ]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    kind, echo, canned = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if kind == "uvloop":
        import uvloop

        uvloop.run(main(kind, echo, canned))
    else:
        asyncio.run(main(kind, echo, canned))
