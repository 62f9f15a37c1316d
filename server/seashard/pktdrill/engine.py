"""Plays a parsed script against a target (one stack) and judges what it does.

The engine is the same for every stack; a ``Target`` supplies the clock, the
packet path and the syscalls. Like packetdrill:

- inbound packets are injected at their time; their ``ack`` (and SACK blocks)
  are shifted by the stack's ISN, learned from its SYN or SYN-ACK, and a TS
  ecr by the offset between the stack's first TS val and the script's;
- outbound packets are taken in the order sent and compared field by field
  (flags, relative seq, length, ack, window if written, options strictly
  unless ``<...>``), then their time within the tolerance; a relative time
  after an outbound packet counts from when it was actually seen, so timing
  errors do not add up; one after an event that began late on a real clock
  (an injected packet, a syscall, a command) counts from when it began, and a
  blocked syscall may return as late as the events that unblock it ran;
- a syscall without ``...`` must return at its time (within the tolerance); one
  with ``start...end`` may block, the script goes on meanwhile, and it must
  return at ``end``;
- the data a segment carries does not matter, only its length (packetdrill's
  packets carry zeros).

Several segments sent within the tolerance of each other that continue each other are seen as
one when a script expects a larger one: that is what a kernel with TSO hands to
the device (packetdrill's tun has TSO), and what a stack without it puts on the
wire in MSS-sized pieces.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .model import (
    DEFAULT_TOLERANCE,
    LOCAL_IP,
    REMOTE_IP,
    Command,
    Event,
    Script,
    Syscall,
    TcpOpt,
    TcpSpec,
    Unsupported,
)
from .packets import MASK, Seen, build_tcp, encode_options, flag_bits, strip_padding

PASSIVE_REMOTE_PORT = 40000  # the remote end's port for connections the script opens inbound


class Mismatch(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Outcome:
    """A syscall's result: ret, the errno's name when ret is -1, and an output
    check's complaint (a getsockopt value that differs)."""

    ret: int
    errno: str | None = None
    complaint: str | None = None
    when: float | None = None  # when it returned (script seconds), set by the target


class Pending(Protocol):
    def done(self) -> bool: ...
    def outcome(self) -> Outcome: ...


