"""Event-loop glue: one Device and one Interface on one shard's asyncio loop.

The only place below TCP that touches an event loop or a clock: frames are read
when the device fd is readable, and the Interface's timers (ARP retries) run on
``loop.call_at``. ``now`` is ``loop.time()`` everywhere, so deadlines and the
loop's timers share one clock.

Batching (Seastar's poller): every wakeup drains up to ``batch`` frames, and the
whole batch is processed before anything is transmitted: with a ``batching``
layer (the TcpLayer), its ``begin_batch``/``end_batch`` bracket the frames, so a
connection sends at most one ACK per batch and its data after all the ACKs the
batch brought.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from .devices import Device
from .ipv4 import Interface

log = logging.getLogger(__name__)


class Batching(Protocol):
    def begin_batch(self) -> None: ...
    def end_batch(self) -> None: ...


class Driver:
    """Forwards received frames from ``device`` to ``interface`` and runs its timers.

    The interface must transmit through ``device.send``. Memory devices have no
    fd: call :meth:`pump` to deliver what was injected.
    """

    def __init__(
        self,
        device: Device,
        interface: Interface,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        batch: int = 64,
        batching: Batching | None = None,
    ) -> None:
        self.device = device
        self.interface = interface
        self.loop = loop or asyncio.get_running_loop()
        self.batch = batch  # frames per wakeup, so one busy queue cannot starve other tasks
        self.batching = batching
        self.device_errors = 0
        self.batches = 0  # wakeups that delivered frames: frames_received / batches per wakeup
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._failed = False  # a device error: never read it again

    def now(self) -> float:
        return self.loop.time()

    def start(self) -> None:
        self.interface.set_wakeup(self._arm)
        fd = self.device.fileno()
        if fd is not None:
            self.loop.add_reader(fd, self._on_readable)
            self._reading = True
        self._rearm()

    def stop(self) -> None:
        self.interface.set_wakeup(None)
        fd = self.device.fileno()
        if self._reading and fd is not None:
            self.loop.remove_reader(fd)
        self._reading = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.stop()
        self.device.close()

    def pump(self) -> int:
        """Deliver up to ``batch`` waiting frames to the interface; returns how many."""
        n = 0
        recv = self.device.recv
        receive = self.interface.receive
        device = self.device
        batching = self.batching
        frame = recv()
        if frame is None:
            return 0
        now = self.loop.time()
        self.batches += 1
        if batching is not None:
            batching.begin_batch()
        try:
            while True:
                receive(frame, now, device.rx_csum_valid)
                n += 1
                if n >= self.batch:
                    break
                frame = recv()
                if frame is None:
                    break
        finally:
            if batching is not None:
                batching.end_batch()
        return n

    def drain(self, batches: int = 16) -> None:
        """Deliver what is waiting now (at most ``batches`` batches): the TCP layer
        calls it before a loss timer, so queued ACKs are seen first."""
        if self._failed:
            return
        for _ in range(batches):
            try:
                if self.pump() < self.batch:
                    return
            except OSError as exc:
                self._device_error(exc)
                return

    def _on_readable(self) -> None:
        try:
            self.pump()
        except OSError as exc:  # the device went away (deleted, namespace gone)
            self._device_error(exc)

    def _device_error(self, exc: OSError) -> None:
        self._failed = True
        if self._reading:
            self.device_errors += 1
            log.error("device %s: %s; no longer reading it", self.device.name, exc)
            fd = self.device.fileno()
            if fd is not None:
                self.loop.remove_reader(fd)
            self._reading = False

    def _arm(self, when: float) -> None:
        if self._timer is None or when < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(when, self._on_timer)

    def _rearm(self) -> None:
        deadline = self.interface.next_deadline()
        if deadline is not None:
            self._arm(deadline)

    def _on_timer(self) -> None:
        self._timer = None
        self.interface.poll(self.loop.time())
        self._rearm()


class LoopTimer:
    """The asyncio side of a sans-IO component's timers: one loop timer at its
    ``next_deadline()``, which runs ``poll(now)`` (the TcpLayer's connection timers:
    one per shard, however many connections).  ``next_deadline`` may answer early (the
    TcpLayer's ``wakeup``), never late: an early fire polls, finds nothing due, re-arms."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        poll: Callable[[float], None],
        next_deadline: Callable[[], float | None],
    ) -> None:
        self.loop = loop
        self.poll = poll
        self.next_deadline = next_deadline
        self.when: float | None = None  # what the loop timer is set for
        self._handle: asyncio.TimerHandle | None = None

    def update(self) -> None:
        """Re-arm at ``next_deadline()`` (after anything that may have moved it), unless
        that is later than what the loop timer is set for.

        A later deadline leaves the timer alone: it fires early, ``poll`` finds nothing due
        and re-arms then.  Under load the earliest deadline (an RTO restarted by every ACK)
        moves later on every loop iteration; re-arming each time cost a cancel and a
        ``call_at`` per iteration, the early wakeup costs one per RTO.  No deadline at all
        cancels it: an idle shard holds no timer."""
        when = self.next_deadline()
        if when == self.when or (when is not None and self.when is not None and self.when < when):
            return
        if self._handle is not None:
            self._handle.cancel()
        self.when = when
        self._handle = None if when is None else self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.when = None
        self.poll(self.loop.time())
        self.update()
