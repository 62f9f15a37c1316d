"""A small HTTP/1.x GET server that a hostile client cannot stall: the admin and load /metrics.

It runs its own asyncio loop in a thread of shard 0, so a slow or stuck request
never blocks the shard's event loop, and a route's work runs on the shard's loop
(it asks the shards for their numbers) with a time limit. The rules (issue 8):

- one request per connection (``Connection: close``), GET or HEAD only (else 405);
- the request head must arrive whole within ``REQUEST_TIMEOUT`` seconds (408), at
  most ``MAX_HEAD`` bytes (431): a slowloris client sending a byte at a time, or one
  that connects and says nothing, is cut off, and others are served meanwhile;
- anything that does not parse as a request gets 400 and the connection closed;
- at most ``MAX_CONNECTIONS`` connections at once; one more gets 503 at once;
- a response the client does not read within ``WRITE_TIMEOUT`` is aborted;
- out of file descriptors, asyncio pauses accepting for a second (it does not spin).
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from typing import Any

from seashard import smp

REQUEST_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
ANSWER_TIMEOUT = 5.0  # for a route, i.e. the shards, to answer
MAX_HEAD = 8192
MAX_CONNECTIONS = 16
LOG_INTERVAL = 10.0

Route = Callable[[], Awaitable[tuple[str, bytes]]]  # runs on the route loop: (content type, body)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/1\.[01]")


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, why: str) -> None:
        super().__init__(why)
        self.status = status


def bind(host: str, port: int, what: str) -> socket.socket:
    """A listening socket for an endpoint; a busy port is a one-line StartupError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise smp.StartupError(f"{what}: bind: {exc.strerror} ({host}:{port})") from None
    return sock


def parse_request_head(head: bytes) -> tuple[str, str]:
    """(method, path) of a request head ending in a blank line; raises BadRequest."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "not ASCII") from None
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _VERSION.fullmatch(parts[2]):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad request line {lines[0][:80]!r}")
    method, target, _ = parts
    if not target.startswith("/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad request target {target[:80]!r}")
    for line in lines[1:]:
        if line and (":" not in line or not _TOKEN.fullmatch(line.split(":", 1)[0])):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad header line {line[:80]!r}")
    if method not in ("GET", "HEAD"):
        raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not supported")
    return method, target.split("?", 1)[0]


class HttpEndpoint:
    """Serve ``routes`` on a bound listening socket from a thread; routes run on ``route_loop``."""

    def __init__(
        self,
        sock: socket.socket,
        routes: dict[str, Route],
        route_loop: asyncio.AbstractEventLoop,
        name: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._sock = sock
        self._routes = routes
        self._route_loop = route_loop
        self.name = name
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self._active = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: Exception | None = None
        self._next_log = 0.0

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def start(self) -> None:
        """Serve from a thread of its own; raises StartupError if it could not."""
        self._thread = threading.Thread(target=self._run, name=f"seashard-{self.name}", daemon=True)
        self._thread.start()
        if not self._started.wait(10.0) or self._error is not None:
            raise smp.StartupError(f"{self.name}: could not serve: {self._error or 'timeout'}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()  # the stdlib loop: its accept backs off on EMFILE
        self._loop = loop
        loop.set_exception_handler(self._on_loop_error)
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._serve, sock=self._sock, limit=MAX_HEAD)
            )
        except Exception as exc:
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now >= self._next_log:  # once per interval: a flood must not flood stderr
            self._next_log = now + LOG_INTERVAL
            smp.log(f"{self.name}: {message}")

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self._log(f"{context.get('message', 'error')}: {exc!r}" if exc else context["message"])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        busy = self._active >= self.max_connections
        self._active += 1
        try:
            if busy:
                await self._respond(writer, HTTPStatus.SERVICE_UNAVAILABLE, "busy: try again")
            else:
                await self._one_request(reader, writer)
            writer.close()  # flushes what is left, within the time limit
            await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)
        except Exception as exc:  # a connection's trouble stays with it
            if not isinstance(exc, TimeoutError | ConnectionError):
                self._log(f"request failed: {exc!r}")
        finally:
            self._active -= 1
            writer.transport.abort()  # no-op once closed; cuts off a client that does not read

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.request_timeout)
        except TimeoutError:
            await self._respond(writer, HTTPStatus.REQUEST_TIMEOUT, "request head too slow")
            return
        except asyncio.LimitOverrunError:
            await self._respond(
                writer, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
            )
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # gone before it asked
        try:
            method, path = parse_request_head(head)
        except BadRequest as exc:
            await self._respond(writer, exc.status, str(exc))
            return
        route = self._routes.get(path)
        if route is None:
            await self._respond(
                writer, HTTPStatus.NOT_FOUND, f"try {', '.join(sorted(self._routes))}"
            )
            return
        future = asyncio.run_coroutine_threadsafe(route(), self._route_loop)
        try:
            ctype, body = await asyncio.wait_for(asyncio.wrap_future(future), ANSWER_TIMEOUT)
        except (TimeoutError, FutureTimeout) as exc:
            future.cancel()
            await self._respond(writer, HTTPStatus.SERVICE_UNAVAILABLE, f"no answer: {exc!r}")
            return
        except Exception as exc:
            await self._respond(writer, HTTPStatus.SERVICE_UNAVAILABLE, f"no answer: {exc!r}")
            return
        await self._respond(writer, HTTPStatus.OK, body, ctype, head_only=method == "HEAD")

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        body: str | bytes,
        ctype: str = "text/plain; charset=utf-8",
        head_only: bool = False,
    ) -> None:
        data = body.encode() + b"\n" if isinstance(body, str) else body
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer.write(head if head_only else head + data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    def close(self) -> None:
        """Stop serving and close the socket (also when never started, e.g. the parent's copy)."""
        if self._loop is not None and self._thread is not None:
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass  # already closed
            self._thread.join(5.0)
        self._sock.close()