class Target(Protocol):
    name: str

    def now(self) -> float: ...
    def run_until(self, when: float, stop: Callable[[], bool] | None = None) -> None: ...
    def inject(self, packet: bytes) -> None: ...
    def captured(self) -> deque[Seen]: ...
    def syscall(self, call: Syscall, flow: Flow) -> Pending: ...
    def command(self, text: str, script_dir: str = ".") -> None: ...
    def restart_clock(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class Flow:
    """The connection under test, as the script sees it."""

    local_port: int | None = None
    remote_port: int = PASSIVE_REMOTE_PORT
    local_isn: int | None = None
    ts_offset: int | None = None  # stack's TS val - script's TS val, from the first seen


@dataclass
class Result:
    path: str
    stack: str
    status: str  # pass, fail, unsupported, error
    line: int = 0
    expected: str = ""
    actual: str = ""
    message: str = ""
    seen: list[str] = field(default_factory=list)  # outbound packets, as printed

    def summary(self) -> str:
        if self.status == "pass":
            return f"{self.path}: pass [{self.stack}]"
        if self.status == "unsupported":
            return f"{self.path}: unsupported: {self.message} [{self.stack}]"
        text = f"{self.path}:{self.line}: {self.status} [{self.stack}]: {self.message}"
        if self.expected:
            text += f"\n    script: {self.expected}"
        if self.actual:
            text += f"\n    actual: {self.actual}"
        return text


class Engine:
    def __init__(self, script: Script, target: Target, tolerance: float = DEFAULT_TOLERANCE):
        self.script = script
        self.target = target
        self.tol = tolerance
        self.flow = Flow()
        self.last = 0.0  # the time relative times count from
        self.pending: tuple[Event, Pending, float] | None = None
        self.seen: list[str] = []
        self.line = 0  # the line being played (for a time limit's report)

    def run(self) -> Result:
        path, stack = self.script.path, self.target.name
        if self.script.unsupported is not None:
            u = self.script.unsupported
            return Result(path, stack, "unsupported", u.line, message=u.feature)
        events = self.script.events
        # Commands before the first timed event set the stage (sysctls): the clock
        # starts after them, so a slow init script does not make every event late.
        setup = 0
        while setup < len(events) and isinstance(events[setup].what, Command):
            setup += 1
        try:
            for event in events[:setup]:
                self.line = event.line
                self._play(event)
            self.target.restart_clock()
            self.last = 0.0
            for event in events[setup:]:
                self.line = event.line
                self._play(event)
            if self.pending is not None:
                self._finish_pending()
        except Mismatch as m:
            # What the stack sent after the mismatch, for the report's record.
            for left in list(self.target.captured()):
                isn = self.flow.local_isn or 0
                self.seen.append(f"{left.time:.3f} {left.describe(isn)}  (not compared)")
            result = Result(path, stack, "fail", m.line, message=m.message, seen=self.seen)
            if "\n" in m.message:
                result.message, rest = m.message.split("\n", 1)
                result.expected, _, result.actual = rest.partition("\n")
            return result
        except Unsupported as u:
            return Result(path, stack, "unsupported", u.line or self.line, message=u.feature)
        return Result(path, stack, "pass", seen=self.seen)

    # ---------------------------------------------------------------- times

    def _start(self, event: Event) -> float:
        t = event.time
        if t.kind == "abs":
            return t.value
        if t.kind == "rel":
            return self.last + t.value
        return self.target.now()

    def _end(self, event: Event, start: float) -> float:
        t = event.time
        if t.end is None:
            return start
        if t.kind == "abs" and not t.end_rel:
            return t.end
        # "+a~+b" and "+a...+b": both count from the previous event
        return self.last + t.end

    # --------------------------------------------------------------- events

    def _play(self, event: Event) -> None:
        what = event.what
        if isinstance(what, TcpSpec):
            if what.flags.startswith("<"):
                raise Unsupported(f"packet type {what.flags[1:-1]}", event.line)
            for o in what.options or ():
                if o.kind.startswith("unsupported:"):
                    raise Unsupported(f"TCP option {o.kind.split(':')[1]}", event.line)
            if what.direction == "<":
                self._inbound(event, what)
            else:
                self._outbound(event, what)
        elif isinstance(what, Syscall):
            self._syscall(event, what)
        elif isinstance(what, Command):
            if what.text == "%{python}%":
                raise Unsupported("%{ }% python blocks (TCP_INFO checks)", event.line)
            start = self._start(event)
            self._wait_to(start)
            began = self.target.now()
            self.target.command(what.text, str(Path(self.script.path).resolve().parent))
            self.last = max(start, began)

    def _wait_to(self, when: float) -> None:
        """Let time pass to ``when``; a blocked syscall that returns meanwhile is checked."""
        if self.pending is not None:
            ev, pend, _end = self.pending
            self.target.run_until(when, pend.done)
            if pend.done():
                self._finish_pending()
        self.target.run_until(when)

    def _inbound(self, event: Event, spec: TcpSpec) -> None:
        start = self._start(event)
        self._wait_to(start)
        flow = self.flow
        if flow.local_port is None:
            raise Mismatch(event.line, "an inbound packet before any socket has a port")
        isn = flow.local_isn or 0
        options = tuple(self._map_inbound_option(o, isn) for o in spec.options or ())
        bits = flag_bits(spec.flags)
        packet = build_tcp(
            REMOTE_IP,
            LOCAL_IP,
            flow.remote_port,
            flow.local_port,
            spec.seq,
            (spec.ack + isn) if spec.ack is not None else 0,
            bits,
            spec.win if spec.win is not None else 0,
            encode_options(options),
            bytes(spec.length),
        )
        began = self.target.now()
        self.target.inject(packet)
        self.last = max(start, began)

    def _map_inbound_option(self, o: TcpOpt, isn: int) -> TcpOpt:
        if o.kind == "sack":
            return TcpOpt("sack", tuple(((a + isn) & MASK, (b + isn) & MASK) for a, b in o.value))
        if o.kind == "TS" and self.flow.ts_offset is not None:
            return TcpOpt("TS", (o.value[0], (o.value[1] + self.flow.ts_offset) & MASK))
        return o

    def _outbound(self, event: Event, spec: TcpSpec) -> None:
        start = self._start(event)
        end = self._end(event, start)
        any_time = event.time.kind == "any"
        # '*' waits as long as the script could still be going: one minute.
        deadline = start + 60.0 if any_time else end + self.tol
        queue = self.target.captured()
        self._wait_until_packet(deadline, queue)
        expected = f"{spec.describe()}  (at {start:.3f})"
        if not queue:
            raise Mismatch(
                event.line,
                f"expected packet not sent (waited until {deadline:.3f})\n{event.source}\nnothing",
            )
        seen = self._take(queue, spec)
        flow = self.flow
        if flow.local_port is None:
            flow.local_port = seen.sport
        if spec.flags.startswith("S") or (seen.flags & 0x02):
            isn = (seen.seq - spec.seq) & MASK
            if isn != flow.local_isn:
                flow.ts_offset = None  # a new incarnation: its TS clock is learned again
            flow.local_isn = isn
            flow.local_port = seen.sport
        isn = flow.local_isn or 0
        self._learn_ts(seen, spec)
        actual = seen.describe(isn, 0, flow.ts_offset or 0)
        self.seen.append(f"{seen.time:.3f} {actual}")
        why = self._compare(spec, seen, isn)
        if why is None and not any_time:
            low = start - self.tol
            if not (low <= seen.time <= end + self.tol):
                why = f"timing: sent at {seen.time:.3f}, expected {start:.3f}" + (
                    f"~{end:.3f}" if end != start else ""
                )
        if why is not None:
            raise Mismatch(
                event.line, f"{why}\n{event.source}\n{actual}  (at {seen.time:.3f})"
            ) from None
        del expected
        self.last = seen.time

    def _wait_until_packet(self, deadline: float, queue: deque[Seen]) -> None:
        if self.pending is not None:
            _ev, pend, _end = self.pending
            self.target.run_until(deadline, lambda: bool(queue) or pend.done())
            if pend.done() and not queue:
                self._finish_pending()
        self.target.run_until(deadline, lambda: bool(queue))

    def _take(self, queue: deque[Seen], spec: TcpSpec) -> Seen:
        """The next packet; pieces of one TSO burst are joined when the script wants more."""
        first = queue.popleft()
        isn = self.flow.local_isn or 0
        rel = (first.seq - isn) & MASK
        while (
            first.length < spec.length
            and rel == spec.seq
            and queue
            and queue[0].time - first.time <= self.tol
            and queue[0].seq == (first.seq + first.length) & MASK
            and queue[0].ack == first.ack
            and (queue[0].flags | 0x08) == (first.flags | 0x08)
            and first.length + queue[0].length <= spec.length
        ):
            nxt = queue.popleft()
            first = Seen(
                first.time,
                first.sport,
                first.dport,
                first.seq,
                nxt.ack,
                first.flags | nxt.flags,
                nxt.window,
                nxt.options,
                first.length + nxt.length,
            )
        return first

    def _learn_ts(self, seen: Seen, spec: TcpSpec) -> None:
        if self.flow.ts_offset is not None or not spec.options:
            return
        mine = [o for o in seen.options if o.kind == "TS"]
        script = [o for o in spec.options if o.kind == "TS"]
        if mine and script:
            self.flow.ts_offset = (mine[0].value[0] - script[0].value[0]) & MASK

    def _compare(self, spec: TcpSpec, seen: Seen, isn: int) -> str | None:
        want = flag_bits(spec.flags)
        if seen.flags != want:
            return "bad outbound TCP flags"
        if (seen.seq - isn) & MASK != spec.seq & MASK:
            return "bad outbound TCP sequence number"
        if seen.length != spec.length:
            return "bad outbound TCP payload length"
        if seen.flags & 0x10 and spec.ack is not None and seen.ack != spec.ack & MASK:
            return "bad outbound TCP ack number"
        if spec.win is not None and seen.window != spec.win:
            return "bad outbound TCP window"
        if spec.any_options:
            return None
        wanted = list(spec.options or ())
        actual = strip_padding(list(seen.options))
        if len(wanted) != len(actual):
            return "bad outbound TCP options"
        for w, a in zip(wanted, actual, strict=True):
            if w.kind != a.kind:
                return "bad outbound TCP options"
            if w.kind == "TS":
                if a.value[1] != w.value[1] & MASK:
                    return "bad outbound TCP timestamp ecr"
            elif w.value != a.value:
                return f"bad outbound TCP option {w.kind}"
        return None

    # -------------------------------------------------------------- syscalls

    def _syscall(self, event: Event, call: Syscall) -> None:
        if self.pending is not None:
            _ev, pend, end = self.pending
            self.target.run_until(max(end, self.last) + self.tol, pend.done)
            self._finish_pending()
        start = self._start(event)
        self.target.run_until(start)
        began = self.target.now()
        pend = self.target.syscall(call, self.flow)
        if event.time.blocking:
            end = self._end(event, start)
            self.pending = (event, pend, end)
            self.last = start
            return
        # A syscall without '...' must not block; the margin covers the thread
        # hand-off on a busy machine (the virtual clock needs none).
        self.target.run_until(max(start, self.target.now()) + max(self.tol, 0.05), pend.done)
        if not pend.done():
            raise Mismatch(
                event.line,
                f"{call.name}() still blocked {max(self.tol, 0.05) * 1000:.0f} ms after its time "
                f"{start:.3f}\n{event.source}\nblocked",
            )
        self._check(event, call, pend.outcome(), start, start)
        self.last = max(start, began)

    def _finish_pending(self) -> None:
        assert self.pending is not None
        event, pend, end = self.pending
        self.pending = None
        call = event.what
        assert isinstance(call, Syscall)
        # The events that unblock it may have run late on a real clock: it may return
        # as much later (self.last is when the latest event actually happened).
        limit = max(end, self.last) + self.tol
        if not pend.done():
            self.target.run_until(limit, pend.done)
        if not pend.done():
            raise Mismatch(
                event.line,
                f"{call.name}() still blocked at {limit:.3f} (time limit of the line)"
                f"\n{event.source}\nblocked",
            )
        out = pend.outcome()
        returned = self.target.now() if out.when is None else out.when
        self._check(event, call, out, end, returned, max(end, self.last))

    def _check(
        self,
        event: Event,
        call: Syscall,
        out: Outcome,
        when: float,
        now: float,
        latest: float | None = None,
    ) -> None:
        want = call.ret
        got = f"{call.name}() = {out.ret}" + (f" {out.errno}" if out.errno else "")
        if out.complaint:
            raise Mismatch(event.line, f"{out.complaint}\n{event.source}\n{got}")
        if want.kind == "int" and want.value != out.ret:
            raise Mismatch(event.line, f"{call.name}() returned {out.ret}\n{event.source}\n{got}")
        if out.ret == -1 and call.errno is not None and call.errno != out.errno:
            raise Mismatch(event.line, f"{call.name}() errno {out.errno}\n{event.source}\n{got}")
        if event.time.blocking and not (
            when - self.tol <= now <= (when if latest is None else latest) + self.tol
        ):
            raise Mismatch(
                event.line,
                f"timing: {call.name}() returned at {now:.3f}, expected {when:.3f}"
                f"\n{event.source}\n{got}",
            )
