"""A hand-stepped stand-in for the asyncio loop: a virtual clock, timers in a heap and
coroutines resumed by hand, so the native stack runs deterministically in memory.

The packetdrill runner's native executor and the frame-level tests drive a
TcpLayer with it: ``time``, ``call_soon``, ``call_at``/``call_later`` and
``create_future`` are what the layer asks of a loop (``call_soon`` callbacks run
before anything else the loop does: reporting or firing timers); ``run_until``
moves the clock, firing what is due in order, and ``spawn`` runs an app coroutine
whose awaits are the layer's futures.  As on asyncio, a coroutine resumes from the
``call_soon`` queue its future's completion put it on: after what was queued before
the completion, before what was queued after it (the TCP layer wakes a reader, then
queues its own flush, so the reader's reply goes first).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Proc", "TimerHandle", "VirtualLoop"]


class TimerHandle:
    __slots__ = ("when", "order", "fn", "args", "cancelled")

    def __init__(self, when: float, order: int, fn: Callable[..., object], args: tuple[Any, ...]):
        self.when = when
        self.order = order
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.when, self.order) < (other.when, other.order)


class Proc:
    """A coroutine driven by hand (no event loop ever runs).  ``finished_at``: the
    virtual time it ended at."""

    def __init__(self, coro: Coroutine[Any, Any, Any], clock: Callable[[], float]) -> None:
        self.coro = coro
        self.clock = clock
        self.waiting: asyncio.Future[Any] | None = None
        self.done = False
        self.result: Any = None
        self.exception: BaseException | None = None
        self.finished_at: float | None = None

    def step(self) -> bool:
        """Resume the coroutine if it can go on; True when it made progress."""
        if self.done or (self.waiting is not None and not self.waiting.done()):
            return False
        try:
            yielded = self.coro.send(None)
        except StopIteration as stop:
            self.done, self.result = True, stop.value
        except BaseException as exc:  # handed to whoever asks for the value
            self.done, self.exception = True, exc
        else:
            assert isinstance(yielded, asyncio.Future), f"awaited {yielded!r}"
            self.waiting = yielded
            yielded.add_done_callback(self._resume)  # via the loop's call_soon queue
            return True
        self.finished_at = self.clock()
        return True

    def _resume(self, fut: asyncio.Future[Any]) -> None:
        if fut is self.waiting:
            self.step()

    def value(self) -> Any:
        """The result (the coroutine must have finished); re-raises its exception."""
        assert self.done, "coroutine still waiting"
        if self.exception is not None:
            raise self.exception
        return self.result


class VirtualLoop:
    def __init__(self, start: float) -> None:
        self._now = start
        self._timers: list[TimerHandle] = []
        self._order = itertools.count()
        self.procs: list[Proc] = []
        self._soon: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def time(self) -> float:
        return self._now

    def call_soon(self, fn: Callable[..., object], *args: Any, context: object = None) -> None:
        self._soon.append((fn, args))  # (``context``: a future's callbacks pass one)

    def get_debug(self) -> bool:  # asked by the futures this loop owns
        return False

    def _run_soon(self) -> None:
        soon = self._soon
        while soon:
            fn, args = soon.pop(0)
            fn(*args)

    def call_at(self, when: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        handle = TimerHandle(when, next(self._order), fn, args)
        heapq.heappush(self._timers, handle)
        return handle

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        return self.call_at(self._now + delay, fn, *args)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)  # type: ignore[arg-type]  # what it asks: above

    def next_deadline(self) -> float | None:
        self._run_soon()
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].when if self._timers else None

    def run_until(self, when: float, stop: Callable[[], bool] | None = None) -> None:
        """Run every timer due at or before ``when``, in order; the clock ends at
        ``when``, or at the instant ``stop()`` first holds (checked between timers)."""
        while True:
            self.pump()
            if stop is not None and stop():
                return
            nxt = self.next_deadline()
            if nxt is None or nxt > when:
                break
            handle = heapq.heappop(self._timers)
            self._now = max(self._now, handle.when)
            handle.fn(*handle.args)
        self._run_soon()  # at the old time, before the clock moves on
        self._now = max(self._now, when)
        self.pump()

    def advance(self, seconds: float) -> None:
        self.run_until(self._now + seconds)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Proc:
        proc = Proc(coro, self.time)
        self.procs.append(proc)
        self.pump()
        return proc

    def pump(self) -> None:
        """Resume coroutines until none can go on."""
        progress = True
        while progress:
            progress = False
            if self._soon:
                self._run_soon()
            for proc in list(self.procs):
                if proc.step():
                    progress = True
                if proc.done and proc in self.procs:
                    self.procs.remove(proc)

    def close(self) -> None:
        for proc in self.procs:
            proc.coro.close()
        self.procs.clear()
